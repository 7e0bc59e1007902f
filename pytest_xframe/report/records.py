"""Records: one per check x backend, plain JSON data read from the verdicts and figures a check
reached, and the JUnit properties of each.

A record travels from pytest-xdist workers to the controller on the test report, and the
controller alone writes the summary and the JSON file.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..judge.results import BackendResult, ParityReport


def _finite(value: float | None) -> float | None:
    """JSON has no inf/nan: write them as null (the verdict and counts say what happened)."""
    return value if value is None or math.isfinite(value) else None


def records_from(report: ParityReport) -> list[dict[str, Any]]:
    """One record per backend: those the check ran, then those it could not (skipped, no figures)."""
    records = [_record(report, name, r) for name, r in report.backends.items()]
    for name, r in report.unavailable.items():
        records.append(
            {"test": report.test_id, "backend": name, "model": report.model, "verdict": r.verdict, "examples": 0, "onnx": "",
             "seed": report.options.seed, "precision": r.precision,
             "max_abs": None, "max_rel": None, "tolerance_ratio": None, "cache_hit": False, "message": r.message, "artifacts": None,
             "seconds": {"export": 0.0, "import": 0.0, "convert": 0.0, "load": 0.0, "run": 0.0}, "outputs": []}
        )
    return records


def _record(report: ParityReport, name: str, r: BackendResult) -> dict[str, Any]:
    record = {
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
    if r.baseline is not None:
        record["baseline"] = r.baseline
    return record


def _data_record(report: ParityReport, r: BackendResult) -> dict[str, Any] | None:
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


def junit_properties(report: ParityReport, records: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Key figures of each record as JUnit properties: ``xframe.<backend>.<key>`` and, per output,
    ``xframe.<backend>.<output>.<metric>`` (XML is text: inf and nan written as such)."""
    properties = []
    for rec in records:
        prefix = f"xframe.{rec['backend']}"
        properties.extend((f"{prefix}.{key}", rec[key]) for key in ("verdict", "examples", "max_abs", "max_rel", "onnx", "precision", "seed"))
        result = report.backends.get(rec["backend"])
        for output, aggregate in (result.metrics.items() if result is not None else ()):
            properties.extend((f"{prefix}.{output}.{key}", value) for key, value in aggregate.figures().items() if value is not None)
    return properties



