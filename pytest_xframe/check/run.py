"""One parity check, owned by a ``CheckRun``: export once, prepare each backend once, then let
hypothesis draw inputs.

Every drawn input runs through torch (the reference) and each backend; each backend's outputs are
judged by its policy. With ``data=``, the user's samples run first, as they are, and are judged over
the data set too (``check.data``); hypothesis then explores around them. Hypothesis shrinks a failing input to a minimal one, whose ``Mismatch``es
``diagnose`` explains and keeps; ``judge.decide.decide`` turns what was found into the verdicts.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import Target
from ..diagnose.failures import aggregate_failure, finish_failure, keep_error, mismatch_error
from ..errors import USER_CODE_FAILURES, ParityError, VacuousCheckWarning, XframeError, informative_lines
from ..export.outputs import real_pairs
from ..export.to_onnx import example_feeds
from ..identity import feeds_digest, model_fingerprint, resolve_export_key, slots_key, weights_digest
from ..imports import import_hypothesis
from ..inputs.spec import InputSlot, bind_inputs, calls_positionally
from ..inputs.strategies import Feeds, feeds_strategy, shared_dims
from ..judge.decide import decide, failures_over_examples
from ..judge.mismatch import Mismatch
from ..judge.policy import check_names
from ..judge.results import BackendResult, ParityReport
from ..judge.structured import check_declared, rates_failure
from ..judge.vacuity import VacuityTracker
from ..judge.verdict import Judged, judge_example, policy_for, snr_judged
from ..quiet import captured
from . import data as check_data
from . import preflight, quantization
from .data import ExampleHooks
from .forward import Forward, bounded, confirm_deterministic, is_out_of_memory, out_of_memory, own_copy
from .hypothesis_compat import current_choices, forced_seed, seed_keeping_database, set_database_key, without_local_constants
from .memo import SessionMemo
from .model_state import ModelState, note_state, restore_and_warn
from .options import CheckOptions
from .search import Drawn, Sharing, Split, database_view, failure_phases, judging_first, known_failures, own_phases, shared_phases, split
from .subject import Subject
from .targets import export_plan, prepare_target
from .threads import limit_torch

if TYPE_CHECKING:
    from ..inputs.data.dataset import DataSet

__all__ = ["BackendResult", "CheckRun", "ParityReport", "RuntimeCrash", "run_check", "run_target", "settle_ended"]


@dataclass
class CheckRun:
    """One check's state, in one place: what the session shares (``memo``), what the check was
    asked (``options``), the model under check once admitted (``subject``, its ``state`` to put
    back), the user's samples (``data``), the backends ready to run (``targets``), what every
    example's judgement gets beyond its policy (``hooks``), what the examples showed
    (``vacuity``), and the records (``report``)."""

    memo: SessionMemo
    options: CheckOptions
    report: ParityReport
    #: where failing cases are kept for replay
    artifacts_root: Path
    #: the test this check belongs to apart from its backend (``Xframe.check``): the marker's runs
    #: of one test share their seed and torch's outputs, other tests draw their own
    test_key: tuple = ()
    #: the marker's backends of this test, each checked in a run of its own, and this run's place
    #: among them: they share a draw of inputs and search on their own for a few more (``check/search.py``)
    sharing: Sharing | None = None
    subject: Subject | None = None
    state: ModelState | None = None
    targets: list[Target] = field(default_factory=list)
    vacuity: VacuityTracker = field(default_factory=VacuityTracker)
    data: DataSet | None = None
    hooks: ExampleHooks = field(default_factory=ExampleHooks)

    @property
    def workdir(self) -> Path:
        """Where this session's exports and conversions are written (diagnosis converts there too)."""
        return self.memo.workdir

    @property
    def model_key(self) -> tuple:
        """What torch's outputs are memoised under: shared only between the runs of one test, as a
        model's forward may read state its fingerprint cannot see (a global flag another test sets)."""
        assert self.subject is not None
        return (self.test_key, self.subject.fingerprint, self.subject.slots_key)

    def run(self, model: Any, inputs: Any) -> ParityReport:
        """The whole check; raises ParityError / ExportError / ConversionError, returns the report.
        The verdicts are decided however it ends."""
        __tracebackhide__ = True
        try:
            try:
                self._run(model, inputs)
            except MemoryError:  # drawing or converting: this check fails, the session goes on
                raise out_of_memory(self.report.model, "the check") from None
        except BaseException as exc:
            settle_ended(self.report, exc, self.artifacts_root)
            raise
        finally:
            decide(self.report)
        return self.report

    def _run(self, model: Any, inputs: Any) -> None:
        __tracebackhide__ = True
        import_hypothesis()
        name = self.report.model = self.options.name or type(model).__name__
        slots = self._preflight(model, inputs, name)
        self.state = ModelState.of(model)
        self.memo.limit_threads(limit_torch)
        try:
            self.subject = self._subject(model, slots, name)
            check_names(self.options.policy, self.subject.output_names, self.memo.backends.names(), name)
            check_declared(self.options.detections, self.options.sequences, self.subject.output_names, name)
            self.data = check_data.open_for(self.memo, self.subject, self.options, self.report)  # before preparing: calibration may read it
            self._prepare_targets(name)
            self.hooks = ExampleHooks.for_check(self.options, self.targets)
            self._examples()
        finally:
            # forward and the exporters may change buffers, attributes and modes: put everything back
            restore_and_warn(self.state, name)

    def _prepare_targets(self, name: str) -> None:
        """Every backend prepared (calibrated on ``data=`` where given), and what each int8 target quantized."""
        __tracebackhide__ = True
        assert self.subject is not None
        # only with the user's word for the code: an export reused across runs (export.cache)
        export_key = None if self.options.export_key is None else resolve_export_key(self.options.export_key, self.memo.rootdir, name)
        for b in self.options.backends:
            backend = self.memo.backends.get(b)
            result = self.report.backends.setdefault(b, BackendResult(b, precision=backend.precision))
            self.targets.append(prepare_target(self.memo, backend, self.subject, self.options, result, export_key, self.data))
        for t in self.targets:
            # warn < note < _prepare_targets < _run < run < run_check < Xframe._check < Xframe.check < the test's call
            quantization.note(self.report.backends[t.name], t, self.options, name, stacklevel=8)

    def _preflight(self, model: Any, inputs: Any, name: str) -> tuple[InputSlot, ...]:
        """Everything refused before anything runs: the model, the inputs against ``forward``, the
        largest input's size, each backend's export plan."""
        preflight.validate_model(model, name)
        slots = bind_inputs(model, inputs, name)
        shared_dims(slots)
        preflight.check_input_size(slots, self.options.max_input_bytes, name)
        for b in self.options.backends:
            preflight.supported_plan(export_plan(self.memo.backends.get(b), self.options, model, name), b, name)
        return slots

    def _subject(self, model: Any, slots: tuple[InputSlot, ...], name: str) -> Subject:
        """The model and its inputs as the check sees them; torch runs twice on the export's example
        (a model that is not deterministic is named before anything is exported)."""
        positional = calls_positionally(model, slots)
        forward = Forward(model, slots, positional, name)
        weights = weights_digest(model)
        fingerprint = model_fingerprint(model, weights)
        key = slots_key(slots)
        output_names = self.memo.output_names(
            (fingerprint, key), lambda: tuple(confirm_deterministic(forward, example_feeds(slots), None, self.state))
        )
        return Subject(model, name, slots, positional, fingerprint, key, output_names, weights)

    def forward(self) -> Forward:
        assert self.subject is not None
        return Forward(self.subject.model, self.subject.slots, self.subject.positional, self.subject.name)

    def _examples(self) -> None:
        """Judge the samples of ``data=`` (then the figures over them), then the drawn examples; a
        failing one is confirmed, diagnosed and kept."""
        __tracebackhide__ = True
        example = self.example_runner()
        try:
            if self.data is not None:
                bounded(lambda: self._over_data(example), self.report.model)
            bounded(self.hypothesis_test(), self.report.model)
        except RuntimeCrash as crash:
            raise crash.error from crash.__cause__
        except ParityError as failure:
            first = failure.mismatches[0]
            confirm_deterministic(self.forward(), first.feeds, first.reference, self.state)  # before blaming a step
            note_state(failure, self.state)
            finish_failure(failure, self)
        self._warn_vacuous()
        for result in self.report.backends.values():
            result.failed_over_examples = failures_over_examples(result)
        failed = aggregate_failure(self.report)
        sequences = rates_failure(self.report, self.hooks.rates)  # records its failures either way
        failed = failed or sequences
        if failed is not None:
            raise failed

    def _warn_vacuous(self) -> None:
        """VacuousCheckWarning for a check that cannot fail; where ``-W error`` makes it an error,
        every backend's result records why."""
        __tracebackhide__ = True
        try:
            # warn < _warn_vacuous < _examples < _run < run < run_check < Xframe._check < Xframe.check < the test's call
            self.vacuity.warn(self.report.model, self.report.test_id, stacklevel=9)
        except VacuousCheckWarning as exc:
            for result in self.report.backends.values():
                result.vacuous = str(exc)
            raise

    def _over_data(self, example: Callable[..., None]) -> None:
        """Every sample of ``data=`` as it is, then the thresholds over them (``check.data``)."""
        __tracebackhide__ = True
        assert self.data is not None and self.subject is not None
        check_data.run_samples(self.data, example, self.hooks, self.report)
        failure = check_data.over_data_failure(self.data, example, self.hooks, self.report, self.subject, self.targets)
        if failure is not None:
            raise failure

    def hypothesis_test(self) -> Callable[[], None]:
        """The check's search: one ``@given`` run of ``max_examples``, or, for the marker's run of
        one of several backends, the shared draw then this backend's own search (``check/search.py``)."""
        from hypothesis import settings

        phases = [p for p in settings.default.phases if p.name != "explain"]  # noise here: lines of our own code
        plan = split(self.options.max_examples, self.sharing)

        def search() -> None:
            __tracebackhide__ = True
            with without_local_constants():  # one seed draws the same inputs whatever the session imported
                if plan is None:
                    self._given(self.options.max_examples, phases, self._user_database())()
                else:
                    self._shared_then_own(plan, phases)

        return search

    def _shared_then_own(self, plan: Split, phases: list[Any]) -> None:
        """This backend's known failures, then the shared draw (the same inputs on every backend),
        then hypothesis's targeting steered by this backend's error from the shared inputs it
        judged worst."""
        __tracebackhide__ = True
        inner, key, drawn = self._user_database(), self._database_key(), Drawn()
        failures = database_view(inner, key, failures_only=True)
        known = known_failures(inner, key)
        if known:
            self._given(known, failure_phases(phases), failures, drawn=drawn)()
        self._given(plan.drawn, shared_phases(phases), failures, drawn=drawn, judged=plan.shared)()
        own, start = own_phases(phases), drawn.best()
        if plan.own and own is not None and start:
            self._given(len(start) + plan.own, own, database_view(inner, key, replay=start), replay=drawn)()

    def _given(
        self, max_examples: int, phases: list[Any], database: Any, *, drawn: Drawn | None = None, replay: Drawn | None = None,
        judged: int | None = None,
    ) -> Any:
        """A ``@given`` test drawing the check's inputs, seeded, filed under the check's database key;
        ``judged``: how many of its inputs to judge (``judging_first``)."""
        from hypothesis import HealthCheck, given, settings

        assert self.subject is not None
        example = self.example_runner(drawn=drawn, replay=replay)
        if judged is not None and judged < max_examples:
            example = judging_first(example, judged)
        if self.data is not None:  # around the samples of data= (inputs.data.explore)
            from ..inputs.data.explore import around_samples

            strategy = around_samples(self.data, self.options.data_scale)
        else:
            strategy = feeds_strategy(self.subject.slots)

        @settings(
            max_examples=max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
            report_multiple_bugs=False,
            phases=phases,
            database=database,
        )
        @given(strategy)
        def parity(feeds: Feeds) -> None:
            __tracebackhide__ = True
            example(feeds)

        set_database_key(parity, self._database_key())
        seed_keeping_database(parity, self.options.seed if self.options.seed is not None else self.memo.example_seed(self.model_key))
        return parity

    def _database_key(self) -> bytes:
        assert self.subject is not None
        return f"{self.report.test_id}|{','.join(self.options.backends)}|{self.subject.fingerprint}".encode()

    def _user_database(self) -> Any:
        """hypothesis's example database, where hypothesis would use one: not under a seed the check
        was given (as ``@seed``) or ``--hypothesis-seed``."""
        from hypothesis import settings

        return None if self.options.seed is not None or forced_seed() is not None else settings.default.database

    def example_runner(self, *, drawn: Drawn | None = None, replay: Drawn | None = None) -> Callable[[Feeds], None]:
        """One drawn input: torch's outputs (memoised), each backend's, judged by its policy; a
        failure raises a ParityError carrying a ``Mismatch`` per failing backend. The ``hooks``
        regroup structured outputs and observe the samples of ``data=`` (run outside hypothesis,
        steering nothing; ``record=False`` runs one again without counting it). Steers hypothesis
        by each backend's error (``target``). ``drawn``: the shared draw, which steers nothing (its
        inputs must not depend on the backend: even the Pareto front hypothesis keeps of the scores
        draws from its random generator) and notes each passing input's choices and scores instead;
        ``replay``: the own search, to which an input the shared draw judged passes again with its
        scores, nothing run twice."""
        from hypothesis import target

        forward, model_key, hooks = self.forward(), self.model_key, self.hooks
        policies = {t.name: policy_for(self.options, t.name, t.backend.precision) for t in self.targets}

        def example(feeds: Feeds, record: bool = True) -> None:
            __tracebackhide__ = True
            start = time.perf_counter()
            digest = feeds_digest(feeds)  # hashed once: the torch-output memo's key and the vacuity check's
            if replay is not None and digest in replay.scores:
                _steer(target, replay.scores[digest])
                return
            try:
                reference = self.memo.reference(model_key, feeds, lambda: forward.outputs(feeds), digest)
            except XframeError as exc:  # the spec's mistake or an out-of-memory: stop, do not shrink
                raise RuntimeCrash(exc) from None
            torch_seconds = time.perf_counter() - start
            self.vacuity.see(digest, reference)
            mismatches, scores = [], {}
            for t in self.targets:
                result = self.report.backends[t.name]
                start = time.perf_counter()
                got = run_target(t, feeds, forward.model_name)
                result.run_seconds += time.perf_counter() - start + torch_seconds / len(self.targets)
                judged = _judged(reference, got, policies[t.name], self.options.equal_nan, forward.model_name)
                self.vacuity.see_judged(t.name, reference, judged, self.options.equal_nan)  # per output, before any regrouping
                judged = hooks.restructure(t.name, judged, reference, got)
                if record:
                    result.record_judged(judged)
                if hooks.observe is not None:  # a sample of data=, outside hypothesis
                    hooks.observe(t.name, reference, got, judged)
                else:
                    scores.update(_scores(judged, t.name))
                if not all(j.comparison.ok for j in judged):
                    mismatches.append(Mismatch(t.name, feeds, reference, got, tuple(judged)))
            if drawn is None:
                _steer(target, scores)
            if mismatches:
                raise mismatch_error(forward.model_name, mismatches, self.targets)
            if drawn is not None:
                drawn.add(digest, current_choices(), scores)

        return example


def _scores(judged: list[Any], backend: str) -> dict[str, float]:
    """What hypothesis steers by for one backend's outputs on one input: the worst tolerance ratio
    and, where its policy judges SNR, the lowest SNR (negated: hypothesis maximises)."""
    worst = max((j.comparison.tolerance_ratio for j in judged if not j.comparison.problem), default=0.0)
    scores = {f"tolerance ratio, {backend}": min(worst, 1e12)}
    snr = snr_judged(judged)
    if snr is not None:
        scores[f"-SNR dB, {backend}"] = -snr
    return scores


def _steer(target: Callable[..., Any], scores: dict[str, float]) -> None:
    for label, score in scores.items():
        target(score, label=label)


def run_check(
    memo: SessionMemo, model: Any, inputs: Any, options: CheckOptions, *, report: ParityReport, artifacts_root: Path, test_key: tuple = (),
    sharing: Sharing | None = None,
) -> ParityReport:
    """``CheckRun(...).run(model, inputs)``: the whole check, its verdicts decided."""
    __tracebackhide__ = True
    return CheckRun(memo, options, report, artifacts_root, test_key, sharing=sharing).run(model, inputs)


def settle_ended(report: ParityReport, exc: BaseException, artifacts_root: Path) -> None:
    """A check (one-shot or loop) stopped on ``exc``: the verdicts say so; an export or conversion
    error keeps its model."""
    report.ended_by = exc
    if isinstance(exc, XframeError):
        keep_error(exc, artifacts_root, report.test_id)
        for result in report.backends.values():
            if result.mismatch is None and not result.failed_over_examples:
                result.artifacts = exc.kept


class RuntimeCrash(BaseException):
    """Carries a backend's run-time crash out of hypothesis, which re-raises BaseException at once."""

    def __init__(self, error: XframeError) -> None:
        super().__init__(str(error))
        self.error = error


def run_target(t: Target, feeds: Feeds, model_name: str) -> dict[str, Any]:
    try:
        with captured() as printed:  # TensorFlow logs from C++ at a model's first run
            return real_pairs(t.prepared.runner.run(own_copy(feeds)))
    except USER_CODE_FAILURES as exc:
        # a crash is not a numeric mismatch: stop at the first input that causes it
        # instead of letting hypothesis shrink (each try costs a framework error)
        if isinstance(exc, MemoryError) or is_out_of_memory(exc):
            raise RuntimeCrash(out_of_memory(model_name, f"{t.name} running the converted model", feeds, exc)) from None
        hint = _explained(t, exc) or "the converted model may not support these shapes or values"
        crash = XframeError(
            f"{t.name} raised while running the converted model ({t.label})",
            model=model_name,
            backend=t.name,
            cause=f"{type(exc).__name__}: {informative_lines(str(exc))}\n  input: {feeds!r}",
            hint=f"{hint}; run with -v for the full error",
            details="".join(traceback.format_exception(exc)) + printed.section(),
        )
        crash.onnx_path, crash.external_data = t.artifact.path, t.artifact.files[1:]
        crash.inputs, crash.converted_path = feeds, t.prepared.converted_path_for(feeds)
        raise RuntimeCrash(crash) from exc


def _explained(t: Target, exc: BaseException) -> str | None:
    """The runner's own reading of its runtime's error (``Runner.explain``), where it has one; an
    ``explain`` that fails itself gives none: the crash it was asked about is the error to report."""
    explain = getattr(t.prepared.runner, "explain", None)
    try:
        return explain(exc) if explain is not None else None
    except Exception:  # noqa: BLE001 - a plugin's explain must not hide the crash
        return None


def _judged(reference: dict[str, Any], got: dict[str, Any], policy: Callable, equal_nan: bool, model_name: str) -> list[Judged]:
    """``judge_example``; a policy that cannot mean what it says (``SpecError``) stops the check at once."""
    try:
        return judge_example(reference, got, policy, equal_nan)
    except XframeError as exc:
        exc.model = exc.model or model_name
        raise RuntimeCrash(exc) from None
