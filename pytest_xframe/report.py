"""Reporting: per-test records, the terminal summary table, the JSON report and JUnit properties.

A record is plain JSON data, so it travels from pytest-xdist workers to the controller on the
test report and the controller alone writes the summary and the JSON file.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from .results import ParityReport

REPORT_SCHEMA_ID = "pytest-xframe/report"
REPORT_VERSION = 1

_NUMBER = {"type": ["number", "null"]}
#: per output, the metrics over the check's examples (``judge.MetricAggregate.to_dict``)
METRICS_SCHEMA = {
    "type": "object",
    "required": ["max_mismatch", "cosine", "snr_db", "topk", "smallest_atol"],
    "properties": {k: _NUMBER for k in ("max_mismatch", "cosine", "snr_db", "topk", "smallest_atol")},
}
#: per output, the thresholds in force (``policy.Thresholds.to_dict``); null = not judged
POLICY_SCHEMA = {
    "type": "object",
    "required": ["atol", "rtol", "max_mismatch", "cosine", "snr_db", "topk"],
    "properties": {
        **{k: _NUMBER for k in ("atol", "rtol", "max_mismatch", "cosine", "snr_db")},
        "topk": {
            "type": ["object", "null"],
            "required": ["k", "min_agreement"],
            "properties": {"k": {"type": "integer", "minimum": 1}, "min_agreement": _NUMBER},
        },
        # thresholds over the samples of data= (``data_policy.DataThresholds.to_dict``), where any are set
        "data": {"type": "object"},
    },
}
OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["name", "ok", "atol", "rtol", "shape", "dtype", "max_abs", "max_rel", "mean_abs", "p99_abs", "mismatches", "total"],
    "properties": {
        "name": {"type": "string"},
        "ok": {"type": "boolean"},
        "problem": {"type": ["string", "null"]},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "dtype": {"type": "string"},
        "worst_index": {"type": ["array", "null"], "items": {"type": "integer"}},
        "mismatches": {"type": "integer"},
        "total": {"type": "integer"},
        **{k: _NUMBER for k in ("atol", "rtol", "max_abs", "max_rel", "mean_abs", "p99_abs", "cosine", "worst_ref", "worst_got", "tolerance_ratio")},
        **{k: {"type": "integer"} for k in ("nan_ref", "nan_got", "inf_ref", "inf_got")},
        "metrics": {"oneOf": [METRICS_SCHEMA, {"type": "null"}]},
        "policy": {"oneOf": [POLICY_SCHEMA, {"type": "null"}]},
    },
}
_CHANGE = {
    "type": "object",
    "required": ["output", "figure", "baseline", "new", "by", "limit"],
    "properties": {"output": {"type": "string"}, "figure": {"type": "string"}, "baseline": {"type": "number"}, "new": {"type": "number"},
                   "by": {"type": "string"}, "limit": {"type": "string"}},
}
#: a check against its baseline entries (present while a baseline file exists or is being written)
BASELINE_RECORD_SCHEMA = {
    "type": "object",
    "required": ["check", "status"],
    "properties": {
        "check": {"type": "string"},
        "status": {"enum": ["checked", "drifted", "missing", "update"]},
        "seed": {"type": ["integer", "null"]},
        "examples": {"type": ["integer", "null"]},
        "drift": {"type": "array", "items": _CHANGE},
        "improved": {"type": "array", "items": _CHANGE},
        "missing": {"type": "array", "items": {"type": "string"}},
    },
}
#: an int8 target's weight tensors, quantized of total, from the converted model (null elsewhere)
QUANTIZATION_SCHEMA = {
    "type": ["object", "null"],
    "properties": {**{k: {"type": "integer"} for k in ("quantized", "total", "quantized_bytes", "total_bytes")},
                   "reason": {"type": ["string", "null"]}, "error": {"type": "string"}},
}
_DISTRIBUTION = {"type": ["object", "null"], "properties": {k: _NUMBER for k in ("mean", "p50", "p95", "worst")}}
#: per output, its figures over the samples of data= (``aggregate.OverData.to_dict``)
DATA_OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["snr_db", "psnr_db", "cosine", "worst_sample", "top1_agreement", "exact_match", "accuracy", "failed", "summary"],
    "properties": {
        "samples": {"type": ["integer", "null"]},
        **{k: _DISTRIBUTION for k in ("snr_db", "psnr_db", "cosine")},
        "worst_sample": {"type": ["string", "null"]},
        "top1_agreement": _NUMBER,
        "exact_match": _NUMBER,
        "accuracy": {"type": ["object", "null"], "properties": {"torch": _NUMBER, "backend": _NUMBER, "labels": {"type": "integer"}}},
        "detections": {"type": ["object", "null"]},
        "failed": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
}
#: the samples of data= a check ran, and each output's figures over them (null without data=)
DATA_SCHEMA = {
    "type": ["object", "null"],
    "required": ["source", "outputs"],
    "properties": {"source": {"type": "string"}, "outputs": {"type": "object", "additionalProperties": DATA_OUTPUT_SCHEMA}},
}
_ENTRY_KEYS = ("test", "check", "backend", "output", "reason")
_ENTRY = {"type": "object", "required": list(_ENTRY_KEYS), "properties": {k: {"type": "string"} for k in _ENTRY_KEYS}}
#: the run's baseline: the file, and stale entries (checking) or what the update wrote
BASELINE_SCHEMA = {
    "type": "object",
    "required": ["path", "updated"],
    "properties": {
        "path": {"type": "string"},
        "updated": {"type": "boolean"},
        "stale": {"type": "array", "items": _ENTRY},
        "written": {"type": "integer"},
        "removed": {"type": "array", "items": _ENTRY},
        "not_updated": {"type": "array", "items": {"type": "string"}},
    },
}
RECORD_SCHEMA = {
    "type": "object",
    "required": ["test", "backend", "model", "verdict", "examples", "onnx", "max_abs", "max_rel", "tolerance_ratio", "seconds", "outputs"],
    "properties": {
        "test": {"type": "string"},
        "backend": {"type": "string"},
        "model": {"type": "string"},
        "verdict": {"enum": ["passed", "failed", "error", "skipped", "xfailed"]},
        "examples": {"type": "integer", "minimum": 0},
        "seed": {"type": ["integer", "null"]},
        "onnx": {"type": "string"},
        "max_abs": _NUMBER,
        "max_rel": _NUMBER,
        "tolerance_ratio": _NUMBER,
        "cache_hit": {"type": "boolean"},
        "export_cache_hit": {"type": "boolean"},
        "message": {"type": "string"},
        "artifacts": {"type": ["string", "null"]},
        "diagnosis": {"type": ["string", "null"]},
        # a calibrated (quantized) backend's samples; null for the others
        "calibration": {
            "type": ["object", "null"],
            "properties": {
                "source": {"enum": ["spec", "user", "data"]},
                "data": {"type": "string"},
                "samples": {"type": "integer"},
                "seed": {"type": ["integer", "null"]},
                "digest": {"type": "string"},
            },
        },
        "precision": {"enum": ["fp32", "fp16", "int8"]},
        "seconds": {
            "type": "object",
            "required": ["export", "import", "convert", "load", "run"],
            "properties": {k: {"type": "number"} for k in ("export", "import", "convert", "load", "run")},
        },
        "outputs": {"type": "array", "items": OUTPUT_SCHEMA},
        "baseline": BASELINE_RECORD_SCHEMA,
        "quantization": QUANTIZATION_SCHEMA,
        "data": DATA_SCHEMA,
    },
}
REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pytest-xframe report",
    "type": "object",
    "required": ["schema", "version", "created", "exit_status", "environment", "checks"],
    "properties": {
        "schema": {"const": REPORT_SCHEMA_ID},
        "version": {"const": REPORT_VERSION},
        "created": {"type": "string"},
        "exit_status": {"type": "integer"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "checks": {"type": "array", "items": RECORD_SCHEMA},
        "baseline": BASELINE_SCHEMA,
    },
}


def _finite(value: float | None) -> float | None:
    """JSON has no inf/nan: write them as null (the verdict and counts say what happened)."""
    return value if value is None or math.isfinite(value) else None


def records_from(report: ParityReport, skipped: list[tuple[str, str | None, str]], extra: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One record per backend; ``extra`` adds fields per backend (the ``baseline`` field)."""
    records = []
    for name, r in report.backends.items():
        records.append(
            {
                **(extra or {}).get(name, {}),
                "test": report.test_id,
                "backend": name,
                "model": report.model,
                "verdict": r.verdict,
                "examples": r.examples,
                "onnx": r.onnx,
                "max_abs": _finite(r.max_abs) if r.worst else None,
                "max_rel": _finite(r.max_rel) if r.worst else None,
                "tolerance_ratio": _finite(r.tolerance_ratio) if r.worst else None,
                "cache_hit": r.cache_hit,
                "export_cache_hit": r.export_cache_hit,
                "message": r.message,
                "artifacts": r.artifacts,
                "diagnosis": r.diagnosis,
                "calibration": r.calibration,
                "seconds": {"export": r.export_seconds, "import": r.import_seconds, "convert": r.convert_seconds, "load": r.load_seconds, "run": r.run_seconds},
                "seed": report.options.seed,
                "precision": r.precision,
                "outputs": [_output_record(c, r.metrics.get(c.name)) for c in r.worst.values()],
                "quantization": r.quantization,
                "data": _data_record(report, r),
            }
        )
    for name, reason, precision in skipped:
        records.append(
            {"test": report.test_id, "backend": name, "model": report.model, "verdict": "skipped", "examples": 0, "onnx": "",
             "seed": report.options.seed, "precision": precision,
             "max_abs": None, "max_rel": None, "tolerance_ratio": None, "cache_hit": False, "message": reason or "", "artifacts": None,
             "seconds": {"export": 0.0, "import": 0.0, "convert": 0.0, "load": 0.0, "run": 0.0}, "outputs": []}
        )
    return records


def _data_record(report: ParityReport, r: Any) -> dict[str, Any] | None:
    """A backend's figures over the samples of data=, per output, each with its summary line."""
    if report.data is None or report.where is None:
        return None
    outputs = {name: {**over.to_dict(report.where), "summary": over.describe(report.where)} for name, over in r.over_data.items()}
    return {"source": report.data, "outputs": outputs}


def _output_record(c: Any, aggregate: Any) -> dict[str, Any]:
    """One output's comparison figures, its ``metrics`` over the examples and its ``policy``."""
    out = {k: (_finite(v) if isinstance(v, float) else list(v) if isinstance(v, tuple) else v) for k, v in c.to_dict().items()}
    out["metrics"] = aggregate.to_dict() if aggregate is not None else None
    out["policy"] = aggregate.thresholds.to_dict() if aggregate is not None else None
    return out




def record(request: pytest.FixtureRequest, report: ParityReport, skipped: list[tuple[str, str | None, str]], extra: dict[str, dict] | None = None) -> None:
    """Attach records to the test item (for the summary) and key figures as JUnit properties."""
    from .stash import RECORDS_KEY

    records = records_from(report, skipped, extra)
    request.node.stash.setdefault(RECORDS_KEY, []).extend(records)
    for rec in records:
        prefix = f"xframe.{rec['backend']}"
        for key in ("verdict", "examples", "max_abs", "max_rel", "onnx", "precision", "seed"):
            request.node.user_properties.append((f"{prefix}.{key}", rec[key]))
        result = report.backends.get(rec["backend"])
        for output, aggregate in (result.metrics.items() if result is not None else ()):
            for key, value in aggregate.figures().items():  # XML is text: inf and nan written as such
                if value is not None:
                    request.node.user_properties.append((f"{prefix}.{output}.{key}", value))


def short_failure(item: pytest.Item, excinfo: Any, verbosity: int) -> str:
    """One screen for a pytest-xframe error: where the test called us, then our message.

    Our messages already say what was checked, the cause and what to try, so the frames of the
    plugin and of the frameworks add only noise; with -v the converter's own traceback follows.
    """
    exc = excinfo.value
    where = next(
        (
            f"{os.path.relpath(entry.path, item.config.invocation_params.dir)}:{entry.lineno + 1}"
            for entry in reversed(excinfo.traceback)
            if str(entry.path) == str(item.path)
        ),
        item.nodeid,
    )
    lines = [f"{where}: {type(exc).__module__.split('.')[0]}.{type(exc).__name__}", str(exc)]
    lines.extend(getattr(exc, "__notes__", []) or [])
    details = getattr(exc, "details", None)
    if details:
        lines.append("full traceback:\n" + details if verbosity > 0 else "(run with -v for the full traceback)")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def metrics_line(o: dict[str, Any]) -> str:
    """An output record's metrics over the examples, each with its threshold or 'not judged'."""
    m, p = o["metrics"], o["policy"]
    special = o.get("nan_ref") or o.get("nan_got") or o.get("inf_ref") or o.get("inf_got")

    def shown(value: float | None, fmt: str, unset: str) -> str:
        return unset if value is None else format(value, fmt)

    def bound(value: Any, text: str) -> str:
        return f" (>= {text})" if value is not None else " (not judged)"

    parts = [
        f"mismatch {100 * m['max_mismatch']:.3g}%" + (f" (<= {100 * p['max_mismatch']:.3g}%)" if p["max_mismatch"] is not None else " (not judged)"),
        f"cosine {shown(m['cosine'], '.6f', 'nan')}" + bound(p["cosine"], f"{p['cosine']}"),
        f"snr {shown(m['snr_db'], '.3g', 'nan' if special else 'inf')} dB" + bound(p["snr_db"], f"{p['snr_db']} dB"),
    ]
    if m["topk"] is not None:
        k = p["topk"]["k"] if p["topk"] else 1
        judged = p["topk"] is not None and p["topk"]["min_agreement"] is not None
        parts.append(f"top-{k} {100 * m['topk']:.3g}%" + (f" (>= {100 * p['topk']['min_agreement']:.3g}%)" if judged else " (not judged)"))
    parts.append(f"would pass with atol >= {m['smallest_atol']:.2g} at rtol={p['rtol']:g}")
    return ", ".join(parts)


def write_summary(tr: Any, records: list[dict[str, Any]], verbosity: int) -> None:
    """The session table: one row per test x backend; -q one line plus failures; -v per output."""
    failed = [r for r in records if r["verdict"] in ("failed", "error")]
    counts = {v: sum(r["verdict"] == v for r in records) for v in ("passed", "failed", "error", "skipped", "xfailed")}
    judged = (r for r in records if r["examples"] and r["verdict"] != "xfailed" and r["tolerance_ratio"] is not None)
    worst = max(judged, key=lambda r: r["tolerance_ratio"], default=None)
    headline = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    tr.write_sep("=", "xframe parity summary")
    if worst is not None:
        headline += f"; worst {_fmt(worst['max_abs'])} abs ({worst['tolerance_ratio']:.2g}x tolerance) in {worst['test']} [{worst['backend']}]"
    if verbosity < 0:
        tr.write_line(f"xframe: {len(records)} checks: {headline}")
        for r in failed:
            tr.write_line(f"  {r['verdict'].upper()} {r['test']} [{r['backend']}]: {r['message']}")
        return
    rows: list[tuple[str, ...] | str] = [
        ("test", "backend", "onnx", "ex", "max abs", "atol", "max rel", "rtol", "verdict", "export s", "import s", "convert s", "run s")
    ]
    for r in records:
        tol = max(r["outputs"], key=lambda o: o["tolerance_ratio"] or 0.0, default=None)
        rows.append(
            (
                r["test"], r["backend"], r["onnx"] or "-", str(r["examples"]), _fmt(r["max_abs"]),
                _fmt(tol["atol"]) if tol else "-", _fmt(r["max_rel"]), _fmt(tol["rtol"]) if tol else "-",
                r["verdict"] + (" (cached)" if r["cache_hit"] and r["verdict"] == "passed" else "") + _vacuous(r),
                "cached" if r.get("export_cache_hit") else f"{r['seconds']['export']:.2f}", f"{r['seconds']['import']:.2f}",
                f"{r['seconds']['convert'] + r['seconds']['load']:.2f}", f"{r['seconds']['run']:.2f}",
            )
        )
        rows.extend(deployment_lines(r))
        if verbosity > 0:
            for o in r["outputs"]:
                rows.append((f"  {o['name']}", "", f"{o['dtype']}{o['shape']}", "", _fmt(o["max_abs"]), _fmt(o["atol"]),
                             _fmt(o["max_rel"]), _fmt(o["rtol"]), "ok" if o["ok"] else (o.get("problem") or "MISMATCH"), "", "", "", ""))
                if o.get("metrics") and o["metrics"]["smallest_atol"] is not None:
                    rows.append(f"    {o['name']} ({r['precision']}): " + metrics_line(o))
    table = [row for row in rows if isinstance(row, tuple)]
    widths = [max(len(row[i]) for row in table) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        if isinstance(row, str):  # a metrics line under its output's row
            tr.write_line(row)
            continue
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        markup = {"red": True} if i and any(word in row[8] for word in ("failed", "error")) else {}
        tr.write_line(line, **markup)
    tr.write_line(f"xframe: {headline}")


def _vacuous(r: dict[str, Any]) -> str:
    """A quantized target that quantized nothing never reads as a quantization pass."""
    return " (nothing quantized)" if (r.get("quantization") or {}).get("quantized") == 0 else ""


def deployment_lines(r: dict[str, Any]) -> list[str]:
    """Under a record's row: its figures over the data, its calibration, what it quantized."""
    lines = []
    data = r.get("data")
    if data:
        lines.extend(f"    {name} over the data ({data['source']}): {o['summary']}" for name, o in data["outputs"].items())
    calibration = r.get("calibration")
    if calibration:
        spec = f"drawn from the input spec, seed {calibration['seed']}"
        where = calibration.get("data") or ("calibration= samples" if calibration["source"] == "user" else spec)
        lines.append(f"    calibration: {where}" if calibration.get("data") else f"    calibration: {calibration['samples']} sample(s), {where}")
    q = r.get("quantization")
    if q:
        text = q.get("error") and f"could not be counted ({q['error']})"
        if not text:
            text = f"{q['quantized']} of {q['total']} weight tensor(s) quantized, {_kib(q['quantized_bytes'])} of {_kib(q['total_bytes'])} as stored"
            text += f"; NOTHING QUANTIZED: {q['reason'] or 'reason unknown'}" if not q["quantized"] else ""
        lines.append(f"    quantization: {text}")
    return lines


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def environment() -> dict[str, str]:
    """Versions of the stack, read from package metadata: nothing is imported."""
    from .provenance import dist_version

    dists = ("pytest-xframe", "torch", "onnx", "onnxruntime", "onnxscript", "tensorflow", "tensorflow-cpu", "keras", "onnx-tf", "hypothesis", "numpy")
    return {dist: version for dist in dists if (version := dist_version(dist)) is not None}


def write_json(path: Path, records: list[dict[str, Any]], exit_status: int, baseline: dict[str, Any] | None = None) -> None:
    """Write the versioned JSON report atomically (a CI gate never reads half a file)."""
    document: dict[str, Any] = {
        "schema": REPORT_SCHEMA_ID,
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exit_status": exit_status,
        "environment": environment(),
        "checks": records,
    }
    if baseline is not None:
        document["baseline"] = baseline
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, path)
