"""The JSON report: its schema (``REPORT_SCHEMA``), the stack's versions, the file written atomically.

A record is plain JSON data, so it travels from pytest-xdist workers to the controller on the
test report and the controller alone writes the JSON file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
        **{k: _NUMBER for k in ("atol", "rtol", "max_mismatch", "cosine", "snr_db", "atol_scale")},
        "topk": {
            "type": ["object", "null"],
            "required": ["k", "min_agreement"],
            "properties": {"k": {"type": "integer", "minimum": 1}, "min_agreement": _NUMBER},
        },
        # thresholds over the samples of data= (``judge.data_policy.DataThresholds.to_dict``), where any are set
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


#: per output, its figures over the samples of data= (``judge.aggregate.OverData.to_dict``)
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
        "lock": {
            "type": "object",
            "required": ["path", "moved"],
            "properties": {
                "path": {"type": "string"},
                "moved": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "locked", "installed"],
                        "properties": {"name": {"type": "string"}, "locked": {"type": "string"}, "installed": {"type": ["string", "null"]}},
                    },
                },
            },
        },
    },
}


#: what every check's figures depend on: this plugin, the reference (torch), the export, the drawing
BASE_DISTRIBUTIONS = ("pytest-xframe", "torch", "onnx", "onnxscript", "hypothesis", "numpy")


def environment(distributions: Iterable[str] = ()) -> dict[str, str]:
    """Installed versions of ``BASE_DISTRIBUTIONS`` and of ``distributions`` (those the backends a
    run checked declare, ``Backend.distributions``), read from package metadata: nothing is imported."""
    from ..identity import dist_version

    dists = dict.fromkeys([*BASE_DISTRIBUTIONS, *distributions])
    return {dist: version for dist in dists if (version := dist_version(dist)) is not None}


def write_json(
    path: Path, records: list[dict[str, Any]], exit_status: int, environment: dict[str, str], baseline: dict[str, Any] | None = None,
    lock: dict[str, Any] | None = None,
) -> None:
    """Write the versioned JSON report atomically (a CI gate never reads half a file)."""
    document: dict[str, Any] = {
        "schema": REPORT_SCHEMA_ID,
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exit_status": exit_status,
        "environment": environment,
        "checks": records,
    }
    if baseline is not None:
        document["baseline"] = baseline
    if lock is not None:
        document["lock"] = lock
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, path)
