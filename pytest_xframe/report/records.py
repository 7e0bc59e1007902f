"""Reporting: per-test records, the terminal summary table, the JSON report and JUnit properties.

A record is plain JSON data, so it travels from pytest-xdist workers to the controller on the
test report and the controller alone writes the summary and the JSON file.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from ..judge.results import ParityReport


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
    from ..plugin.stash import RECORDS_KEY

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


