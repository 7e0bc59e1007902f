"""One parity check: export once, prepare each backend once, then let hypothesis draw inputs.

Every drawn input runs through torch (the reference) and each backend; outputs are compared one
by one. Hypothesis shrinks a failing input; ``failures`` diagnoses and keeps the minimal one.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends import Backend, Prepared, Target, TorchSource
from ..diagnose.failures import aggregate_failure, finish_failure, for_backend, keep_error, mismatch_error
from ..errors import (
    BackendUnavailable,
    ConversionError,
    ExportError,
    ParityError,
    TooLargeError,
    VacuousCheckWarning,
    XframeError,
    describe_exception,
    first_line,
    informative_lines,
)
from ..export.cache import export_stack
from ..export.to_onnx import OnnxArtifact, example_feeds, export
from ..identity import keyed_entry, model_fingerprint, resolve_export_key, slots_key, text_digest, weights_digest
from ..imports import import_hypothesis
from ..inputs.calibration import Calibration
from ..inputs.spec import InputSlot, bind_inputs, calls_positionally
from ..inputs.strategies import Feeds, feeds_strategy, shared_dims
from ..judge.policy import check_names
from ..judge.results import BackendResult, ParityReport
from ..judge.structured import check_declared, rates_failure
from ..judge.vacuity import VacuityTracker
from ..judge.verdict import Judged, judge_example, policy_for, snr_judged
from ..plugin.options import CheckOptions
from . import data as check_data
from . import preflight, quantization
from .data import ExampleHooks
from .forward import Forward, bounded, confirm_deterministic, is_out_of_memory, out_of_memory
from .hypothesis_compat import seed_keeping_database, set_database_key
from .memo import SessionMemo
from .model_state import ModelState, note_state, restore_and_warn
from .subject import Subject
from .threads import limit_torch

__all__ = ["BackendResult", "ParityReport", "run_check"]


def run_check(
    memo: SessionMemo,
    model: Any,
    inputs: Any,
    options: CheckOptions,
    *,
    report: ParityReport,
    artifacts_root: Path,
    test_key: tuple = (),
) -> ParityReport:
    """The whole check; raises ParityError / ExportError / ConversionError, returns the report.

    ``test_key`` names the test a check belongs to apart from its backend (``Xframe.check``): the
    marker's runs of one test share their seed and torch's outputs, other tests draw their own.
    """
    __tracebackhide__ = True
    import_hypothesis()
    name = options.name or type(model).__name__
    report.model = name
    slots = _preflight(memo, model, inputs, options, name)
    state = ModelState.of(model)
    memo.limit_threads(limit_torch)
    try:
        subject = _subject(memo, model, slots, name, state)
        check_names(options.policy, subject.output_names, memo.backends.names(), name)
        check_declared(options.detections, options.sequences, subject.output_names, name)
        data = check_data.open_for(memo, subject, options, report)  # before preparing: calibration may read it
        targets = _prepare_targets(memo, subject, options, report, data)
        # torch's outputs are shared only between the runs of one test: a model's forward may read
        # state its fingerprint cannot see (a global flag another test sets)
        model_key = (test_key, subject.fingerprint, subject.slots_key)
        vacuity = VacuityTracker()
        hooks = ExampleHooks.for_check(options, targets)
        run_one = _example_runner(memo, subject, targets, options, report, model_key, vacuity, hooks)
        parity = _hypothesis_test(memo, subject, options, report, model_key, run_one, data)
        try:
            if data is not None:
                bounded(lambda: _over_data(data, run_one, hooks, report, subject, targets), name)
            bounded(parity, name)
        except _RuntimeCrash as crash:
            raise crash.error from crash.__cause__
        except ParityError as failure:
            confirm_deterministic(_forward(subject), failure.feeds, failure.reference, state)  # before blaming a step
            note_state(failure, state)
            finish_failure(failure, report, targets, subject, options, artifacts_root, memo.workdir)
        _warn_vacuous(vacuity, report)
        failed_over_examples = aggregate_failure(report) or rates_failure(report, hooks.rates)
        if failed_over_examples is not None:
            raise failed_over_examples
        for result in _pending(report):
            result.verdict = "passed"
        return report
    except MemoryError:  # drawing or converting: this check fails, the session goes on
        raise out_of_memory(name, "the check") from None
    except XframeError as exc:
        keep_error(exc, artifacts_root, report.test_id)
        for result in _pending(report):
            result.verdict = "skipped" if isinstance(exc, BackendUnavailable) else "error"
            result.message = result.message or first_line(str(exc))
            result.artifacts = exc.kept
        raise
    finally:
        # forward and the exporters may change buffers, attributes and modes: put everything back
        restore_and_warn(state, name)


def _prepare_targets(memo: SessionMemo, subject: Subject, options: CheckOptions, report: ParityReport, data: Any) -> list[Target]:
    """Every backend prepared (calibrated on ``data=`` where given), and what each int8 target quantized."""
    __tracebackhide__ = True
    # only with the user's word for the code: an export reused across runs (export/cache.py)
    export_key = None if options.export_key is None else resolve_export_key(options.export_key, memo.rootdir, subject.name)
    targets = [_prepare_target(memo, memo.backends.get(b), subject, options, report, export_key, data) for b in options.backends]
    for t in targets:
        quantization.note(report.backends[t.name], t, options, subject.name)
    return targets


def _over_data(data: Any, run_one: Callable[..., None], hooks: ExampleHooks, report: ParityReport, subject: Subject, targets: list[Target]) -> None:
    """Every sample of ``data=`` as it is, then the thresholds over them (``check.data``)."""
    __tracebackhide__ = True
    check_data.run_samples(data, run_one, hooks, report)
    failure = check_data.over_data_failure(data, run_one, hooks, report, subject, targets)
    if failure is not None:
        raise failure


def _preflight(memo: SessionMemo, model: Any, inputs: Any, options: CheckOptions, name: str) -> tuple[InputSlot, ...]:
    """Everything refused before anything runs: the model, the inputs against ``forward``, the
    largest input's size, each backend's export plan."""
    preflight.validate_model(model, name)
    slots = bind_inputs(model, inputs, name)
    shared_dims(slots)
    preflight.check_input_size(slots, options.max_input_bytes, name)
    for b in options.backends:
        preflight.supported_plan(_export_plan(memo.backends.get(b), options), b, name)
    return slots


def _warn_vacuous(vacuity: VacuityTracker, report: ParityReport) -> None:
    """VacuousCheckWarning for a check that cannot fail; where ``-W error`` makes it an error,
    the report's verdict says so."""
    __tracebackhide__ = True
    try:
        vacuity.warn(report.model, report.test_id)
    except VacuousCheckWarning as exc:
        for result in report.backends.values():
            result.verdict, result.message = "failed", str(exc)
        raise


def _pending(report: ParityReport) -> list[BackendResult]:
    """The backends without a verdict yet."""
    return [result for result in report.backends.values() if result.verdict == "pending"]


def _subject(memo: SessionMemo, model: Any, slots: tuple[InputSlot, ...], name: str, state: ModelState) -> Subject:
    """The model and its inputs as the check sees them; torch runs twice on the export's example
    (a model that is not deterministic is named before anything is exported)."""
    positional = calls_positionally(model, slots)
    forward = Forward(model, slots, positional, name)
    weights = weights_digest(model)
    fingerprint = model_fingerprint(model, weights)
    key = slots_key(slots)
    output_names = memo.output_names((fingerprint, key), lambda: tuple(confirm_deterministic(forward, example_feeds(slots), None, state)))
    return Subject(model, name, slots, positional, fingerprint, key, output_names, weights)


def _forward(subject: Subject) -> Forward:
    return Forward(subject.model, subject.slots, subject.positional, subject.name)


def _export_plan(backend: Backend, options: CheckOptions) -> tuple[tuple[str, int | None], ...]:
    if options.exporter is not None:
        return ((options.exporter, options.opset),)
    if options.opset is not None:
        return tuple(dict.fromkeys((exp, options.opset) for exp, _ in backend.exports))
    return backend.exports


def _exporter(subject: Subject, exporter: str, opset: int | None) -> Callable[[Path], OnnxArtifact]:
    """The export of the subject by ``exporter`` at ``opset`` into a given directory."""
    return lambda out_dir: export(
        subject.model, subject.slots, subject.output_names, exporter=exporter, opset=opset, out_dir=out_dir,
        model_name=subject.name, positional=subject.positional,
    )


def _keyed(subject: Subject, export_key: str | None, exporter: str, opset: int | None) -> dict[str, str] | None:
    """The cross-run cache key of this export, when the user export_key for the code (``export_key``)."""
    if export_key is None:
        return None
    import json

    described = {"exporter": exporter, "opset": str(opset), "inputs": text_digest(subject.slots_key),
                 "output_names": json.dumps(subject.output_names), "positional": str(subject.positional), **export_stack()}
    return keyed_entry(export_key, subject.weights, subject.model, described)


def _prepare_target(
    memo: SessionMemo, backend: Backend, subject: Subject, options: CheckOptions, report: ParityReport, export_key: str | None = None,
    data: Any = None,
) -> Target:
    """The backend's runner on the first export in its plan that exports and converts."""
    result = report.backends.setdefault(backend.name, BackendResult(backend.name, precision=backend.precision))
    missing = backend.missing()
    if missing:
        raise BackendUnavailable(f"backend {backend.name} is not installed", model=subject.name, backend=backend.name, cause=missing)
    errors: list[XframeError] = []
    for exporter, opset in _export_plan(backend, options):
        try:
            key = (subject.fingerprint, subject.slots_key, exporter, opset)
            artifact, fresh_export = memo.export(key, _exporter(subject, exporter, opset), _keyed(subject, export_key, exporter, opset))
        except ExportError as exc:
            errors.append(for_backend(exc, backend.name, None))
            continue
        calibration = _calibration(subject, options, data) if backend.calibrated else None
        try:
            prepared, fresh_prepare, import_seconds = memo.prepare(
                backend, artifact, subject.name, TorchSource(subject.model, subject.slots, subject.positional),
                calibration, options.int8_io and backend.calibrated,
            )
        except ConversionError as exc:
            errors.append(for_backend(exc, backend.name, artifact))
            if isinstance(exc, TooLargeError):  # every exporter writes the same weights
                break
            continue
        _note_preparation(result, artifact, prepared, fresh_export, fresh_prepare, import_seconds, errors)
        result.calibration = calibration.describe() if calibration is not None and prepared.used_calibration else None
        result.export_cache_hit = memo.from_cache(key)
        return Target(backend, artifact, prepared)
    first = errors[0]
    if len(errors) > 1:
        first.cause = (first.cause or "") + "".join(f"\n  also failed: {first_line(str(e))}" for e in errors[1:])
    raise first


def _calibration(subject: Subject, options: CheckOptions, data: Any = None) -> Calibration:
    """The samples a calibrated (quantized) backend quantizes with: the user's, those of ``data=``,
    or drawn from the spec."""
    from ..inputs import calibration

    if options.calibration is not None:
        return calibration.from_user(options.calibration, subject.slots, subject.name)
    if data is not None:
        return data.calibration(options.calibration_samples)
    return calibration.from_spec(subject.slots, options.calibration_samples, options.calibration_seed)


def _note_preparation(
    result: BackendResult, artifact: OnnxArtifact, prepared: Prepared, fresh_export: bool, fresh_prepare: bool, import_seconds: float,
    errors: list[XframeError],
) -> None:
    """Timings count only work done now; earlier failed routes are named in the message."""
    result.onnx = prepared.route or artifact.label
    result.export_seconds = artifact.seconds if fresh_export else 0.0
    result.import_seconds = import_seconds
    result.convert_seconds = prepared.convert_seconds if fresh_prepare else 0.0
    result.load_seconds = prepared.load_seconds if fresh_prepare else 0.0
    result.cache_hit = prepared.cache_hit or not fresh_prepare
    if errors:
        result.message = "fell back to " + result.onnx + " after: " + "; ".join(first_line(str(e)) for e in errors)


def _hypothesis_test(
    memo: SessionMemo, subject: Subject, options: CheckOptions, report: ParityReport, model_key: tuple, run_one: Callable[[Feeds], None], data: Any = None
) -> Any:
    """The ``@given`` test that draws the check's inputs, seeded and filed in hypothesis's database:
    from the specs, or around the samples of ``data=`` (``inputs.data.explore``)."""
    from hypothesis import HealthCheck, given, seed, settings

    if data is not None:
        from ..inputs.data.explore import around_samples

        strategy = around_samples(data, options.data_scale)
    else:
        strategy = feeds_strategy(subject.slots)

    @settings(
        max_examples=options.max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        report_multiple_bugs=False,
        # the explain phase lists lines of our own code that only failing runs took: noise here
        phases=[p for p in settings.default.phases if p.name != "explain"],
    )
    @given(strategy)
    def parity(feeds: Feeds) -> None:
        __tracebackhide__ = True
        run_one(feeds)

    set_database_key(parity, f"{report.test_id}|{','.join(options.backends)}|{subject.fingerprint}".encode())
    if options.seed is not None:
        return seed(options.seed)(parity)
    seed_keeping_database(parity, memo.example_seed(model_key))
    return parity


def _steer(backend: str, comparisons: list, judged: list[Judged]) -> None:
    """hypothesis.target: toward the inputs with the largest error (and lowest SNR where judged)."""
    from hypothesis import target

    worst = max((c.tolerance_ratio for c in comparisons if not c.problem), default=0.0)
    target(min(worst, 1e12), label=f"tolerance ratio, {backend}")
    snr = snr_judged(judged)
    if snr is not None:  # a policy that judges SNR: steer toward the inputs that lower it
        target(-snr, label=f"-SNR dB, {backend}")


class _RuntimeCrash(BaseException):
    """Carries a backend's run-time crash out of hypothesis, which re-raises BaseException at once."""

    def __init__(self, error: XframeError) -> None:
        super().__init__(str(error))
        self.error = error


def _run_target(t: Target, feeds: Feeds, model_name: str) -> dict[str, Any]:
    try:
        return t.prepared.runner.run(feeds)
    except Exception as exc:
        # a crash is not a numeric mismatch: stop at the first input that causes it
        # instead of letting hypothesis shrink (each try costs a framework error)
        if isinstance(exc, MemoryError) or is_out_of_memory(exc):
            raise _RuntimeCrash(out_of_memory(model_name, f"{t.name} running the converted model", feeds, exc)) from None
        raise _RuntimeCrash(
            XframeError(
                f"{t.name} raised while running the converted model ({t.label})",
                model=model_name,
                backend=t.name,
                cause=f"{type(exc).__name__}: {informative_lines(str(exc))}\n  input: {feeds!r}",
                hint="the converted model may not support these shapes or values; run with -v for the full error",
                details="".join(traceback.format_exception(exc)),
            )
        ) from exc


def _example_runner(
    memo: SessionMemo, subject: Subject, targets: list[Target], options: CheckOptions, report: ParityReport, model_key: tuple, vacuity: VacuityTracker,
    hooks: ExampleHooks,
) -> Callable[..., None]:
    """One input: torch's outputs (memoised), each backend's, judged by its policy (and the hooks:
    structured outputs, the observer of the data's samples); a failure raises. ``record=False``
    runs an input again without counting it (the data's worst sample, for its failure)."""
    forward = _forward(subject)
    from ..identity import feeds_digest

    policies = {t.name: policy_for(options, t.name, t.backend.precision) for t in targets}

    def run_one(feeds: Feeds, record: bool = True) -> None:
        __tracebackhide__ = True
        start = time.perf_counter()
        digest = feeds_digest(feeds)  # hashed once: the torch-output memo's key and the vacuity check's
        try:
            reference = memo.reference(model_key, feeds, lambda: forward.outputs(feeds), digest)
        except XframeError as exc:  # the spec's mistake or an out-of-memory: stop, do not shrink
            raise _RuntimeCrash(exc) from None
        torch_seconds = time.perf_counter() - start
        vacuity.see(digest, reference)
        failing: dict[str, list[Judged]] = {}
        outputs: dict[str, dict] = {}
        for t in targets:
            result = report.backends[t.name]
            start = time.perf_counter()
            got = _run_target(t, feeds, subject.name)
            result.run_seconds += time.perf_counter() - start + torch_seconds / len(targets)
            judged = hooks.restructure(t.name, judge_example(reference, got, policies[t.name], options.equal_nan), reference, got)
            if record:
                result.record_judged(judged)
            comparisons = [j.comparison for j in judged]
            if hooks.observe is not None:  # a sample of data=, outside hypothesis
                hooks.observe(t.name, reference, got, judged)
            else:
                _steer(t.name, comparisons, judged)
            outputs[t.name] = got
            if not all(c.ok for c in comparisons):
                failing[t.name] = judged
        if failing:
            raise mismatch_error(subject.name, feeds, reference, outputs, failing, targets)

    return run_one


def settle(report: ParityReport, exc: BaseException | None) -> None:
    """Every backend the check was asked for ends passed, failed, error or skipped, with a message;
    one the check never reached gets the error that stopped it."""
    import pytest

    from ..judge.results import BackendResult

    skipped = isinstance(exc, (BackendUnavailable, pytest.skip.Exception))
    for name in report.options.backends:
        report.backends.setdefault(name, BackendResult(name))
    for result in report.backends.values():
        if result.verdict == "pending":
            result.verdict = "passed" if exc is None else "skipped" if skipped else "error"
            if exc is not None and not result.message:
                result.message = first_line(str(exc)) if isinstance(exc, XframeError) else describe_exception(exc)
