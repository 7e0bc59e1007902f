"""Outputs judged by their structure instead of element by element.

* ``detections=``: one head (a dict) or several (a list), each binding its outputs by name::

      detections={"boxes": "boxes", "scores": "scores", "labels": "labels", "format": "cxcywh",
                  "score_threshold": 0.5, "iou_match": 0.5, "min_iou": 0.9, "max_score_delta": 0.05,
                  "max_unmatched": 0, "name": "detections"}

  ``boxes`` and ``scores`` are required; the rest have defaults (``detections.DetectionRule``;
  ``min_iou`` and ``max_score_delta`` by the target's precision). The bound outputs are compared
  as one set per example (``detections.match``), reported under ``name``.
* ``sequences=``: outputs of token ids (a list of names, or a dict of name -> the smallest share
  of sequences that must match exactly, default 1.0 on fp32 targets and 0.9 on others). A row
  (all axes but the last) is a sequence; the share that match exactly is judged over all the
  check's examples once they ran, and the share of equal tokens is shown beside it.

Parsing is pure Python (options are validated at pytest start-up); judging uses numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import ParityError, SpecError, did_you_mean

if TYPE_CHECKING:
    import numpy as np

    from .results import ParityReport
    from .verdict import Judged

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


@dataclass(frozen=True)
class DetectionRule:
    """How one detection head's outputs pair up and are judged (``structured.parse_detections``)."""

    boxes: str
    scores: str
    labels: str | None = None
    format: str = "xyxy"
    score_threshold: float = 0.5
    iou_match: float = 0.5
    #: None: the target precision's default (``PRECISION_DEFAULTS``)
    min_iou: float | None = None
    max_score_delta: float | None = None
    max_unmatched: int = 0
    #: the name the head is reported under
    name: str = "detections"

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(o for o in (self.boxes, self.scores, self.labels) if o is not None)

    def for_precision(self, precision: str) -> DetectionRule:
        """The rule with the precision's defaults where it sets no bound."""
        defaults = PRECISION_DEFAULTS.get(precision, PRECISION_DEFAULTS["fp32"])
        return replace(
            self, min_iou=defaults["min_iou"] if self.min_iou is None else self.min_iou,
            max_score_delta=defaults["max_score_delta"] if self.max_score_delta is None else self.max_score_delta,
        )


#: per target precision: the smallest IoU of a matched pair and the largest score delta allowed
PRECISION_DEFAULTS: dict[str, dict[str, float]] = {
    "fp32": {"min_iou": 0.999, "max_score_delta": 1e-4},
    "fp16": {"min_iou": 0.99, "max_score_delta": 0.01},
    "int8": {"min_iou": 0.9, "max_score_delta": 0.05},
}


#: a declared head's keys: required, then optional with what each means
DETECTION_KEYS: dict[str, str] = {
    "boxes": "output name of the boxes [..., n, 4] (required)",
    "scores": "output name of the scores [..., n] (required)",
    "labels": "output name of the class labels [..., n]",
    "format": f"box format: {', '.join(BOX_FORMATS)} (default xyxy)",
    "score_threshold": "detections scoring below it are not judged (0..1, default 0.5)",
    "iou_match": "the smallest IoU of two boxes that can be a match (0..1, default 0.5)",
    "min_iou": "the smallest IoU a matched pair may have (0..1; default by precision)",
    "max_score_delta": "the largest score difference of a matched pair (>= 0; default by precision)",
    "max_unmatched": "unmatched detections above the threshold allowed per example (int >= 0, default 0)",
    "name": "the name the head is reported under (default 'detections')",
}
#: the exact-match share of sequences required by default, per target precision
SEQUENCE_DEFAULTS = {"fp32": 1.0, "fp16": 0.9, "int8": 0.9}


def parse_detections(value: Any, where: str) -> tuple[DetectionRule, ...]:
    """``detections=`` as rules; SpecError for a missing or unknown key or a bad value."""
    heads = [value] if isinstance(value, Mapping) else value
    if not isinstance(heads, Sequence) or isinstance(heads, str) or not heads:
        raise SpecError(f"detections must be a dict (one head) or a list of dicts, got {value!r} in {where}", hint=_hint())
    rules = tuple(_rule(head, f"detections[{i}] in {where}" if len(heads) > 1 else f"detections in {where}") for i, head in enumerate(heads))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise SpecError(f"two detection heads are named alike ({', '.join(names)}) in {where}", hint="give each head its own 'name'")
    return rules


def _rule(head: Any, where: str) -> DetectionRule:
    if not isinstance(head, Mapping):
        raise SpecError(f"{where} must be a dict, got {type(head).__name__}", hint=_hint())
    unknown = sorted(set(head) - set(DETECTION_KEYS))
    missing = [k for k in ("boxes", "scores") if k not in head]
    if unknown or missing:
        problem = (f"unknown key(s) {', '.join(map(repr, unknown))}" + did_you_mean(unknown[0], DETECTION_KEYS) if unknown
                   else f"no {' and no '.join(missing)} output")
        raise SpecError(f"{where} has {problem}", hint=_hint())
    for key in ("boxes", "scores", "labels", "name"):
        if key in head and (not isinstance(head[key], str) or not head[key]):
            raise SpecError(f"{where}: {key} must be a non-empty string, got {head[key]!r}", hint=_hint())
    if head.get("format", "xyxy") not in BOX_FORMATS:
        raise SpecError(f"{where}: format must be one of {', '.join(BOX_FORMATS)}, got {head['format']!r}")
    numbers = {k: _number(k, head[k], where) for k in ("score_threshold", "iou_match", "min_iou", "max_score_delta") if k in head}
    unmatched = head.get("max_unmatched", 0)
    if isinstance(unmatched, bool) or not isinstance(unmatched, int) or unmatched < 0:
        raise SpecError(f"{where}: max_unmatched must be an int >= 0, got {unmatched!r}")
    fields = {k: head[k] for k in ("boxes", "scores", "labels", "format", "name") if k in head}
    return DetectionRule(**fields, **numbers, max_unmatched=unmatched)


def _number(key: str, value: Any, where: str) -> float:
    high = math.inf if key == "max_score_delta" else 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= high:
        raise SpecError(f"{where}: {key} must be a number in 0..{high:g}, got {value!r}", hint=f"{key}: {DETECTION_KEYS[key]}")
    return float(value)


def _hint() -> str:
    return "keys: " + "; ".join(f"{k}: {v}" for k, v in DETECTION_KEYS.items())


def parse_sequences(value: Any, where: str) -> tuple[tuple[str, float | None], ...]:
    """``sequences=`` as (output, smallest exact-match share or None for the default) pairs."""
    if isinstance(value, str) or not isinstance(value, (Mapping, Sequence)) or not value:
        raise SpecError(f"sequences must be a list of output names or a dict of name -> share, got {value!r} in {where}",
                        hint="e.g. sequences=['tokens'] or sequences={'tokens': 0.95}")
    items = value.items() if isinstance(value, Mapping) else ((name, None) for name in value)
    out = []
    for name, share in items:
        if not isinstance(name, str) or not name:
            raise SpecError(f"sequences: output names must be non-empty strings, got {name!r} in {where}")
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0):
            raise SpecError(f"sequences: the exact-match share of {name!r} must be a number in 0..1, got {share!r} in {where}")
        out.append((name, None if share is None else float(share)))
    return tuple(out)


def check_declared(rules: tuple[DetectionRule, ...], sequences: tuple[tuple[str, float | None], ...], outputs: Sequence[str], model: str) -> None:
    """SpecError for a declared output the model does not have, or one bound twice."""
    bound = [o for r in rules for o in r.outputs] + [name for name, _ in sequences]
    unknown = [o for o in bound if o not in outputs]
    if unknown:
        raise SpecError(f"detections/sequences name output(s) {', '.join(map(repr, unknown))}, which the model does not have",
                        model=model, hint=f"the model's outputs: {', '.join(outputs)}")
    twice = sorted({o for o in bound if bound.count(o) > 1})
    if twice:
        raise SpecError(f"output(s) {', '.join(map(repr, twice))} declared twice in detections/sequences", model=model)


# -- judging ------------------------------------------------------------------------------------
@dataclass
class SequenceRate:
    """Exact-match and token figures of one sequence output over a check's examples."""

    minimum: float
    rows: int = 0
    rows_equal: int = 0
    tokens: int = 0
    tokens_equal: int = 0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        import numpy as np

        r = ref.reshape(-1, ref.shape[-1]) if ref.ndim else ref.reshape(1, 1)
        g = got.reshape(r.shape)
        equal = r == g
        self.rows += r.shape[0]
        self.rows_equal += int(np.all(equal, axis=-1).sum())
        self.tokens += equal.size
        self.tokens_equal += int(equal.sum())

    def failure(self) -> str | None:
        if not self.rows or self.rows_equal / self.rows >= self.minimum:
            return None
        return (f"exact-match rate {100 * self.rows_equal / self.rows:.3g}% ({self.rows_equal}/{self.rows} sequences) < {100 * self.minimum:.3g}%"
                f"; tokens equal {100 * self.tokens_equal / max(self.tokens, 1):.3g}%")


def judge(judged: list[Judged], reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
          rules: tuple[DetectionRule, ...], sequences: Mapping[str, SequenceRate], precision: str) -> list[Judged]:
    """An example's judgement with the declared outputs judged by structure: each detection head
    replaces its bound outputs by one entry; a sequence output passes here and counts toward its
    rate (judged once the examples ran)."""
    by_name = {j.comparison.name: j for j in judged}
    bound = {o for r in rules for o in r.outputs}
    out = [_sequence(j, reference, got, sequences) if j.comparison.name in sequences else j for j in judged if j.comparison.name not in bound]
    for rule in rules:
        out.append(_detections(rule.for_precision(precision), by_name, reference, got))
    return out


def _sequence(j: Judged, reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], sequences: Mapping[str, SequenceRate]) -> Judged:
    import numpy as np

    name = j.comparison.name
    if j.comparison.problem:  # a shape or dtype difference is a failure whatever the rate
        return j
    sequences[name].add(np.asarray(reference[name]), np.asarray(got[name]))
    return replace(j, comparison=replace(j.comparison, ok=True), failed=[])


def _detections(rule: DetectionRule, by_name: Mapping[str, Judged], reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> Judged:
    from .compare import OutputComparison
    from .detections import match
    from .verdict import Judged

    first = by_name[rule.boxes]
    base = dict(name=rule.name, atol=0.0, rtol=0.0, shape=first.comparison.shape, dtype=first.comparison.dtype)
    missing = [o for o in rule.outputs if o not in got]
    if missing:
        c = OutputComparison(ok=False, problem=f"detections: {', '.join(missing)} missing from the backend's outputs", **base)
        return Judged(c, None, first.thresholds)
    try:
        found = match(dict(reference), dict(got), rule)
    except ValueError as exc:
        return Judged(OutputComparison(ok=False, problem=f"detections: {exc}", **base), None, first.thresholds)
    failed = found.failures(rule)
    problem = None if not failed else "detections differ as sets: " + "; ".join(failed) + f" ({found.describe()})"
    c = OutputComparison(ok=not failed, problem=problem, max_abs=found.max_score_delta, mismatches=found.unmatched + found.label_mismatches,
                         total=found.detections, **base)
    judged = Judged(c, None, first.thresholds, failed)
    judged.detections = found  # type: ignore[attr-defined]
    return judged


def sequence_rates(precision: Mapping[str, str], sequences: tuple[tuple[str, float | None], ...]) -> dict[str, dict[str, SequenceRate]]:
    """Fresh rate counters per backend (``precision``: backend -> its precision) and sequence output."""
    return {b: {name: SequenceRate(SEQUENCE_DEFAULTS.get(p, 1.0) if share is None else share) for name, share in sequences} for b, p in precision.items()}


def rates_failure(report: ParityReport, rates: Mapping[str, Mapping[str, SequenceRate]]) -> ParityError | None:
    """The sequence rates judged once every example ran: each failing one recorded in its backend's
    ``failed_over_examples``, and a ParityError naming them, or None."""
    lines = []
    for backend, outputs in rates.items():
        failed = {name: why for name, rate in outputs.items() if (why := rate.failure())}
        if failed:
            result = report.backends[backend]
            result.failed_over_examples.update(failed)  # a finding: ``decide`` fails the backend on it
            lines.extend(f"[{backend}] output {n!r} over {result.examples} example(s): {why}" for n, why in failed.items())
    if not lines:
        return None
    failing = ",".join(b for b, outputs in rates.items() if any(r.failure() for r in outputs.values()))
    return ParityError("\n".join([f"{report.model}: sequences differ from torch's over the examples", *lines]), model=report.model, backend=failing)
