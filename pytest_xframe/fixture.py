"""The ``xframe`` fixture's object: one ``check`` method, options resolved, results recorded."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from .errors import BackendUnavailable
from .settings import MARKER, validate

if TYPE_CHECKING:
    from .results import ParityReport
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

        Raises ``ParityError`` when a backend's outputs differ beyond tolerance, ``ExportError``
        or ``ConversionError`` when the model cannot get there; returns the report otherwise.
        """
        __tracebackhide__ = True
        self.calls += 1
        from . import report as reporting
        from .check import run_check
        from .results import ParityReport

        given = validate(options, "xframe.check()", self._session.backend_names)
        resolved = self._session.options(self._session.marker_options(self._request.node), given)
        if self.backend is not None:
            if "backends" in given and self.backend not in given["backends"]:
                pytest.skip(f"backend {self.backend} not among check(backends={list(given['backends'])})")
            resolved = replace(resolved, backends=(self.backend,))
        skipped = []
        if self.backend is None:
            missing = {b: self._session.backends.get(b).missing() for b in resolved.backends}
            skipped = [(b, reason) for b, reason in missing.items() if reason]
            available = tuple(b for b, reason in missing.items() if not reason)
            if not available:
                pytest.skip("; ".join(reason for _, reason in skipped if reason))
            resolved = replace(resolved, backends=available)
        report = ParityReport(test_id=self._request.node.nodeid, options=resolved)
        try:
            return run_check(
                self._session.engine(), model, inputs, resolved, report=report, artifacts_root=self._session.artifacts_root,
                siblings=(self._test_key(), self.calls),
            )
        except BackendUnavailable as exc:
            pytest.skip(str(exc).replace("\n", " "))
        finally:
            self.reports.append(report)
            reporting.record(self._request, report, skipped)

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
