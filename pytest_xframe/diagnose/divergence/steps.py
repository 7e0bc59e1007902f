"""Which step of the route (export, conversion, runtime) a final mismatch belongs to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...judge.compare import compare_all

__all__ = ["STEPS", "attribute_step"]

STEPS = ("export", "conversion", "runtime", "unknown")


def _agree(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], tolerance: Any, equal_nan: bool) -> bool:
    if not callable(tolerance):
        atol, rtol = tolerance
        tolerance = lambda dtype: (atol, rtol)  # noqa: E731
    return all(c.ok for c in compare_all(ref, got, tolerance, equal_nan))


def attribute_step(
    torch_out: Mapping[str, np.ndarray],
    ort_out: Mapping[str, np.ndarray],
    backend_out: Mapping[str, np.ndarray] | None,
    tolerance: Callable[[str], tuple[float, float]] | tuple[float, float],
    *,
    deployed_out: Mapping[str, np.ndarray] | None = None,
    equal_nan: bool = False,
) -> str:
    """Which step a mismatch belongs to, from the outputs of each stage for one input.

    ``tolerance`` is ``CheckOptions.tolerance`` (dtype -> (atol, rtol)) or one (atol, rtol) pair.
    ``backend_out`` is the converted model's output (None when there is no converted backend);
    ``deployed_out`` optionally the output of the runner as deployed, when it differs from the
    converted model checked directly.

    * "export": torch and onnxruntime differ, onnxruntime and the backend agree (or no backend);
    * "conversion": onnxruntime and the backend differ while torch and onnxruntime agree;
    * "runtime": every step agrees but the end result does not: either the deployed runner differs
      from the converted model, or torch vs backend is out of tolerance although each step is
      within it (small per-runtime numeric differences that add up);
    * "unknown": both steps differ (cannot be pinned on one), or nothing differs.
    """
    export_ok = _agree(torch_out, ort_out, tolerance, equal_nan)
    if backend_out is None:
        return "unknown" if export_ok else "export"
    convert_ok = _agree(ort_out, backend_out, tolerance, equal_nan)
    if not export_ok:
        return "export" if convert_ok else "unknown"
    if not convert_ok:
        return "conversion"
    if deployed_out is not None:
        if not (_agree(backend_out, deployed_out, tolerance, equal_nan) and _agree(torch_out, deployed_out, tolerance, equal_nan)):
            return "runtime"
        return "unknown"
    return "unknown" if _agree(torch_out, backend_out, tolerance, equal_nan) else "runtime"
