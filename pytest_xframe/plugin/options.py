"""Check options and their precedence, resolved in one place.

Precedence, lowest to highest: built-in defaults < ini file < marker kwargs < ``check()`` kwargs <
command line. The ini file sets a project's defaults; the command line overrides everything for
one run (``--xframe-max-examples=200`` in a nightly job, say). ``policy`` is the one option whose
layers stack instead of replacing each other (``[tool.xframe.policy]`` at the ini file's place):
``policy.resolve`` weighs them per threshold, backend and output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..backends import DEFAULT as DEFAULT_BACKENDS
from ..errors import SpecError
from ..judge.policy import DEFAULT_TOLERANCES, Layer, Rule, parse_policy
from ..judge.structured import DetectionRule, parse_detections, parse_sequences

MARKER = "xframe_parity"
EXPORTERS = ("dynamo", "torchscript")


#: default ``data_scale``: explored inputs move each float value by up to 0.1 standard deviation
DEFAULT_DATA_SCALE = 0.1
#: default bound on one drawn example (all its inputs): large enough for a batch of images
DEFAULT_MAX_INPUT_BYTES = 256 * 2**20


@dataclass(frozen=True)
class CheckOptions:
    """Everything that decides how one parity check runs."""

    backends: tuple[str, ...] = DEFAULT_BACKENDS
    atol: float | None = None
    rtol: float | None = None
    max_examples: int = 20
    seed: int | None = None
    #: None = each backend's preferred exporter (see export.py); or "dynamo" / "torchscript" for all
    exporter: str | None = None
    #: None = the exporter's preferred opset for that backend
    opset: int | None = None
    equal_nan: bool = False
    #: display name of the model in messages and reports (default: its class name)
    name: str | None = None
    #: reliability: the largest input one example may draw, in bytes (all tensors together);
    #: a spec that can exceed it is refused before anything runs
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    #: quantized targets: the samples full-integer quantization calibrates on (``inputs/calibration.py``);
    #: None draws ``calibration_samples`` of them from the input spec with ``calibration_seed``
    calibration: tuple[Any, ...] | None = None
    calibration_samples: int = 20
    calibration_seed: int = 0
    #: quantized targets: int8 inputs and outputs (tflite-int8-full); the runner quantizes feeds and
    #: dequantizes outputs with each tensor's scale and zero point, so comparisons stay in float
    int8_io: bool = False
    #: bigmodel: the user's word that forward's code is unchanged, so the ONNX export may be reused
    #: across runs: a version string, or paths/globs (relative to the rootdir) of files to hash
    export_key: str | tuple[str, ...] | None = None
    #: baselines: how much worse than its baseline a figure may get before it is drift (baseline.py)
    drift_factor: float = 2.0
    #: judging policies (metrics): one layer per place that wrote one (project, marker, check()),
    #: lowest precedence first; ``policy.resolve`` applies them per backend x output
    policy: tuple[Layer, ...] = ()
    #: the user's samples (``inputs/data/``): a directory of .npz files, one stacked .npz, or an
    #: iterable of dicts or tuples (a list, a torch ``Dataset``), streamed; every sample runs as it
    #: is, then hypothesis explores around them; reduced-precision targets are judged over them
    data: Any = None
    #: how many samples of ``data`` run (the first N); None runs them all
    data_limit: int | None = None
    #: how far hypothesis moves a sample of ``data``: each float value by up to this many standard
    #: deviations of its input over the data
    data_scale: float = DEFAULT_DATA_SCALE
    #: quantized targets: a target that quantized no weight tensor fails instead of warning
    strict_quantization: bool = False
    #: detection heads compared as sets (``judge/structured.py``): a dict binding the ``boxes``,
    #: ``scores`` (and ``labels``) outputs by name, or a list of them
    detections: tuple[DetectionRule, ...] = ()
    #: token-id outputs judged by exact-match rate: a list of output names, or a dict of name -> the
    #: smallest share of sequences that must match
    sequences: tuple[tuple[str, float | None], ...] = ()

    def tolerance(self, dtype: str) -> tuple[float, float]:
        """(atol, rtol) in force for an output of ``dtype``: exact for integers and bools."""
        default = DEFAULT_TOLERANCES.get(dtype)
        if default is None:
            return (0.0, 0.0)
        return (default[0] if self.atol is None else self.atol, default[1] if self.rtol is None else self.rtol)


OPTION_NAMES = tuple(f.name for f in fields(CheckOptions))


def validate(options: Mapping[str, Any], where: str, known: Collection[str] | None = None) -> dict[str, Any]:
    """Check names and types of user options; ``where`` says where they came from, ``known`` the
    backends there are (default: the built-ins and entry points; a session passes its registry's)."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise SpecError(
            f"unknown xframe option(s) {', '.join(map(repr, unknown))} in {where}",
            hint=f"valid options: {', '.join(OPTION_NAMES)}",
        )
    out = dict(options)
    if "backends" in out:
        out["backends"] = parse_backends(out["backends"], where, known)
    _check_numbers(out, where)
    _check_choices(out, where)
    if out.get("export_key") is not None:
        out["export_key"] = _export_key(out["export_key"], where)
    _validate_calibration(out, where)
    _validate_data(out, where)
    _structured(out, where)
    _policy_layer(out, where)
    return out


def _structured(out: dict[str, Any], where: str) -> None:
    """``strict_quantization``, ``detections`` and ``sequences`` (idempotent, as ``_policy_layer``)."""
    if "strict_quantization" in out and not isinstance(out["strict_quantization"], bool):
        raise SpecError(f"strict_quantization must be True or False, got {out['strict_quantization']!r} in {where}")
    value = out.get("detections")
    if value is not None and not (isinstance(value, tuple) and all(isinstance(r, DetectionRule) for r in value)):
        out["detections"] = parse_detections(value, where)
    elif "detections" in out and value is None:
        out["detections"] = ()
    value = out.get("sequences")
    if value is not None and not (isinstance(value, tuple) and all(isinstance(v, tuple) for v in value)):
        out["sequences"] = parse_sequences(value, where)
    elif "sequences" in out and value is None:
        out["sequences"] = ()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_numbers(out: dict[str, Any], where: str) -> None:
    """The numeric options: tolerances, counts, seed, opset, size bound, drift factor."""
    for name in ("atol", "rtol"):
        if out.get(name) is not None:
            value = out[name]
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise SpecError(f"{name} must be a finite number >= 0, got {value!r} in {where}")
            out[name] = float(value)
    if "max_examples" in out and not (_is_int(out["max_examples"]) and out["max_examples"] >= 1):
        raise SpecError(f"max_examples must be an int >= 1, got {out['max_examples']!r} in {where}")
    if out.get("seed") is not None and not _is_int(out["seed"]):
        raise SpecError(f"seed must be an int, got {out['seed']!r} in {where}")
    if out.get("opset") is not None and not (_is_int(out["opset"]) and out["opset"] >= 7):
        raise SpecError(f"opset must be an int >= 7, got {out['opset']!r} in {where}")
    if "max_input_bytes" in out and not (_is_int(out["max_input_bytes"]) and out["max_input_bytes"] >= 1):
        raise SpecError(
            f"max_input_bytes must be an int >= 1, got {out['max_input_bytes']!r} in {where}", hint=f"default: {DEFAULT_MAX_INPUT_BYTES}"
        )
    if "drift_factor" in out:
        value = out["drift_factor"]
        if not _is_number(value) or not value > 1:
            raise SpecError(f"drift_factor must be a number > 1, got {value!r} in {where}", hint="e.g. drift_factor=2: a figure may double")
        out["drift_factor"] = float(value)


def _check_choices(out: dict[str, Any], where: str) -> None:
    """The options that take one of a few values: exporter, equal_nan, name."""
    if out.get("exporter") is not None and out["exporter"] not in EXPORTERS:
        raise SpecError(f"unknown exporter {out['exporter']!r} in {where}", hint=f"use one of: {', '.join(EXPORTERS)}")
    if "equal_nan" in out and not isinstance(out["equal_nan"], bool):
        raise SpecError(f"equal_nan must be True or False, got {out['equal_nan']!r} in {where}")
    if out.get("name") is not None and (not isinstance(out["name"], str) or not out["name"].strip()):
        raise SpecError(f"name must be a non-empty string, got {out['name']!r} in {where}")


def _policy_layer(out: dict[str, Any], where: str) -> None:
    """``policy=`` as one layer of rules, led by this place's ``atol``/``rtol`` (the same top-level
    thresholds, so a more specific policy entry of the same place beats them). Idempotent: options
    validated before (a declared model's, passed on to its marker) keep their layers."""
    if _parsed(out.get("policy")):
        return
    layer = parse_policy(out["policy"], f"policy= of {where}") if out.get("policy") is not None else ()
    tolerance = tuple((k, out[k]) for k in ("atol", "rtol") if out.get(k) is not None)
    clash = [k for k, _ in tolerance for r in layer if r.backend is None and r.output is None and k in dict(r.values)]
    if clash:
        raise SpecError(f"{', '.join(clash)} given both as an option and in policy= in {where}", hint="set it in one place")
    if tolerance:
        layer = (Rule(None, None, tolerance, where),) + layer
    if "policy" in out or tolerance:
        out["policy"] = (layer,) if layer else ()


def _parsed(policy: Any) -> bool:
    """Whether ``policy`` is already layers of rules (``validate``'s output), not a user's table."""
    return isinstance(policy, tuple) and all(isinstance(layer, tuple) and all(isinstance(r, Rule) for r in layer) for layer in policy)


def _export_key(value: Any, where: str) -> str | tuple[str, ...]:
    """A non-empty version string, or a non-empty list of non-empty paths/globs."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    raise SpecError(
        f"export_key must be a version string or a list of file paths/globs, got {value!r} in {where}",
        hint="e.g. export_key='my-model-1.4' or export_key=['src/mymodel/*.py']",
    )


def export_key_arg(text: str) -> str | tuple[str, ...]:
    """``--xframe-export-key``: a version string, or ``@a,b`` for paths/globs whose contents are
    hashed (the command line's spelling of check()'s string and list); ValueError when empty."""
    if text.startswith("@"):
        files = tuple(p.strip() for p in text[1:].split(",") if p.strip())
        if not files:
            raise ValueError(f"expected paths/globs after '@', got {text!r} (e.g. @src/mymodel/*.py,configs/model.yaml)")
        return files
    if not text.strip():
        raise ValueError("expected a version string (e.g. my-model-1.4) or @paths/globs, got an empty string")
    return text


def _validate_calibration(out: dict[str, Any], where: str) -> None:
    """Quantization options; samples are checked against the input spec later (``inputs/calibration.py``)."""
    samples = out.get("calibration")
    if samples is not None:
        if isinstance(samples, (str, bytes, Mapping)) or not hasattr(samples, "__iter__"):
            raise SpecError(
                f"calibration must be an iterable of samples, got {type(samples).__name__} in {where}",
                hint="e.g. calibration=[{'x': array}, ...] or a list of tuples in input order",
            )
        out["calibration"] = tuple(samples)  # a generator is read once, here
    for name, low in (("calibration_samples", 1), ("calibration_seed", 0)):
        value = out.get(name)
        if name in out and not (_is_int(value) and value >= low):
            raise SpecError(f"{name} must be an int >= {low}, got {value!r} in {where}")
    if "int8_io" in out and not isinstance(out["int8_io"], bool):
        raise SpecError(f"int8_io must be True or False, got {out['int8_io']!r} in {where}")


def _validate_data(out: dict[str, Any], where: str) -> None:
    """``data`` (a path or an iterable, kept as given: it is streamed, never copied here; samples
    are checked against the inputs when the check opens them, ``inputs/data/``), ``data_limit``
    (int >= 1) and ``data_scale`` (finite number >= 0)."""
    value = out.get("data")
    if value is not None:
        if isinstance(value, os.PathLike):
            out["data"] = os.fspath(value)
        elif isinstance(value, str):
            if not value.strip():
                raise SpecError(f"data must be a path or an iterable of samples, got an empty string in {where}")
        elif isinstance(value, (bytes, Mapping)) or not (hasattr(value, "__iter__") or (hasattr(value, "__getitem__") and hasattr(value, "__len__"))):
            raise SpecError(
                f"data must be a path or an iterable of samples, got {type(value).__name__} in {where}",
                hint="a directory of .npz files, one stacked .npz, a list of dicts/tuples of arrays, or a torch Dataset",
            )
    limit = out.get("data_limit")
    if limit is not None and not (_is_int(limit) and limit >= 1):
        raise SpecError(f"data_limit must be an int >= 1, got {limit!r} in {where}")
    if "data_scale" in out:
        scale = out["data_scale"]
        if not _is_number(scale) or not math.isfinite(scale) or scale < 0:
            raise SpecError(f"data_scale must be a finite number >= 0, got {scale!r} in {where}",
                            hint=f"explored inputs move each float value by up to data_scale standard deviations (default {DEFAULT_DATA_SCALE})")
        out["data_scale"] = float(scale)

def parse_backends(value: Any, where: str, known: Collection[str] | None = None) -> tuple[str, ...]:
    """Accept "a,b", ["a", "b"] or ("a",); reject unknown names listing the valid ones."""
    if known is None:
        from ..backends import registry

        known = registry().names()
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise SpecError(
            f"unknown backend(s) {', '.join(map(repr, unknown)) or '(none given)'} in {where}",
            hint=f"valid backends: {', '.join(known)}",
        )
    return tuple(dict.fromkeys(items))


def resolve(*layers: Mapping[str, Any]) -> CheckOptions:
    """Apply option layers lowest precedence first; each layer must be validated already."""
    options = CheckOptions()
    for layer in layers:
        if layer:
            # policy layers stack (``policy.resolve`` weighs them); every other option is replaced
            options = replace(options, **{k: options.policy + v if k == "policy" else v for k, v in layer.items()})
    return options
