"""The ``xframe`` fixture's object: one ``check`` method, options resolved, results recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import BackendUnavailable, SpecError
from .options import MARKER, CheckOptions, validate
from .stash import RECORDS_KEY

if TYPE_CHECKING:
    from ..check.search import Sharing
    from ..judge.results import BackendResult, ParityReport
    from .session import XframeSession


class Xframe:
    """What a test gets as ``xframe``."""

    def __init__(self, request: pytest.FixtureRequest, session: XframeSession) -> None:
        self._request = request
        self._session = session
        #: the backend this test instance checks, when parametrized by the marker
        self.backend: str | None = getattr(request, "param", None)
        self._marked = request.node.get_closest_marker(MARKER) is not None
        self.reports: list[ParityReport] = []
        self.calls = 0

    def check(self, model: Any, inputs: Any, **options: Any) -> ParityReport:
        """Check ``model`` on ``inputs`` (a list or dict of TensorSpec / tensors / arrays).

        Raises ``ParityError`` when a backend's outputs differ beyond tolerance, ``DriftError``
        when they got worse than the baseline allows, ``ExportError`` or ``ConversionError`` when
        the model cannot get there; returns the report otherwise.
        """
        __tracebackhide__ = True
        from ..check.run import run_check

        return self._check(model, inputs, options, run_check, "xframe.check()")

    def check_loop(self, step: Any, inputs: Any, feedback: Any, steps: Any = 8, **options: Any) -> ParityReport:
        """Check a loop: ``step`` run ``steps`` times, each ``feedback`` input fed from an output
        of the step before, in torch and in each backend, each on its own state; compared step by
        step. ``feedback`` maps an input name to an output name, or to ``greedy(output)`` (the
        argmax over the last axis). Raises as ``check`` does; see ``pytest_xframe.loops``."""
        __tracebackhide__ = True
        from ..loops import run_loop_check, step_loop

        return self._check(
            step, lambda name: step_loop(step, name, inputs, feedback, steps), options, run_loop_check, "xframe.check_loop()"
        )

    def check_generation(self, model: Any, **arguments: Any) -> ParityReport:
        """Check greedy generation of a transformers causal LM or encoder-decoder with its KV
        cache: prefill and decode graphs exported once, N new tokens generated in torch and each
        backend, token ids and per-step logits compared. Generation arguments (``max_new_tokens``,
        ``prompt_length``, ``batch``, ``prompts``, ``tokenizer``, ...) and check options mix;
        see ``pytest_xframe.loops.transformers``."""
        __tracebackhide__ = True
        from ..loops import run_loop_check
        from ..loops.transformers import generation_loop, split_arguments

        generation, options = split_arguments(arguments)
        return self._check(
            model, lambda name: generation_loop(model, name, **generation), options, run_loop_check, "xframe.check_generation()"
        )

    def _check(self, model: Any, inputs: Any, options: dict[str, Any], run: Callable[..., ParityReport], where: str) -> ParityReport:
        """The flow of every kind of check: options resolved, ``run`` (``check.run.run_check``'s
        signature) called, drift against the baseline, the records attached however it ends."""
        __tracebackhide__ = True
        self.calls += 1
        from ..judge.baseline import against_baseline
        from ..judge.results import ParityReport

        try:
            given = validate(options, where, self._session.backend_names)
        except SpecError as exc:  # the check still gets its line in the report, with the error
            self._record_refused(exc)
            raise
        resolved, unavailable, sharing = self._backends(given)
        name, resolved = self._baseline_plan(model, resolved)
        report = ParityReport(test_id=self._request.node.nodeid, options=resolved, unavailable=unavailable)
        self._session.note_running(report.test_id, resolved, resolved.name or type(model).__name__)
        try:
            run(
                self._session.memo(), model, inputs, resolved, report=report, artifacts_root=self._session.artifacts_root,
                test_key=(self._test_key(), self.calls), sharing=sharing,
            )
            drift = None if name is None else against_baseline(self._session.baseline, report, name)
            if drift is not None:
                raise drift
            return report
        except BackendUnavailable as exc:
            pytest.skip(str(exc).replace("\n", " "))
        finally:
            self._finish(report, name)

    def _backends(self, given: dict[str, Any]) -> tuple[CheckOptions, dict[str, BackendResult], Sharing | None]:
        """The options in force, narrowed to the backends this test runs: the marker's one, or
        those installed (the others are results found unavailable, reported as skipped); and, for
        the marker's item, its place among the backends that check this test in runs of their own
        (they share their draws)."""
        from ..judge.results import BackendResult

        resolved = self._session.options(self._session.marker_options(self._request.node), given)
        if self.backend is not None:
            if "backends" in given and self.backend not in given["backends"]:
                pytest.skip(f"backend {self.backend} not among check(backends={list(given['backends'])})")
            from ..check.search import Sharing

            listed = resolved.backends
            sharing = Sharing(len(listed), listed.index(self.backend) if self.backend in listed else len(listed))
            return replace(resolved, backends=(self.backend,)), {}, sharing
        known = {b: self._session.backends.get(b) for b in resolved.backends}
        missing = {b: backend.missing() for b, backend in known.items()}
        available = tuple(b for b, reason in missing.items() if not reason)
        if not available:
            pytest.skip("; ".join(reason for reason in missing.values() if reason))
        unavailable = {b: BackendResult(b, precision=known[b].precision, unavailable=reason) for b, reason in missing.items() if reason}
        return replace(resolved, backends=available), unavailable, None

    def _finish(self, report: ParityReport, name: str | None) -> None:
        """However the check ended: every verdict decided, the records attached to the test."""
        from ..judge.decide import decide
        from ..report.records import junit_properties, records_from

        decide(report)
        if name is not None and self._session.baseline.settings.update:
            for result in report.backends.values():  # a failing check's records still say it was updating
                result.baseline = result.baseline or {"check": name, "status": "update"}
        self.reports.append(report)
        records = records_from(report)
        self._request.node.stash.setdefault(RECORDS_KEY, []).extend(records)
        self._request.node.user_properties.extend(junit_properties(report, records))

    def _baseline_plan(self, model: Any, resolved: CheckOptions) -> tuple[str | None, CheckOptions]:
        """With a baseline in use: the check's name in it, and the seed it draws with (the entry's
        unless you set one)."""
        run = self._session.baseline
        if not run.active:
            return None, resolved
        check = self._check_name(resolved.name or type(model).__name__)
        seed = run.seed(self._request.node.nodeid, check, resolved.seed, self._test_key(), self._request.config.getoption("hypothesis_seed", None))
        return check, replace(resolved, seed=seed)

    def _check_name(self, model_name: str) -> str:
        """A check's name in the baseline: its model's, numbered from the second check of the
        same model within one test."""
        earlier = sum(r.model == model_name for r in self.reports)
        return model_name if not earlier else f"{model_name}#{earlier + 1}"

    def _record_refused(self, exc: SpecError) -> None:
        """A check refused for its own options: one error record per backend it would have run."""
        from ..judge.results import ParityReport

        resolved = self._session.options({}, {})
        if self.backend is not None:
            resolved = replace(resolved, backends=(self.backend,))
        report = ParityReport(test_id=self._request.node.nodeid, options=resolved, ended_by=exc)
        self._finish(report, None)

    def _test_key(self) -> tuple:
        return test_key(self._request.node)

    def finish(self) -> None:
        """A marked test that never called ``check`` would pass vacuously: fail it instead."""
        if self._marked and not self.calls:
            pytest.fail(
                f"{self._request.node.nodeid} is marked {MARKER} but never called xframe.check(model, inputs)",
                pytrace=False,
            )


def test_key(node: Any) -> tuple:
    """A test apart from the backend the marker gave it: its function and the positions of its
    other parameters (stable across runs, so a fixed hypothesis seed stays fixed)."""
    callspec = getattr(node, "callspec", None)
    indices = sorted((k, i) for k, i in callspec.indices.items() if k != "xframe") if callspec else []
    return (node.nodeid.split("[")[0], tuple(indices))


def keep_backends_together(items: list[pytest.Item]) -> None:
    """Move each marked test's backend items next to the first of them (in place; otherwise in the
    order given, so a shuffled order stays shuffled): pytest-xdist hands a worker consecutive
    items, and the items of one test share their torch runs only on one worker."""
    groups: dict[tuple, list[pytest.Item]] = {}
    for item in items:
        marked = "xframe" in getattr(getattr(item, "callspec", None), "params", {})
        groups.setdefault(test_key(item) if marked else (id(item),), []).append(item)
    items[:] = [item for group in groups.values() for item in group]
