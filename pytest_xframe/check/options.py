"""What one check is asked to do: ``CheckOptions``, every check option with its default.

Where each option may be given, and how its text is read and validated, is the option table's
business (``plugin.options``); a check receives these values resolved and validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends import DEFAULT as DEFAULT_BACKENDS
from ..judge.policy import DEFAULT_TOLERANCES, Layer
from ..judge.structured import DetectionRule

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
    #: quantized targets: the samples full-integer quantization calibrates on (``calibration.py``);
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


