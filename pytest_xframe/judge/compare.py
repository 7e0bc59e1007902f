"""Output-by-output comparison against the reference; numpy only, so it is easy to test.

An element passes when ``|got - ref| <= atol + rtol * |ref|`` (numpy.isclose's rule with the
reference on the right). Shapes and dtypes are checked first, integer and bool outputs compare
exactly, NaN matches NaN only with ``equal_nan``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from . import metrics


@dataclass(frozen=True)
class OutputComparison:
    name: str
    ok: bool
    atol: float
    rtol: float
    shape: tuple[int, ...]
    dtype: str
    #: set when shapes, dtypes or presence differ; the numbers below are then meaningless
    problem: str | None = None
    max_abs: float = 0.0
    max_rel: float = 0.0
    mean_abs: float = 0.0
    p99_abs: float = 0.0
    cosine: float | None = None
    mismatches: int = 0
    total: int = 0
    worst_index: tuple[int, ...] | None = None
    worst_ref: float | None = None
    worst_got: float | None = None
    #: largest |got - ref| / (atol + rtol * |ref|): above 1 fails; what hypothesis.target maximises
    tolerance_ratio: float = 0.0
    nan_ref: int = 0
    nan_got: int = 0
    inf_ref: int = 0
    inf_got: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, equal_nan: bool = False) -> OutputComparison:
    ref, got = np.asarray(ref), np.asarray(got)
    base = dict(name=name, atol=atol, rtol=rtol, shape=tuple(ref.shape), dtype=str(ref.dtype))
    if ref.shape != got.shape:
        return OutputComparison(ok=False, problem=f"shape differs: reference {list(ref.shape)}, backend {list(got.shape)}", **base)
    if ref.dtype != got.dtype:
        return OutputComparison(ok=False, problem=f"dtype differs: reference {ref.dtype}, backend {got.dtype}", **base)
    total = ref.size
    if ref.dtype.kind not in "fc":
        bad = ref != got
        diff = np.abs(ref.astype(np.float64) - got.astype(np.float64)) if ref.dtype.kind != "b" else bad.astype(np.float64)
        return _summarise(base, ref, got, diff, bad, diff, total, nan=(0, 0, 0, 0))
    r64, g64 = ref.astype(np.float64), got.astype(np.float64)
    nan_r, nan_g = np.isnan(r64), np.isnan(g64)
    inf_r, inf_g = np.isinf(r64), np.isinf(g64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(g64 - r64)
        same_special = (r64 == g64) | (equal_nan & nan_r & nan_g)  # equal infinities, paired NaNs
        diff = np.where(same_special, 0.0, diff)
        diff = np.where(nan_r | nan_g, np.where(same_special, 0.0, np.inf), diff)
        allowed = atol + rtol * np.abs(r64)
        bad = ~(diff <= allowed) & ~same_special
        ratio = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0), np.where(diff > 0, np.inf, 0.0))
        ratio = np.where(same_special, 0.0, ratio)
    return _summarise(
        base, ref, got, diff, bad, ratio, total,
        nan=(int(nan_r.sum()), int(nan_g.sum()), int(inf_r.sum()), int(inf_g.sum())),
        cos=_cosine(r64, g64) if total > 1 else None,
    )


def _summarise(base, ref, got, diff, bad, ratio, total, nan, cos=None) -> OutputComparison:
    if total == 0:
        return OutputComparison(ok=True, **base)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(ref.astype(np.float64)) > 0, diff / np.abs(ref.astype(np.float64)), np.where(diff > 0, np.inf, 0.0))
    finite = diff[np.isfinite(diff)]
    worst = np.unravel_index(int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio))), ref.shape) if ref.ndim else ()
    return OutputComparison(
        ok=not bool(bad.any()),
        max_abs=float(diff.max()),
        max_rel=float(np.nanmax(rel)),
        mean_abs=float(finite.mean()) if finite.size else float("inf"),
        p99_abs=float(np.percentile(finite, 99)) if finite.size else float("inf"),
        cosine=cos,
        mismatches=int(bad.sum()),
        total=int(total),
        worst_index=tuple(int(i) for i in worst),
        worst_ref=_scalar(ref[worst]),
        worst_got=_scalar(got[worst]),
        tolerance_ratio=float(np.nanmax(ratio)) if ratio.size else 0.0,
        nan_ref=nan[0], nan_got=nan[1], inf_ref=nan[2], inf_got=nan[3],
        **base,
    )


def _scalar(value: np.ndarray) -> float:
    return float(np.asarray(value).astype(np.float64))


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """``metrics.cosine``, None where it is undefined (NaN or Inf in either array)."""
    value = metrics.cosine(a, b)
    return None if math.isnan(value) else value


def missing_output(name: str, ref: np.ndarray, atol: float, rtol: float) -> OutputComparison:
    """The comparison of a reference output the backend did not return."""
    ref = np.asarray(ref)
    return OutputComparison(
        name=name, ok=False, atol=atol, rtol=rtol, shape=tuple(ref.shape), dtype=str(ref.dtype), problem="missing from the backend's outputs"
    )


def compare_all(
    ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], tolerance, equal_nan: bool = False
) -> list[OutputComparison]:
    """Compare every reference output; ``tolerance(dtype) -> (atol, rtol)``."""
    results = []
    for name, r in ref.items():
        atol, rtol = tolerance(str(np.asarray(r).dtype))
        if name not in got:
            results.append(missing_output(name, r, atol, rtol))
        else:
            results.append(compare_output(name, r, got[name], atol, rtol, equal_nan))
    return results


def format_comparison(c: OutputComparison) -> str:
    """A few lines per output: the verdict, the figures and the worst element."""
    head = f"output {c.name!r} {c.dtype}{list(c.shape)}: "
    if c.problem:
        return head + c.problem
    tol = f"atol={c.atol:g}, rtol={c.rtol:g}"
    if c.ok:
        return head + f"ok (max abs {c.max_abs:.3g}, max rel {c.max_rel:.3g}; {tol})"
    pct = 100.0 * c.mismatches / c.total if c.total else 0.0
    lines = [
        head + f"{c.mismatches} / {c.total} elements ({pct:.3g}%) out of tolerance ({tol})",
        f"    max abs error {c.max_abs:.6g}, max rel error {c.max_rel:.6g}, mean abs {c.mean_abs:.3g}, p99 abs {c.p99_abs:.3g}"
        + (f", cosine {c.cosine:.6f}" if c.cosine is not None else ""),
        f"    worst at index {list(c.worst_index or ())}: reference {c.worst_ref!r}, backend {c.worst_got!r}"
        f" (tolerance there {c.atol + c.rtol * abs(c.worst_ref or 0.0):.3g})",
    ]
    if c.nan_ref or c.nan_got or c.inf_ref or c.inf_got:
        lines.append(f"    NaN: reference {c.nan_ref}, backend {c.nan_got}; Inf: reference {c.inf_ref}, backend {c.inf_got}")
    if c.nan_ref:
        lines.append(
            "    torch itself produced NaN for this input: the model is undefined there; narrow the "
            "TensorSpec's low/high, or pass equal_nan=True if NaN on both sides is fine"
        )
    return "\n".join(lines)


__all__ = ["OutputComparison", "compare_output", "compare_all", "format_comparison"]
