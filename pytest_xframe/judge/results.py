"""What a check produces: figures and findings per backend (``BackendResult``) and the check's
``ParityReport``. Plain data: the check loop fills the figures, whoever finds something (the loop,
diagnosis, the baseline) records it as a finding, ``decide.decide`` alone turns findings into the
verdict, and reports read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .aggregate import OverData
from .compare import OutputComparison
from .verdict import Judged, MetricAggregate

if TYPE_CHECKING:
    from ..check.options import CheckOptions
    from .mismatch import Mismatch


@dataclass
class BackendResult:
    """Figures for one backend within one check; the worst comparison seen per output."""

    backend: str
    onnx: str = ""
    examples: int = 0
    worst: dict[str, OutputComparison] = field(default_factory=dict)
    export_seconds: float = 0.0
    #: importing the backend's framework (TensorFlow: seconds), kept apart from convert and load
    import_seconds: float = 0.0
    convert_seconds: float = 0.0
    load_seconds: float = 0.0
    run_seconds: float = 0.0
    cache_hit: bool = False
    #: passed / failed / error / skipped, decided by ``decide.decide`` alone ("pending" until then)
    verdict: str = "pending"
    message: str = ""
    artifacts: str | None = None
    #: for a failure: the step that broke and the first divergent ONNX node, as text
    diagnosis: str | None = None
    #: a calibrated backend's samples: source, count, seed, digest (``Calibration.describe``)
    calibration: dict[str, Any] | None = None
    #: the ONNX export came from an earlier run's, reused on the user's ``export_key``
    export_cache_hit: bool = False
    #: what the target computes in (``Backend.precision``): decides its default policy
    precision: str = "fp32"
    #: per output: the policy in force and the metrics over every example (``judge.MetricAggregate``)
    metrics: dict[str, MetricAggregate] = field(default_factory=dict)
    #: per output: its figures over the samples of ``data=`` (``aggregate.OverData``)
    over_data: dict[str, OverData] = field(default_factory=dict)
    #: an int8 target's weight tensors, quantized of total (``backends.quantization.QuantizationCount.to_dict``)
    quantization: dict[str, Any] | None = None

    # -- findings: what ``decide.decide`` decides from ------------------------------------------
    #: the minimal failing example, when this backend failed its policy on one
    mismatch: Mismatch | None = None
    #: outputs failing a threshold judged over all the examples (top-k agreement): output -> why
    failed_over_examples: dict[str, str] = field(default_factory=dict)
    #: why the check cannot fail (``VacuousCheckWarning`` made an error by ``-W error``)
    vacuous: str | None = None
    #: the record's ``baseline`` field: the check's entry in the baseline, drifted figures included
    baseline: dict[str, Any] | None = None
    #: why this quantized target fails: it quantized nothing (``strict_quantization``, or ``-W error``)
    unquantized: str | None = None
    #: why this backend could not run here (its packages are missing): it is skipped
    unavailable: str | None = None

    @property
    def drifted(self) -> list[dict[str, Any]]:
        return list((self.baseline or {}).get("drift") or [])

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.worst.values()), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((c.max_rel for c in self.worst.values()), default=0.0)

    @property
    def tolerance_ratio(self) -> float:
        return max((c.tolerance_ratio for c in self.worst.values()), default=0.0)

    def record(self, comparisons: list[OutputComparison]) -> None:
        self.examples += 1
        for c in comparisons:
            seen = self.worst.get(c.name)
            if seen is None or c.problem or (not seen.problem and c.tolerance_ratio > seen.tolerance_ratio):
                self.worst[c.name] = c

    def record_judged(self, judged: list[Judged]) -> None:
        """One example's comparisons and metrics, judged by the policy."""
        self.record([j.comparison for j in judged])
        for j in judged:
            aggregate = self.metrics.setdefault(j.comparison.name, MetricAggregate(j.policy or j.thresholds))
            if j.figures is not None:
                aggregate.add(j.figures)


@dataclass
class ParityReport:
    """What ``xframe.check`` returns: per backend, per output figures."""

    test_id: str
    options: CheckOptions
    model: str = ""
    backends: dict[str, BackendResult] = field(default_factory=dict)
    #: the samples of ``data=``: what they are ("200 samples in data.npz"), and where each one is
    data: str | None = None
    where: Callable[[int], str] | None = None
    #: the backends asked for that could not run here (skipped, not checked), in the order asked
    unavailable: dict[str, BackendResult] = field(default_factory=dict)
    #: the exception that ended the check, None when it ran through (read by ``decide.decide``)
    ended_by: BaseException | None = field(default=None, repr=False)

    def __getitem__(self, backend: str) -> BackendResult:
        return self.backends[backend]

    @property
    def passed(self) -> bool:
        return all(r.verdict == "passed" for r in self.backends.values())


