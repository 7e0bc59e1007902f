"""Judging a loop run by run: the policy per step, greedy choices, near-ties, figures over steps.

fp32 targets are judged at every run, as a one-shot check judges an example: each compared
output within its policy (``judge.judge_example``). A greedy choice that differs from torch's
while the logits are within their policy is a *near-tie*: the policy itself allows the flip when
torch's logit for its token is within ``atol + rtol·|logit|`` of each other's, so it is reported,
torch's token is fed on (each side keeps its own cache) and the check goes on. The policy key
``tie_margin`` narrows it: with it set, the backend's token must lie within ``tie_margin`` of
torch's token in torch's logits, else the divergence fails.

Reduced-precision targets (fp16, int8) differ from torch at every step, so they are judged over
each case's steps together: ``cosine`` and ``snr_db`` of every output over all its runs, and
``token_agreement``, the share of greedy tokens equal to torch's (torch's token is fed on after
each disagreement, so the steps stay comparable).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..judge.policy import Thresholds
from ..judge.results import BackendResult
from ..judge.verdict import Judged, judge_example

#: policy defaults of generation loops by target precision, under any the user writes (the fp32
#: ``atol`` then judges every output of every step; ``token_agreement``: the share of greedy
#: tokens equal to torch's over a case's steps)
GENERATION_DEFAULTS: dict[str, dict[str, float]] = {
    # optimum-onnx's decoder tests compare logits at atol 1e-4: a few steps of float32 drift stay
    # well inside it (measured on the tiny test models: at most 1e-5, 0.4x of the dtype default)
    "fp32": {"atol": 1e-4},
    "fp16": {"token_agreement": 0.9},
    "int8": {"token_agreement": 0.75},
}


@dataclass(frozen=True)
class Run:
    """One graph run of one side: what it was fed and what it returned."""

    graph: str
    label: str
    feeds: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Tie:
    """A greedy choice that differed from torch's within the policy."""

    run: int
    label: str
    row: int
    torch_token: int
    backend_token: int
    #: torch's logit for its token minus its logit for the backend's
    gap: float
    allowed: float


class Divergence(Exception):
    """The first run where a backend left torch: its outputs out of policy (``kind`` "logits"),
    a greedy token beyond a near-tie ("token"), or figures over the steps ("steps")."""

    def __init__(self, kind: str, run: int | None, judged: list[Judged], why: str, row: int = 0) -> None:
        super().__init__(why)
        self.kind, self.run, self.judged, self.why, self.row = kind, run, judged, why, row


def top2_margin(logits: np.ndarray) -> float:
    """torch's confidence in its greedy token: the largest logit minus the second largest."""
    row = np.asarray(logits, dtype=np.float64).ravel()
    if row.size < 2:
        return math.inf
    top = np.partition(row, -2)[-2:]
    return float(top[1] - top[0])


#: a quick look passes a run only this far inside its tolerance; nearer, the full judgement decides
QUICK_MARGIN = 0.9


def _quick_look(ref: np.ndarray, got: np.ndarray | None, th: Thresholds, per_step: bool) -> tuple[float, float] | None:
    """(largest |got-ref| / (atol + rtol·|ref|), largest |got-ref|) of plain finite float outputs
    of one shape, when that alone decides: a tolerance-only policy passed with room (fp32), or any
    policy for a run kept for the figures over the steps; else None (the full judgement decides)."""
    if got is None:
        return None
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape or ref.dtype != got.dtype or ref.dtype.kind != "f" or not ref.size:
        return None
    diff = np.abs(got.astype(np.float64) - ref)
    largest = float(diff.max())
    if not np.isfinite(largest) or not np.isfinite(ref).all():
        return None
    if not per_step:
        return 0.0, largest
    if th.max_mismatch != 0.0 or th.cosine is not None or th.snr_db is not None or (th.topk is not None and th.topk.min_agreement is not None):
        return None
    allowed = th.atol + th.rtol * np.abs(ref.astype(np.float64))
    ratio = float(np.max(diff / np.maximum(allowed, np.finfo(np.float64).tiny)))
    return (ratio, largest) if ratio <= QUICK_MARGIN else None


def _allowance(th: Thresholds, ref_row: np.ndarray, a: int, b: int) -> float:
    """How far apart the policy lets torch's logits of tokens ``a`` and ``b`` come: the tolerance
    of each, or ``tie_margin`` where the policy sets it."""
    if th.tie_margin is not None:
        return th.tie_margin
    return 2 * th.atol + th.rtol * (abs(float(ref_row[a])) + abs(float(ref_row[b])))


@dataclass
class StepJudge:
    """Judges one backend's runs of one case against torch's, as they come."""

    thresholds: Callable[[str, str], Thresholds]
    #: judged at every run (fp32) rather than over the steps (reduced precision)
    per_step: bool
    equal_nan: bool
    result: BackendResult
    compared: tuple[str, ...] | None = None
    #: per run: (label, max abs error of each compared output)
    errors: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    ties: list[Tie] = field(default_factory=list)
    agreed: int = 0
    chosen: int = 0
    #: the outputs greedy tokens were chosen from, with their dtype (their policy's token_agreement judges)
    chosen_from: set[tuple[str, str]] = field(default_factory=set)
    _stacked: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = field(default_factory=dict)
    #: a reduced-precision case's outputs judged over its steps (``finish_case``)
    over_steps: list[Judged] = field(default_factory=list)
    #: fp32: the run with the largest tolerance ratio so far (ratio, torch's outputs, the backend's)
    _worst: tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    def step(self, index: int, ref: Run, got: Mapping[str, np.ndarray]) -> None:
        """One run: judged now (fp32) or kept for the figures over the steps. The full judgement
        (every metric, ``judge.judge_example``: milliseconds for a vocabulary of thousands) runs
        only where a quick look at the errors cannot pass the run, and on each case's worst run."""
        names = [n for n in ref.outputs if self.compared is None or n in self.compared]
        quick = {n: _quick_look(ref.outputs[n], got.get(n), self.thresholds(n, str(np.asarray(ref.outputs[n]).dtype)), self.per_step) for n in names}
        if all(q is not None for q in quick.values()):
            self.errors.append((ref.label, {n: q[1] for n, q in quick.items()}))
            self._keep(index, ref, got, names, max(q[0] for q in quick.values()))
            return
        judged = judge_example({n: ref.outputs[n] for n in names}, got, self.thresholds, self.equal_nan)
        self.errors.append((ref.label, {j.comparison.name: j.comparison.max_abs for j in judged}))
        problem = any(j.comparison.problem for j in judged)  # a shape or dtype that differs fails at once
        if not (self.per_step or problem):
            self._keep(index, ref, got, names, 0.0)  # NaN and Inf too: the figures over the steps judge them
            return
        self.result.record_judged(judged)
        if problem or not all(j.comparison.ok for j in judged):
            raise Divergence("logits", index, judged, f"outputs differ from torch's at {ref.label}")

    def _keep(self, index: int, ref: Run, got: Mapping[str, np.ndarray], names: list[str], ratio: float) -> None:
        """Remember what the figures need: the worst run (fp32), every run's outputs (over the steps)."""
        if self.per_step:
            if self._worst is None or ratio > self._worst[0]:
                self._worst = (ratio, {n: ref.outputs[n] for n in names}, {n: got[n] for n in names})
            return
        for n in names:
            refs, gots = self._stacked.setdefault(n, ([], []))
            refs.append(np.asarray(ref.outputs[n]).ravel())
            gots.append(np.asarray(got[n]).ravel())

    def choice(self, index: int, label: str, output: str, own: np.ndarray, ref: np.ndarray, ref_logits: np.ndarray) -> None:
        """A greedy choice: counted; where it differs, a near-tie (fp32), or a failure."""
        own, ref = np.asarray(own).reshape(-1), np.asarray(ref).reshape(-1)
        self.chosen_from.add((output, str(np.asarray(ref_logits).dtype)))
        self.chosen += own.size
        self.agreed += int(np.count_nonzero(own == ref))
        if not self.per_step:
            return
        rows = np.asarray(ref_logits).reshape(own.size, -1)
        th = self.thresholds(output, str(np.asarray(ref_logits).dtype))
        for row in np.flatnonzero(own != ref):
            a, b = int(ref[row]), int(own[row])
            gap = float(rows[row, a]) - float(rows[row, b])
            tie = Tie(index, label, int(row), a, b, gap, _allowance(th, rows[row], a, b))
            if not tie.gap <= tie.allowed:
                raise Divergence("token", index, [], tie_text(tie, "tie_margin" if th.tie_margin is not None else "the logit policy"), int(row))
            self.ties.append(tie)

    def finish_case(self) -> None:
        """The report's figures of a case: its worst run (fp32), or all its runs together judged
        over the steps (reduced precision)."""
        if self.per_step:
            if self._worst is not None:
                self.result.record_judged(judge_example(self._worst[1], self._worst[2], self.thresholds, self.equal_nan))
            return
        stacked = {n: (np.concatenate(r), np.concatenate(g)) for n, (r, g) in self._stacked.items()}
        self._stacked = {}
        judged = judge_example({n: r for n, (r, _) in stacked.items()}, {n: g for n, (_, g) in stacked.items()}, self.thresholds, self.equal_nan)
        self.result.record_judged(judged)
        self.over_steps = judged
        failed = [j for j in judged if not j.comparison.ok]
        agreement = self.agreed / self.chosen if self.chosen else 1.0
        need = min((t.token_agreement for t in (self.thresholds(n, d) for n, d in self.chosen_from) if t.token_agreement is not None), default=None)
        if need is not None and self.chosen and agreement < need:
            failed_tokens = f"token agreement {self.agreed}/{self.chosen} ({100 * agreement:.3g}%) < {100 * need:.3g}% over the steps"
            raise Divergence("steps", None, judged, failed_tokens)
        if failed:
            raise Divergence("steps", None, judged, "outputs over the steps fail their policy: " + "; ".join(
                f"{j.comparison.name}: {', '.join(j.failed) or j.comparison.problem}" for j in failed))


def tie_text(tie: Tie, bound: str) -> str:
    """The greedy tokens that differ and how close torch's logits had them."""
    relation = "<=" if tie.gap <= tie.allowed else ">"
    return (
        f"torch chose token {tie.torch_token}, the backend {tie.backend_token} (row {tie.row}); in torch's logits "
        f"{tie.torch_token} leads {tie.backend_token} by {tie.gap:.3g} {relation} {tie.allowed:.3g} ({bound})"
    )


def errors_by_step(errors: list[tuple[str, dict[str, float]]], output: str | None, limit: int = 12) -> str:
    """The largest error of ``output`` (else of every compared output) at each run so far: drift shows."""
    figures = [max((v for n, v in e.items() if output is None or n == output), default=0.0) for _, e in errors]
    shown = [f"{i + 1}: {v:.2g}" for i, v in enumerate(figures)]
    if len(shown) > limit:
        shown = shown[: limit // 2] + ["..."] + shown[-limit // 2:]
    return "  ".join(shown)


@dataclass
class Agreement:
    """A reduced-precision backend's figures over a check's cases: greedy tokens equal to torch's,
    and the smallest SNR of each output over a case's steps."""

    agreed: int = 0
    chosen: int = 0
    snr_db: dict[str, float] = field(default_factory=dict)

    def add(self, judge: StepJudge) -> None:
        self.agreed += judge.agreed
        self.chosen += judge.chosen
        for j in judge.over_steps:
            if j.figures is not None:
                self.snr_db[j.comparison.name] = min(self.snr_db.get(j.comparison.name, math.inf), j.figures.snr_db)

    def note(self) -> str:
        if not self.chosen:
            return ""
        snr = ", ".join(f"{n} SNR over the steps >= {v:.3g} dB" for n, v in self.snr_db.items())
        return f"token agreement {self.agreed}/{self.chosen} ({100 * self.agreed / self.chosen:.3g}%)" + (f"; {snr}" if snr else "")


def ties_note(ties: list[Tie]) -> str:
    """The report's note on near-ties: how many, and the first."""
    if not ties:
        return ""
    first = ties[0]
    return (
        f"{len(ties)} near-tie(s) followed torch's token; first at {first.label}: torch {first.torch_token} vs "
        f"{first.backend_token}, {first.gap:.3g} apart in torch's logits (allowed {first.allowed:.3g})"
    )
