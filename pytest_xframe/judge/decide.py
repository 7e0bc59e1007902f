"""The verdict of each backend of a check, decided here and nowhere else: from what was found
(``BackendResult``'s findings) and how the check ended (``ParityReport.ended_by``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import BackendResult, ParityReport


# -- the verdict -------------------------------------------------------------------------------
def failures_over_examples(result: BackendResult) -> dict[str, str]:
    """The thresholds judged over all the examples (top-k agreement) that an output fails: output -> why."""
    return {name: why for name, aggregate in result.metrics.items() if (why := aggregate.topk_failure())}


def decide(report: ParityReport) -> None:
    """Every backend's verdict and message, decided here and nowhere else.

    From the backend's findings first (its packages missing, a mismatch, a threshold failed over
    the examples or the data, a vacuous check, a quantized target that quantized nothing, drift), else from how the check ended (``report.ended_by``):
    through (passed), a skip (skipped) or an error (error, naming it). A pure function of the
    report, so it is called again once a later finding (drift) is recorded.
    """
    from .results import BackendResult

    for name in report.options.backends:
        if name not in report.unavailable:
            report.backends.setdefault(name, BackendResult(name))
    for result in (*report.backends.values(), *report.unavailable.values()):
        result.verdict, result.message = _verdict(result, report.ended_by)


def _verdict(result: BackendResult, ended: BaseException | None) -> tuple[str, str]:
    import pytest

    from ..errors import BackendUnavailable, XframeError, describe_exception, first_line
    from .baseline import drift_headline

    if result.unavailable is not None:
        return "skipped", result.unavailable
    if result.mismatch is not None:
        return "failed", result.mismatch.message()
    if result.failed_over_examples:
        return "failed", "; ".join(f"{name}: {why}" for name, why in result.failed_over_examples.items())
    if result.vacuous is not None:
        return "failed", result.vacuous
    if result.unquantized is not None:
        return "failed", result.unquantized
    if result.drifted:
        return "failed", drift_headline(result.drifted[0])
    if ended is None:
        return "passed", result.message
    said = first_line(str(ended)) if isinstance(ended, XframeError) else describe_exception(ended)
    skipped = isinstance(ended, (BackendUnavailable, pytest.skip.Exception))
    return ("skipped" if skipped else "error"), result.message or said


def expected_failure(verdict: str) -> str:
    """A record's verdict in a test whose xfail marker held: a failure or error was expected."""
    return "xfailed" if verdict in ("failed", "error") else verdict
