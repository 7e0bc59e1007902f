"""One loop check: export each graph once, prepare it once per backend, then let hypothesis draw
cases; every case runs in torch (recorded once, shared by the marker's backends) and on each
backend, judged run by run (``loops.judging``)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Target
from ..check.forward import Forward, bounded, confirm_deterministic, out_of_memory
from ..check.hypothesis_compat import seed_keeping_database, set_database_key
from ..check.memo import SessionMemo
from ..check.model_state import ModelState, note_state, restore_and_warn
from ..check.options import CheckOptions
from ..check.run import RuntimeCrash, run_target, settle_ended
from ..check.search import Sharing
from ..check.subject import Subject
from ..check.targets import prepare_target
from ..check.threads import limit_torch
from ..errors import BackendUnavailable, ConversionError, ExportError, ParityError, XframeError, first_line
from ..export.to_onnx import example_feeds
from ..identity import feeds_digest, model_fingerprint, resolve_export_key, slots_key, weights_digest
from ..imports import import_hypothesis
from ..judge.decide import decide
from ..judge.policy import Rule, check_names
from ..judge.results import BackendResult, ParityReport
from ..judge.verdict import policy_for
from .failure import finish_loop_failure, loop_mismatch
from .judging import GENERATION_DEFAULTS, Agreement, Divergence, StepJudge, ties_note
from .program import Graph, Loop
from .sides import BackendSide, Trace, drive_torch
from .threads import fastest_torch_threads, torch_threads
from .vacuity import GenerationVacuity

#: a loop's targets: per backend, one Target per graph
Targets = dict[str, dict[str, Target]]


def run_loop_check(
    memo: SessionMemo, model: Any, build: Callable[[str], Loop], options: CheckOptions, *, report: ParityReport, artifacts_root: Path,
    test_key: tuple = (), sharing: Sharing | None = None,
) -> ParityReport:
    """The whole loop check (``Xframe.check_loop``, ``Xframe.check_generation``): ``build(name)``
    makes the ``Loop``; raises as ``check.run.run_check`` does, returns the report. The verdicts
    are decided however it ends (``judge.decide``). ``sharing`` (the marker's backends of one
    test) is taken for ``run_check``'s signature: each backend's loop draws its own prompts."""
    __tracebackhide__ = True
    try:
        try:
            _run_loop(memo, model, build, options, report, artifacts_root, test_key)
        except MemoryError:
            raise out_of_memory(report.model, "the check") from None
    except BaseException as exc:
        settle_ended(report, exc, artifacts_root)
        raise
    finally:
        decide(report)
    return report


def _run_loop(
    memo: SessionMemo, model: Any, build: Callable[[str], Loop], options: CheckOptions, report: ParityReport, artifacts_root: Path,
    test_key: tuple,
) -> None:
    __tracebackhide__ = True
    import_hypothesis()
    name = report.model = options.name or type(model).__name__
    state = ModelState.of(model)
    memo.limit_threads(limit_torch)
    try:
        loop = build(name)
        weights = weights_digest(model)
        subjects = {g.name: _subject(memo, g, name, weights, state) for g in loop.graphs}
        check_names(options.policy, {o for s in subjects.values() for o in s.output_names}, memo.backends.names(), name)
        export_key = None if options.export_key is None else resolve_export_key(options.export_key, memo.rootdir, name)
        targets = {b: _prepare(memo, memo.backends.get(b), loop, subjects, options, report, export_key) for b in options.backends}
        _check_cases(memo, model, loop, subjects, targets, options, report, artifacts_root, test_key, state)
    finally:
        restore_and_warn(state, name)


def _subject(memo: SessionMemo, graph: Graph, name: str, weights: str, state: ModelState) -> Subject:
    """A graph as the one-shot check's machinery sees it (export, prepare); torch runs it twice on
    its example, so a graph that is not deterministic is named before anything is exported."""
    forward = Forward(graph.module, graph.slots, graph.positional, name)
    fingerprint = model_fingerprint(graph.module, weights)
    key = slots_key(graph.slots)
    example = graph.example if graph.example is not None else example_feeds(graph.slots)
    names = memo.output_names((fingerprint, key), lambda: tuple(confirm_deterministic(forward, example, None, state)))
    return Subject(graph.module, name, graph.slots, graph.positional, fingerprint, key, names, weights, example=graph.example)


def _with_defaults(options: CheckOptions, backend_name: str, precision: str, generates: bool) -> CheckOptions:
    """A generation loop's options: the generation defaults of the backend's precision under the
    user's policy (a loop that does not generate keeps the one-shot check's)."""
    defaults = GENERATION_DEFAULTS.get(precision) if generates else None
    if not defaults:
        return options
    return replace(options, policy=((Rule(backend_name, None, tuple(defaults.items()), f"generation defaults ({precision})"),),) + options.policy)


def _options_for(options: CheckOptions, backend_name: str, precision: str, graph: Graph, calibrated: bool, generates: bool) -> CheckOptions:
    """A graph's options: the generation defaults, and the graph's own example as the calibration
    sample of a quantized target (a sample drawn from the spec would not keep a cache and its mask
    the same length)."""
    calibration = options.calibration
    if calibrated and calibration is None and graph.example is not None:
        calibration = (dict(graph.example),)
    return replace(_with_defaults(options, backend_name, precision, generates), calibration=calibration)


def _prepare(
    memo: SessionMemo, backend: Any, loop: Loop, subjects: dict[str, Subject], options: CheckOptions, report: ParityReport, export_key: str | None
) -> dict[str, Target]:
    """The backend's runner of every graph; each graph that fails names its own reason, and the
    times add up over the graphs."""
    result = report.backends.setdefault(backend.name, BackendResult(backend.name, precision=backend.precision))
    targets: dict[str, Target] = {}
    failed: list[tuple[str, XframeError]] = []
    totals = {"export_seconds": 0.0, "import_seconds": 0.0, "convert_seconds": 0.0, "load_seconds": 0.0}
    for graph in loop.graphs:
        graph_options = _options_for(options, backend.name, backend.precision, graph, backend.calibrated, loop.generates)
        try:
            targets[graph.name] = prepare_target(memo, backend, subjects[graph.name], graph_options, result, export_key)
        except BackendUnavailable:
            raise
        except (ExportError, ConversionError) as exc:
            failed.append((graph.name, exc))
            continue
        for key in totals:
            totals[key] += getattr(result, key)
    for key, value in totals.items():
        setattr(result, key, value)
    if failed:
        raise _graphs_failed(failed, len(loop.graphs))
    labels = dict.fromkeys(t.label for t in targets.values())
    result.onnx = f"{len(targets)} graphs: " + "; ".join(labels) if len(targets) > 1 else next(iter(labels))
    return targets


def _graphs_failed(failed: list[tuple[str, XframeError]], count: int) -> XframeError:
    """One error naming each graph that did not export or convert, and why."""
    graph, first = failed[0]
    error = copy.copy(first)
    error.summary = f"graph {graph!r} of the loop ({len(failed)} of {count} failed): {first.summary}"
    error.cause = (first.cause or "") + "".join(f"\n  graph {g!r}: {first_line(str(e))}" for g, e in failed[1:])
    return error


def _check_cases(
    memo: SessionMemo, model: Any, loop: Loop, subjects: dict[str, Subject], targets: Targets, options: CheckOptions, report: ParityReport,
    artifacts_root: Path, test_key: tuple, state: ModelState,
) -> None:
    """hypothesis's run over the cases, a failing case diagnosed and kept, then the notes."""
    name = report.model
    forwards = {g.name: Forward(g.module, g.slots, g.positional, name) for g in loop.graphs}
    model_key = (test_key, tuple(s.fingerprint for s in subjects.values()), "loop")
    threads = fastest_torch_threads(lambda: _torch_call(forwards, loop))
    torch_trace = _torch_tracer(memo, loop, forwards, model_key, threads)
    tracker = _Tracker(loop, options, targets, report)
    parity = _hypothesis_test(memo, loop, options, report, model_key, lambda case: tracker.case(case, torch_trace))
    try:
        bounded(parity, name)
    except RuntimeCrash as crash:
        raise crash.error from crash.__cause__
    except ParityError as failure:
        run = failure.loop["run"]  # type: ignore[attr-defined]
        with torch_threads(threads):  # as torch ran it: another thread count may round otherwise
            confirm_deterministic(forwards[run.graph], run.feeds, run.outputs, state)  # before blaming a backend
        note_state(failure, state)
        finish_loop_failure(failure, report, targets, options, artifacts_root)
    tracker.finish(name, report.test_id)


def _torch_call(forwards: dict[str, Forward], loop: Loop) -> Callable[[], Any]:
    """One call of the loop's most repeated graph (the last) on its example: what thread counts are timed on."""
    graph = loop.graphs[-1]
    example = graph.example if graph.example is not None else example_feeds(graph.slots)
    return forwards[graph.name].outputs(example)


def _torch_tracer(memo: SessionMemo, loop: Loop, forwards: dict[str, Forward], model_key: tuple, threads: int | None) -> Callable[[Any], Trace]:
    """torch's trace of a case, kept in the session's memo: the marker's runs of one test (one per
    backend) draw the same cases and run torch once."""

    def run_graph(graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return forwards[graph].outputs(feeds)

    def compute() -> dict[str, np.ndarray]:
        with torch_threads(threads):
            return drive_torch(loop.drive, case_now[0], run_graph).to_arrays()

    case_now: list[Any] = [None]

    def trace(case: Any) -> Trace:
        case_now[0] = case
        arrays = case.arrays()
        try:
            return Trace.from_arrays(memo.reference(model_key, arrays, compute, feeds_digest(arrays)))
        except XframeError as exc:  # the user's mistake (a spec, a feedback name) or out of memory: stop, do not shrink
            raise RuntimeCrash(exc) from None

    return trace


class _Tracker:
    """Runs each backend on a case against torch's trace and keeps what the report needs."""

    def __init__(self, loop: Loop, options: CheckOptions, targets: Targets, report: ParityReport) -> None:
        self.loop, self.options, self.targets, self.report = loop, options, targets, report
        precision = {b: report.backends[b].precision for b in targets}
        self.policies = {b: policy_for(_with_defaults(options, b, precision[b], loop.generates), b, precision[b]) for b in targets}
        self.cases = 0
        self.ties: dict[str, list] = {b: [] for b in targets}
        self.agreement = {b: Agreement() for b in targets}
        self.vacuity = GenerationVacuity()

    def case(self, case: Any, trace_of: Callable[[Any], Trace]) -> None:
        """One case: torch's trace (its time shared among the backends' run times, as a one-shot
        check counts it), then every backend judged against it; a ParityError names each divergence."""
        __tracebackhide__ = True
        from hypothesis import target

        start = time.perf_counter()
        trace = trace_of(case)
        torch_share = (time.perf_counter() - start) / len(self.targets)
        self.cases += 1
        self.vacuity.see(trace)
        failing: dict[str, tuple[Divergence, BackendSide]] = {}
        for backend_name, graphs in self.targets.items():
            result = self.report.backends[backend_name]
            result.run_seconds += torch_share
            judge = StepJudge(self.policies[backend_name], result.precision == "fp32", self.options.equal_nan, result, self.loop.compared)
            side = BackendSide(_backend_runner(graphs, self.report.model, result), trace, judge)
            try:
                self.loop.drive(case, side)
                judge.finish_case()
            except Divergence as divergence:
                failing[backend_name] = (divergence, side)
            self.ties[backend_name].extend(judge.ties)
            self.agreement[backend_name].add(judge)
            worst = max((c.tolerance_ratio for c in result.worst.values() if not c.problem), default=0.0)
            target(min(worst, 1e12), label=f"tolerance ratio, {backend_name}")
        if failing:
            raise loop_mismatch(self.report.model, self.loop, case, trace, failing, self.targets)

    def finish(self, name: str, test_id: str) -> None:
        for backend_name, result in self.report.backends.items():
            result.examples = self.cases
            note = ties_note(self.ties.get(backend_name, [])) if result.precision == "fp32" else self.agreement[backend_name].note()
            if note:  # said with the verdict when the backend passes (``judge.decide``)
                result.message = note
        if self.loop.generates:
            self.vacuity.warn(name, test_id, self.report)


def _backend_runner(graphs: dict[str, Target], model_name: str, result: BackendResult) -> Callable[[str, Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    def run_graph(graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        try:
            return run_target(graphs[graph], feeds, model_name)
        finally:
            result.run_seconds += time.perf_counter() - start

    return run_graph


def _hypothesis_test(memo: SessionMemo, loop: Loop, options: CheckOptions, report: ParityReport, model_key: tuple, run_one: Callable[[Any], None]) -> Any:
    """The ``@given`` test over the loop's cases (the user's prompts first), seeded and filed in
    hypothesis's database like a one-shot check's."""
    from hypothesis import HealthCheck, example, given, seed, settings

    @settings(
        max_examples=options.max_examples, deadline=None, report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        phases=[p for p in settings.default.phases if p.name != "explain"],
    )
    @given(loop.cases)
    def loop_parity(case: Any) -> None:
        __tracebackhide__ = True
        run_one(case)

    for case in reversed(loop.explicit):
        loop_parity = example(case)(loop_parity)
    set_database_key(loop_parity, f"{report.test_id}|{','.join(options.backends)}|loop|{model_key[1]}".encode())
    if options.seed is not None:
        return seed(options.seed)(loop_parity)
    seed_keeping_database(loop_parity, memo.example_seed(model_key))
    return loop_parity
