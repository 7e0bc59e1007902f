"""Every test pytest counts as an xframe check ends in the records, whatever stopped it.

A check records its own results (``records.record``). One that never got that far (its fixture
or the test failed at setup, a model factory raised, the test was skipped, its pytest-xdist worker
crashed) would be missing from the summary and the JSON report while pytest counts it. So each
such test announces, on its setup report, the records it would have (``ANNOUNCED``: one per
backend, as plain data that travels from pytest-xdist workers), and the ``Ledger`` that sees
every report settles, at the test's last report (teardown, or the controller's crash report),
the announced records of a test that recorded none, with pytest's outcome and its message.

A test's setup knows the backends the ini file, command line and markers resolve to, not those
``check(backends=...)`` picks. So each check a pytest-xdist worker starts also leaves its own
records in the run's directory (``write_running``), where the controller reads them if the
worker crashes (local workers share that directory; a remote worker's crash keeps the setup's).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..check.options import CheckOptions

#: on a setup report: the records of the check this test is, verdicts to be settled
ANNOUNCED = "xframe_check"
#: on a failing report: the first line of what stopped it (an XframeError's summary, ``Type: message``)
STOPPED_BY = "xframe_error"
#: the ``when`` of the report pytest-xdist's controller makes for a test whose worker crashed
CRASH_WHEN = "???"


def placeholder_records(test_id: str, options: CheckOptions, model: str, precision: dict[str, str]) -> list[dict[str, Any]]:
    """The records a check of ``options.backends`` has before it ran: no figures, verdict ``error``."""
    from ..judge.results import BackendResult, ParityReport
    from .records import records_from

    report = ParityReport(test_id=test_id, options=options, model=model)
    for name in options.backends:
        report.backends[name] = BackendResult(name, precision=precision.get(name, "fp32"), verdict="error")
    return records_from(report)


def settled(records: list[dict[str, Any]], verdict: str, message: str) -> list[dict[str, Any]]:
    """``records`` with pytest's verdict and message (a record already carrying a message keeps it)."""
    return [{**r, "verdict": verdict, "message": r.get("message") or message} for r in records]


def _running_file(run_dir: Path, test_id: str) -> Path:
    return run_dir / "running" / (hashlib.sha256(test_id.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".json")


def write_running(run_dir: Path, test_id: str, records: list[dict[str, Any]]) -> None:
    """A worker's check about to run: its records, added to the test's earlier checks' (one per backend)."""
    path = _running_file(run_dir, test_id)
    known = {r["backend"]: r for r in read_running(run_dir, test_id) or []}
    known.update({r["backend"]: r for r in records})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(list(known.values())))
    except OSError:  # the setup's announcement stands in
        pass


def read_running(run_dir: Path, test_id: str) -> list[dict[str, Any]] | None:
    try:
        return json.loads(_running_file(run_dir, test_id).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Ledger:
    """Reports in, records out: a check's own, or those announced by a test that recorded none."""

    #: test id -> the records it announced at setup, until it records or ends
    announced: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: test id -> (verdict, message) of its first report that did not pass
    stopped: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: test id -> the records its checks left before its pytest-xdist worker crashed (``read_running``)
    running: Callable[[str], list[dict[str, Any]] | None] = lambda test_id: None

    def see(self, report: Any) -> list[dict[str, Any]]:
        """The records ``report`` settles (a pytest TestReport, from this process or a worker)."""
        nodeid = report.nodeid
        if getattr(report, ANNOUNCED, None) is not None:
            self.announced[nodeid] = getattr(report, ANNOUNCED)
        own = list(getattr(report, "xframe", None) or [])
        if own:
            self.announced.pop(nodeid, None)
        elif report.failed or report.skipped:
            self.stopped.setdefault(nodeid, _outcome(report))
        if report.when not in ("teardown", CRASH_WHEN):
            return own
        stopped = self.stopped.pop(nodeid, None)
        announced = self.announced.pop(nodeid, None)
        if announced is None or stopped is None:  # recorded, or passed without checking (not a check)
            return own
        if report.when == CRASH_WHEN:
            announced = self.running(nodeid) or announced
        return own + settled(announced, *stopped)


def _outcome(report: Any) -> tuple[str, str]:
    """The verdict and message a test's report gives a check that never recorded."""
    if hasattr(report, "wasxfail"):
        return "xfailed", f"xfailed: {report.wasxfail}" if report.wasxfail else "xfailed"
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        return "skipped", reason.removeprefix("Skipped: ")
    from ..errors import first_line

    if report.when == CRASH_WHEN:  # pytest-xdist's own line: "worker 'gw0' crashed while running '<test>'"
        return "error", first_line(str(report.longrepr))
    where = "" if report.when == "call" else f"at {report.when}: "
    return "error", where + (getattr(report, STOPPED_BY, None) or first_line(report.longreprtext or "failed"))
