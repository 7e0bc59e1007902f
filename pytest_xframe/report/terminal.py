"""The terminal: the session's summary table and a one-screen failure for pytest-xframe's errors."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest


def short_failure(item: pytest.Item, excinfo: Any, verbosity: int) -> str:
    """One screen for a pytest-xframe error: where the test called us, then our message.

    Our messages already say what was checked, the cause and what to try, so the frames of the
    plugin and of the frameworks add only noise; with -v the converter's own traceback follows.
    """
    from ..errors import strip_ansi

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
        lines.append("full traceback:\n" + strip_ansi(details) if verbosity > 0 else "(run with -v for the full traceback)")
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


def _by_tolerance(record: dict[str, Any]) -> bool:
    """Whether any output of the record is judged elementwise against atol/rtol (a quantized
    target judged by its metrics alone is not: its "x tolerance" would be a figure nothing judged)."""
    return any((o.get("policy") or {}).get("max_mismatch") is not None for o in record["outputs"])


def write_summary(tr: Any, records: list[dict[str, Any]], verbosity: int) -> None:
    """The session table: one row per test x backend; -q one line plus failures; -v per output."""
    failed = [r for r in records if r["verdict"] in ("failed", "error")]
    counts = {v: sum(r["verdict"] == v for r in records) for v in ("passed", "failed", "error", "skipped", "xfailed")}
    judged = (r for r in records if r["examples"] and r["verdict"] != "xfailed" and r["tolerance_ratio"] is not None and _by_tolerance(r))
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
