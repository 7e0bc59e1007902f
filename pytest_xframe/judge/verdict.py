"""Judging outputs by their policy: per-example figures and their aggregate over a check (the
backend's verdict is decided from them in ``decide``).

``compare.py`` measures elementwise errors and ``metrics.py`` computes each figure; this module
decides pass or fail from the thresholds of ``policy.Thresholds`` and formats every figure, the
deciding ones marked, for failure messages and reports. numpy only.

Aggregation over a check's examples, per backend x output: ``max_mismatch`` is the largest
per-example share of elements outside atol/rtol, ``cosine`` and ``snr_db`` the smallest
per-example value (NaN, from NaN or Inf in an output, counts as the worst), ``topk`` the share of
agreeing rows over every row of every example, ``smallest_atol`` the largest per-example
smallest passing atol at the policy's rtol (the atol that would have passed every example).
Per-example thresholds (mismatch, cosine, snr) are judged on each example, so hypothesis shrinks a
failure to a minimal input; ``topk`` is judged on the aggregate once all examples ran.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from . import metrics
from .compare import OutputComparison, compare_output, format_comparison, missing_output
from .policy import DEFAULT_TOLERANCES, Thresholds, resolve

if TYPE_CHECKING:
    from ..check.options import CheckOptions


def policy_for(options: CheckOptions, backend: str, precision: str) -> Callable[[str, str], Thresholds]:
    """``(output, dtype) -> Thresholds`` for one backend, resolved once per output."""
    memo: dict[tuple[str, str], Thresholds] = {}

    def thresholds(output: str, dtype: str) -> Thresholds:
        key = (output, dtype)
        if key not in memo:
            # float outputs start from the dtype's tolerances; integer and bool ones compare exactly
            dtype_tolerance = options.tolerance(dtype) if dtype in DEFAULT_TOLERANCES else None
            memo[key] = resolve(
                options.policy, backend, output, dtype, precision, dtype_tolerance,
                default_atol=options.atol is None, over_data=options.data is not None,
            )
        return memo[key]

    return thresholds


@dataclass(frozen=True)
class ExampleFigures:
    """The metrics of one output on one example."""

    mismatch: float
    cosine: float
    snr_db: float
    smallest_atol: float
    #: (agreeing rows, rows) of the top-k indices; None when not computed (see ``wants_topk``)
    topk: tuple[int, int] | None = None


#: output names that say the output holds class scores: the last part of the name (after the
#: last '.' of a nested output) is, or ends in '_' followed by, one of these words
CLASS_SCORES = re.compile(r"(?:^|[._])(?:logits|scores|probs|probabilities)$", re.IGNORECASE)


def wants_topk(name: str, ref: np.ndarray, th: Thresholds) -> bool:
    """Top-k agreement means something for class scores only, so it is computed where the policy
    sets ``topk`` for the output (declared class scores), or where the output's name says it holds
    class scores (:data:`CLASS_SCORES`: ``logits``, ``pred_logits``, ``scores``, ``cls_scores``,
    ``probs``...) and it is a float array of rank 2 or more (a row of scores per sample, box or
    token) with more than k entries per row. Boxes, masks, flows, embeddings and outputs named only
    by position (``output``, ``output_0``) get no top-k figure."""
    if th.topk is not None:
        return True
    return bool(CLASS_SCORES.search(name)) and ref.dtype.kind == "f" and ref.ndim >= 2 and ref.shape[-1] > th.topk_k


def refuse_vacuous_topk(name: str, ref: np.ndarray, th: Thresholds) -> None:
    """A judged top-k whose k is at or above the number of classes (the last axis) agrees on every
    row whatever the backend returns: a SpecError, not a check that can never fail."""
    t = th.topk
    if t is None or t.min_agreement is None:
        return
    classes = ref.shape[-1] if ref.ndim else 0
    if classes > t.k:
        return
    from ..errors import SpecError

    raise SpecError(
        f"the policy judges top-{t.k} agreement of output {name!r}, which has {classes} classes "
        f"({ref.dtype}{list(ref.shape)}, classes on the last axis): with k >= classes every row agrees, so it can never fail",
        hint=f"set topk.k below {classes}" + (" (top-1 is the usual choice)" if classes > 1 else "") + ", or drop topk for this output",
    )


def figures(ref: np.ndarray, got: np.ndarray, th: Thresholds, equal_nan: bool, name: str = "") -> ExampleFigures:
    return ExampleFigures(
        mismatch=metrics.mismatch_share(ref, got, th.atol, th.rtol, equal_nan),
        cosine=metrics.cosine(ref, got),
        snr_db=metrics.snr_db(ref, got),
        smallest_atol=metrics.smallest_passing_atol(ref, got, th.rtol),
        topk=metrics.topk_hits(ref, got, th.topk_k) if wants_topk(name, ref, th) else None,
    )


def failed_thresholds(f: ExampleFigures, th: Thresholds) -> list[str]:
    """What fails on one example; NaN figures fail every threshold set on them."""
    out = []
    if th.max_mismatch is not None and not f.mismatch <= th.max_mismatch:
        out.append(f"{_pct(f.mismatch)} of elements outside atol={th.atol:g}, rtol={th.rtol:g} (allowed: {_pct(th.max_mismatch)})")
    if th.cosine is not None and not f.cosine >= th.cosine:
        out.append(f"cosine {f.cosine:.6f} < {th.cosine}")
    if th.snr_db is not None and not f.snr_db >= th.snr_db:
        out.append(f"snr {f.snr_db:.3g} dB < {th.snr_db} dB")
    return out


@dataclass
class Judged:
    """One output on one example: the comparison (``ok`` is the policy's verdict) and its figures."""

    comparison: OutputComparison
    figures: ExampleFigures | None
    #: the thresholds in force on this example (a scaled atol applied: ``in_force``)
    thresholds: Thresholds
    failed: list[str] = field(default_factory=list)
    #: the policy as resolved (the atol before scaling), when it differs from ``thresholds``
    policy: Thresholds | None = None


def in_force(th: Thresholds, ref: np.ndarray) -> Thresholds:
    """The thresholds on one example: a scaling atol (``Thresholds.atol_scale``) grown to that
    share of the reference's RMS where this is larger."""
    if th.atol_scale is None:
        return th
    scaled = th.atol_scale * metrics.rms(np.where(np.isfinite(ref), ref, 0.0))
    return replace(th, atol=scaled) if scaled > th.atol else th


def judge_example(
    reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], thresholds: Callable[[str, str], Thresholds], equal_nan: bool
) -> list[Judged]:
    """Compare and judge every reference output; ``thresholds(name, dtype)`` gives its policy."""
    out = []
    for name, r in reference.items():
        r = np.asarray(r)
        policy = thresholds(name, str(r.dtype))
        th = in_force(policy, r) if r.dtype.kind == "f" else policy
        if name not in got:
            out.append(Judged(missing_output(name, r, th.atol, th.rtol), None, th, policy=policy))
            continue
        c = compare_output(name, r, np.asarray(got[name]), th.atol, th.rtol, equal_nan)
        if c.problem:
            out.append(Judged(c, None, th, policy=policy))
            continue
        refuse_vacuous_topk(name, r, th)
        f = figures(r, np.asarray(got[name]), th, equal_nan, name)
        failed = failed_thresholds(f, th)
        out.append(Judged(replace(c, ok=not failed), f, th, failed, policy=policy))
    return out


def snr_judged(judged: list[Judged]) -> float | None:
    """The lowest finite SNR among the outputs whose policy judges SNR (what hypothesis steers by)."""
    values = [j.figures.snr_db for j in judged if j.figures is not None and j.thresholds.snr_db is not None and math.isfinite(j.figures.snr_db)]
    return min(values) if values else None


@dataclass
class MetricAggregate:
    """One output's figures over a check's examples (aggregation: see the module docstring)."""

    thresholds: Thresholds
    examples: int = 0
    max_mismatch: float = 0.0
    cosine: float = math.inf
    snr_db: float = math.inf
    smallest_atol: float = 0.0
    topk_hits: int = 0
    topk_rows: int = 0

    def add(self, f: ExampleFigures) -> None:
        self.examples += 1
        self.max_mismatch = max(self.max_mismatch, f.mismatch)
        self.cosine = _worst_min(self.cosine, f.cosine)
        self.snr_db = _worst_min(self.snr_db, f.snr_db)
        self.smallest_atol = max(self.smallest_atol, f.smallest_atol)
        if f.topk is not None:
            self.topk_hits += f.topk[0]
            self.topk_rows += f.topk[1]

    @property
    def topk(self) -> float | None:
        return self.topk_hits / self.topk_rows if self.topk_rows else None

    def topk_failure(self) -> str | None:
        """The aggregate top-k threshold, judged once all examples ran."""
        t = self.thresholds.topk
        if t is None or t.min_agreement is None or self.topk is None or self.topk >= t.min_agreement:
            return None
        return f"top-{t.k} agreement {self.topk_hits}/{self.topk_rows} ({_pct(self.topk)}) < {_pct(t.min_agreement)}"

    def figures(self) -> dict[str, float | None]:
        """The figures over the examples (None when not computed; inf and NaN kept)."""
        if not self.examples:
            return {"max_mismatch": None, "cosine": None, "snr_db": None, "topk": None, "smallest_atol": None}
        return {"max_mismatch": self.max_mismatch, "cosine": self.cosine, "snr_db": self.snr_db, "topk": self.topk, "smallest_atol": self.smallest_atol}

    def to_dict(self) -> dict[str, float | None]:
        """The report's ``metrics``: as ``figures``, with inf and NaN as None (JSON has neither)."""
        return {k: _finite(v) for k, v in self.figures().items()}


def _worst_min(seen: float, new: float) -> float:
    return math.nan if math.isnan(seen) or math.isnan(new) else min(seen, new)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _pct(share: float) -> str:
    return f"{100.0 * share:.3g}%"


# -- formatting --------------------------------------------------------------------------------
def describe_figures(
    mismatch: float, cosine: float, snr: float, topk: tuple[int, int] | None, th: Thresholds, counted: tuple[int, int] | None = None
) -> str:
    """Every figure, each with its threshold or 'not judged'; ``counted`` = (elements out, elements)."""

    def bound(value: float | None, text: str) -> str:
        return f" (policy {text})" if value is not None else " (not judged)"

    parts = [
        f"mismatch {f'{counted[0]} / {counted[1]} elements ({_pct(mismatch)})' if counted else _pct(mismatch)} at atol={th.atol:g}, rtol={th.rtol:g}"
        + bound(th.max_mismatch, f"<= {_pct(th.max_mismatch or 0.0)}"),
        f"cosine {cosine:.6f}" + bound(th.cosine, f">= {th.cosine}"),
        f"snr {snr:.3g} dB" + bound(th.snr_db, f">= {th.snr_db} dB"),
    ]
    if topk is not None:
        rows = topk[1]
        share = topk[0] / rows if rows else math.nan
        t = th.topk
        judged = t is not None and t.min_agreement is not None
        verdict = f" (policy >= {_pct(t.min_agreement)}, over all examples)" if judged else " (not judged)"
        parts.append(f"top-{th.topk_k} agreement {topk[0]}/{rows} ({_pct(share)})" + verdict)
    return ", ".join(parts)


def format_judged(j: Judged) -> str:
    """A failing output on one example: the failed thresholds, every metric, what would pass, the elementwise figures."""
    c = j.comparison
    if c.problem or j.figures is None:
        return format_comparison(c)
    f = j.figures
    lines = [
        f"output {c.name!r} {c.dtype}{list(c.shape)}: fails its policy: {'; '.join(j.failed)}",
        "    metrics: " + describe_figures(f.mismatch, f.cosine, f.snr_db, f.topk, j.thresholds, (c.mismatches, c.total)),
        f"    would pass with atol >= {f.smallest_atol:.3g} at rtol={j.thresholds.rtol:g}",
    ]
    detail = format_comparison(replace(c, ok=False)).splitlines()[1:]
    return "\n".join(lines + detail)


def format_aggregate(name: str, a: MetricAggregate) -> str:
    """One output's figures over all examples, for the end of a failure message."""
    topk = (a.topk_hits, a.topk_rows) if a.topk_rows else None
    return (
        f"output {name!r} over {a.examples} example(s): would pass with atol >= {a.smallest_atol:.3g} at rtol={a.thresholds.rtol:g}; "
        + describe_figures(a.max_mismatch, a.cosine, a.snr_db, topk, a.thresholds)
    )
