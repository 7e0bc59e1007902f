"""Which tests and collection errors pytest counts as xframe checks, and the records each would
have: what ``report.ledger`` settles when a check never recorded its own (see there).

A test is an xframe check when it uses the ``xframe`` fixture; a collection error is one when it
is a declared model's (``[[tool.xframe.models]]``, ``--xframe-model``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import XframeError, describe_exception, first_line
from ..report.ledger import ANNOUNCED, STOPPED_BY, placeholder_records, settled

if TYPE_CHECKING:
    import pytest

    from .options import CheckOptions
    from .session import XframeSession


def annotate(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, session: XframeSession) -> None:
    """On an xframe check's setup report, the records it would have; on a failing report, the
    first line of what stopped it (plain data: both travel from pytest-xdist workers)."""
    if "xframe" not in getattr(item, "fixturenames", ()):
        return
    if report.when == "setup":
        setattr(report, ANNOUNCED, _announced(item, session))
    if call.excinfo is not None and report.failed:
        exc = call.excinfo.value
        setattr(report, STOPPED_BY, first_line(str(exc)) if isinstance(exc, XframeError) else describe_exception(exc))


def _announced(item: pytest.Item, session: XframeSession) -> list[dict[str, Any]]:
    """One record per backend the check would run: the marker's backend for a marked test, else
    the backends the ini file, the command line and the markers resolve to."""
    param = getattr(getattr(item, "callspec", None), "params", {}).get("xframe")
    try:
        options = session.options(session.marker_options(item), {})
    except XframeError:  # an invalid marker fails the test at setup; its record uses the defaults
        options = session.options({}, {})
    if isinstance(param, str):
        options = replace(options, backends=(param,))
    return _placeholders(item.nodeid, options, options.name or _declared_id(item), session)


def collection_records(collector: pytest.Collector, report: pytest.CollectReport, session: XframeSession) -> list[dict[str, Any]] | None:
    """The error records of a declared model that failed to collect (its declaration, its factory's
    module), one per backend it asked for (else the defaults); None for other collection reports."""
    from .collect import DeclaredModels, declared_backends, is_broken_declaration

    if not report.failed or not (isinstance(collector, DeclaredModels) or is_broken_declaration(collector)):
        return None
    options = session.options({}, {})
    backends = declared_backends(collector, session.backend_names)
    if backends:
        options = replace(options, backends=backends)
    name = collector.name if is_broken_declaration(collector) else ""
    return settled(_placeholders(report.nodeid, options, name, session), "error", first_line(report.longreprtext or "collection failed"))


def _placeholders(test_id: str, options: CheckOptions, model: str, session: XframeSession) -> list[dict[str, Any]]:
    precision = {}
    for name in options.backends:
        try:
            precision[name] = session.backends.get(name).precision
        except (KeyError, ImportError, TypeError):  # a backend that does not load reports fp32
            pass
    return placeholder_records(test_id, options, model, precision)


def _declared_id(item: pytest.Item) -> str:
    """A declared model's id (its test function's name), '' for a hand-written test."""
    from .collect import DeclaredModels

    return getattr(item, "originalname", "") if isinstance(item.parent, DeclaredModels) else ""
