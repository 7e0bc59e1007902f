"""The ``xframe`` fixture's object: one ``check`` method, options resolved, results recorded."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import BackendUnavailable, SpecError
from .options import MARKER, CheckOptions, validate

if TYPE_CHECKING:
    from ..errors import DriftError
    from ..judge.results import ParityReport
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
        self.calls += 1
        from ..check.run import run_check
        from ..judge.results import ParityReport
        from ..report import records as reporting

        try:
            given = validate(options, "xframe.check()", self._session.backend_names)
        except SpecError as exc:  # the check still gets its line in the report, with the error
            self._record_refused(exc)
            raise
        resolved = self._session.options(self._session.marker_options(self._request.node), given)
        if self.backend is not None:
            if "backends" in given and self.backend not in given["backends"]:
                pytest.skip(f"backend {self.backend} not among check(backends={list(given['backends'])})")
            resolved = replace(resolved, backends=(self.backend,))
        skipped = []
        if self.backend is None:
            known = {b: self._session.backends.get(b) for b in resolved.backends}
            missing = {b: backend.missing() for b, backend in known.items()}
            skipped = [(b, reason, known[b].precision) for b, reason in missing.items() if reason]
            available = tuple(b for b, reason in missing.items() if not reason)
            if not available:
                pytest.skip("; ".join(reason for _, reason, _ in skipped if reason))
            resolved = replace(resolved, backends=available)
        check, resolved, extra = self._baseline_plan(model, resolved)
        report = ParityReport(test_id=self._request.node.nodeid, options=resolved)
        try:
            run_check(
                self._session.memo(), model, inputs, resolved, report=report, artifacts_root=self._session.artifacts_root,
                test_key=(self._test_key(), self.calls),
            )
            if check is not None:
                extra, drift = self._against_baseline(report, check)
                if drift is not None:
                    raise drift
            return report
        except BackendUnavailable as exc:
            pytest.skip(str(exc).replace("\n", " "))
        finally:
            from ..check.run import settle

            settle(report, sys.exc_info()[1])  # no backend left pending, none dropped
            self.reports.append(report)
            reporting.record(self._request, report, skipped, extra)

    def _baseline_plan(self, model: Any, resolved: CheckOptions) -> tuple[str | None, CheckOptions, dict[str, dict]]:
        """With a baseline in use: the check's name in it, the seed it draws with (the entry's
        unless you set one), and the record fields a check that fails while updating carries."""
        run = self._session.baseline
        if not run.active:
            return None, resolved, {}
        check = self._check_name(resolved.name or type(model).__name__)
        seed = run.seed(self._request.node.nodeid, check, resolved.seed, self._test_key(), self._request.config.getoption("hypothesis_seed", None))
        extra = {b: {"baseline": {"check": check, "status": "update"}} for b in resolved.backends} if run.settings.update else {}
        return check, replace(resolved, seed=seed), extra

    def _check_name(self, model_name: str) -> str:
        """A check's name in the baseline: its model's, numbered from the second check of the
        same model within one test."""
        earlier = sum(r.model == model_name for r in self.reports)
        return model_name if not earlier else f"{model_name}#{earlier + 1}"

    def _against_baseline(self, report: ParityReport, check: str) -> tuple[dict[str, dict], DriftError | None]:
        """Each backend's ``baseline`` record field, and a DriftError (the drifted backends marked
        failed) when a figure got worse than its baseline by more than the drift factor."""
        from ..errors import DriftError
        from ..judge.baseline import drift_headline, drift_text, examine
        from ..report.records import records_from

        run = self._session.baseline
        records = records_from(report, [])
        if run.settings.update or run.baseline is None:
            status = "update" if run.settings.update else "missing"
            return {r["backend"]: {"baseline": {"check": check, "status": status}} for r in records}, None
        for r in records:
            r["baseline"] = examine(run.baseline, r, check, report.options.drift_factor)
        extra = {r["backend"]: {"baseline": r["baseline"]} for r in records}
        text = drift_text(report.model, records, run.settings.path, report.options.drift_factor)
        if text is None:
            return extra, None
        drifted = [r for r in records if r["baseline"].get("drift")]
        for r in drifted:
            result = report.backends[r["backend"]]
            result.verdict, result.message = "failed", drift_headline(r["baseline"]["drift"][0])
        drifts = [{"backend": r["backend"], **d} for r in drifted for d in r["baseline"]["drift"]]
        return extra, DriftError(text, model=report.model, backend=",".join(r["backend"] for r in drifted), drifts=drifts)

    def _record_refused(self, exc: SpecError) -> None:
        """A check refused for its own options: one error record per backend it would have run."""
        from ..check.run import settle
        from ..judge.results import ParityReport
        from ..report import records as reporting

        resolved = self._session.options({}, {})
        if self.backend is not None:
            resolved = replace(resolved, backends=(self.backend,))
        report = ParityReport(test_id=self._request.node.nodeid, options=resolved)
        settle(report, exc)
        self.reports.append(report)
        reporting.record(self._request, report, [])

    def _test_key(self) -> tuple:
        """This test apart from the backend the marker gave it: its function and the positions of
        its other parameters (stable across runs, so a fixed hypothesis seed stays fixed)."""
        node = self._request.node
        callspec = getattr(node, "callspec", None)
        indices = sorted((k, i) for k, i in callspec.indices.items() if k != "xframe") if callspec else []
        return (node.nodeid.split("[")[0], tuple(indices))

    def finish(self) -> None:
        """A marked test that never called ``check`` would pass vacuously: fail it instead."""
        if self._marked and not self.calls:
            pytest.fail(
                f"{self._request.node.nodeid} is marked {MARKER} but never called xframe.check(model, inputs)",
                pytrace=False,
            )
