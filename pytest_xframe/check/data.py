"""A check on the user's own samples (``data=``), around the per-example loop of ``run.py``.

1. ``open_for`` opens the data set before anything is prepared: the calibrated targets may
   calibrate on it (``DataSet.calibration``).
2. ``run_samples`` runs every sample as it is (the first ``data_limit``), in order, on every
   backend, through the check's own per-example runner: each sample is judged by the
   per-example policy like any input, and its figures are kept per backend and output
   (``judge.aggregate.OverData``).
3. ``over_data_failure`` judges the thresholds over the data (``judge.data_policy``); a failure is a
   ``ParityError`` carrying a ``Mismatch`` per failing backend on the data's worst sample (lowest
   SNR), which the check then diagnoses and keeps for replay like any failing input.
4. hypothesis explores around the samples (``inputs.data.explore``), judged by the per-example policy.

``ExampleHooks`` is what every example's judgement gets beyond that policy: the outputs judged by
their structure (``judge.structured``) and, while the samples run, the observer of their figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import ParityError, SpecError
from ..judge.aggregate import OverData
from ..judge.structured import DetectionRule, SequenceRate, judge, sequence_rates

if TYPE_CHECKING:
    import numpy as np

    from ..backends import Target
    from ..inputs.data.dataset import DataSet
    from ..judge.results import ParityReport
    from ..judge.verdict import Judged
    from .memo import SessionMemo
    from .options import CheckOptions
    from .subject import Subject

#: observe(backend, reference, outputs, judged) of one example
Observer = Callable[[str, Mapping[str, "np.ndarray"], Mapping[str, "np.ndarray"], "list[Judged]"], None]


@dataclass
class ExampleHooks:
    """Per check: the structured outputs' rules and rates, and the observer of the data's samples."""

    rules: tuple[DetectionRule, ...] = ()
    #: backend -> sequence output -> its exact-match rate so far
    rates: dict[str, dict[str, SequenceRate]] = field(default_factory=dict)
    precisions: dict[str, str] = field(default_factory=dict)
    observe: Observer | None = None

    @classmethod
    def for_check(cls, options: CheckOptions, targets: list[Target]) -> ExampleHooks:
        precisions = {t.name: t.backend.precision for t in targets}
        return cls(options.detections, sequence_rates(precisions, options.sequences), precisions)

    def restructure(self, backend: str, judged: list[Judged], reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> list[Judged]:
        """The example's judgement with the declared outputs judged by structure."""
        if not self.rules and not self.rates.get(backend):
            return judged
        return judge(judged, reference, got, self.rules, self.rates[backend], self.precisions[backend])


def open_for(memo: SessionMemo, subject: Subject, options: CheckOptions, report: ParityReport) -> DataSet | None:
    """The check's data set, or None without ``data=``; its description goes into the report."""
    if options.data is None:
        return None
    from ..inputs.data.dataset import open_data

    data = open_data(options.data, subject.slots, subject.name, memo.rootdir, memo.workdir, options.data_limit)
    report.data, report.where = data.description, data.where
    return data


def run_samples(data: DataSet, run_one: Callable[..., None], hooks: ExampleHooks, report: ParityReport) -> None:
    """Every sample through ``run_one`` (which raises on a per-example failure), its figures kept
    per backend and output; SpecError for labels that fit no output."""
    from ..inputs.data.explore import from_sample

    current: dict[str, Any] = {}
    labelled = 0

    def observe(backend: str, reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], judged: list[Judged]) -> None:
        sample = current["sample"]
        for j in judged:
            name = j.comparison.name
            over = report.backends[backend].over_data.setdefault(name, OverData(j.thresholds.data))
            found = getattr(j, "detections", None)
            if found is not None:
                over.add_detections(sample.index, found)
            elif not j.comparison.problem and name in reference:
                over.add(sample.index, reference[name], got[name], sample.label)

    hooks.observe = observe
    try:
        for sample in data:
            current["sample"] = sample
            labelled += sample.label is not None
            run_one(from_sample(sample.feeds, sample.where))
            if labelled == 1 and sample.label is not None:
                _labels_fit(sample, report)
    finally:
        hooks.observe = None


def _labels_fit(sample: Any, report: ParityReport) -> None:
    """The first labelled sample: its label must fit some classifier output's rows."""
    if any(over.labelled for result in report.backends.values() for over in result.over_data.values()):
        return
    shapes = ", ".join(f"{name} {list(c.shape)}" for result in report.backends.values() for name, c in result.worst.items())
    raise SpecError(
        f"data sample {sample.where} has a label of shape {list(sample.label.shape)}, which fits no output's rows of class scores",
        model=report.model, cause=f"the outputs: {shapes}",
        hint="a label holds one class index per row of a float output [..., classes] (for a batch of 1: one index)",
    )


def over_data_failure(data: DataSet, run_one: Callable[..., None], hooks: ExampleHooks, report: ParityReport, subject: Subject,
                      targets: list[Target]) -> ParityError | None:
    """The thresholds over the data judged once every sample ran: a ParityError on the worst
    sample of the first failing output (its lowest SNR), naming every failing figure, or None."""
    from ..diagnose.failures import mismatch_error
    from ..inputs.data.explore import from_sample
    from ..judge.mismatch import Mismatch

    failing = {b: {n: why for n, over in r.over_data.items() if (why := over.failures())} for b, r in report.backends.items()}
    failing = {b: outputs for b, outputs in failing.items() if outputs}
    if not failing:
        return None
    backend, outputs = next(iter(failing.items()))
    worst = report.backends[backend].over_data[next(iter(outputs))].worst_sample()
    sample = data.sample(0 if worst is None else worst)
    feeds = from_sample(sample.feeds, f"{sample.where}, the worst of the data")
    captured: dict[str, tuple] = {}
    hooks.observe = lambda b, ref, got, judged: captured.__setitem__(b, (ref, got, judged))
    try:
        run_one(feeds, record=False)
    finally:
        hooks.observe = None
    mismatches = [
        Mismatch(b, feeds, captured[b][0], captured[b][1], tuple(_failed(j, failing[b].get(j.comparison.name)) for j in captured[b][2]))
        for b in failing
    ]
    error = mismatch_error(subject.name, mismatches, targets)
    head = f"{subject.name}: over the data ({data.description}), outputs differ from torch on {', '.join(failing)}"
    spread = [f"[{b}] output {n!r} over the data: {report.backends[b].over_data[n].describe(data.where)}" for b in failing for n in failing[b]]
    error.report_text = "\n".join([head, *error.report_text.splitlines()[1:], *spread])
    error.summary = head
    return error


def _failed(j: Judged, why: list[str] | None) -> Judged:
    """An output's judgement on the worst sample, failed by the figures over the data."""
    return j if not why else replace(j, comparison=replace(j.comparison, ok=False), failed=why)
