"""pytest hooks for pytest-xframe: options, marker, fixture, reporting. No logic lives here.

Nothing in this module imports torch, TensorFlow, ONNX or hypothesis: a run that uses no parity
test pays nothing for the plugin being installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .options import MARKER, OPTION_NAMES
from .stash import CLI_MODEL_KEY, RECORDS_KEY

if TYPE_CHECKING:
    from .fixture import Xframe
    from .session import XframeSession

SESSION_KEY = pytest.StashKey["XframeSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import register

    register(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs as hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before any conftest or test module can import torch (pytest-xdist workers only)."""
    from ..check.threads import chosen, quiet_openmp

    quiet_openmp(chosen(getattr(early_config.known_args_namespace, "xframe_threads", None), early_config.getini("xframe_threads")))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): run this test's xframe.check once per backend (ids [onnxruntime], "
        f"[tensorflow]); options: {', '.join(OPTION_NAMES)}.",
    )
    from ..errors import XframeError
    from .session import XframeSession

    try:
        session = XframeSession(config)
    except XframeError as exc:  # a bad ini value, pyproject table or baseline file: a usage error, not a crash
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_Collector(session), "xframe-collector")
    from .collect import cli_declaration

    config.stash[CLI_MODEL_KEY] = cli_declaration(config)
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(_Worker(), "xframe-worker")
    if config.pluginmanager.hasplugin("html"):
        from ..report.html import HtmlReport

        config.pluginmanager.register(HtmlReport(), "xframe-html")


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    """pyproject.toml's ``[[tool.xframe.models]]``: one parity test per model x backend."""
    if file_path.name != "pyproject.toml":
        return None
    from .collect import models_file

    return models_file(file_path, parent)


def pytest_ignore_collect(collection_path: Any, config: pytest.Config) -> bool | None:
    """With --xframe-model the session checks that model only (and paths named explicitly)."""
    return True if config.stash.get(CLI_MODEL_KEY, None) is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    decl = config.stash.get(CLI_MODEL_KEY, None)
    if decl is not None:
        from .collect import cli_items

        items[:0] = cli_items(session, decl)


class _Collector:
    """Gathers records from every test report, including those pytest-xdist workers send."""

    def __init__(self, session: XframeSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.records.extend(self.session.ledger.see(report))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.session.records.extend(getattr(report, "xframe", None) or [])


class _Worker:
    """pytest-xdist worker only (every worker collects, in the same order)."""

    @pytest.hookimpl(trylast=True)  # after any reordering (pytest-randomly's shuffle)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from .fixture import keep_backends_together

        keep_backends_together(items)


def pytest_itemcollected(item: pytest.Item) -> None:
    item.config.stash[SESSION_KEY].baseline.collected.add(item.nodeid)


def pytest_collection_finish(session: pytest.Session) -> None:
    """pytest-xdist worker: the controller judges stale baseline entries on what was collected."""
    collected = session.config.stash[SESSION_KEY].baseline.collected
    collected.update(item.nodeid for item in session.items)  # items a plugin added without collecting them
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["xframe_collected"] = sorted(collected)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: what a worker collected."""
    collected = getattr(node, "workeroutput", {}).get("xframe_collected", [])
    node.config.stash[SESSION_KEY].baseline.collected.update(collected)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller, per worker: where this run's workers share their exports (local
    workers only: a worker on another host could not see the directory)."""
    if node.gateway.spec.popen:
        node.workerinput.update(node.config.stash[SESSION_KEY].worker_input())


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash[SESSION_KEY].header()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(MARKER) is None:
        return
    from ..errors import SpecError, XframeError

    session = metafunc.config.stash[SESSION_KEY]
    if "xframe" not in metafunc.fixturenames:  # a collection error: nothing could run this test
        raise SpecError(
            f"{metafunc.definition.nodeid} is marked {MARKER} but does not take the xframe fixture",
            hint="add an `xframe` argument and call xframe.check(model, inputs) in the test",
        )
    try:
        backends = session.marked_backends(metafunc.definition)
    except XframeError as exc:
        # fail this test alone (at setup, with the message), not the whole module's collection
        metafunc.parametrize("xframe", [pytest.param(exc, id="invalid-marker")], indirect=True)
        return
    metafunc.parametrize("xframe", backends, indirect=True, ids=list(backends))


@pytest.fixture
def xframe(request: pytest.FixtureRequest) -> Iterator[Xframe]:
    """Parity checker: ``xframe.check(model, inputs, **options)`` exports ``model`` to ONNX,
    runs it in torch, ONNX Runtime and TensorFlow on hypothesis-drawn inputs, and fails with a
    per-output report when they differ. Under ``@pytest.mark.xframe_parity`` the test runs once
    per backend; without it one call checks every configured backend."""
    from .fixture import Xframe

    if isinstance(getattr(request, "param", None), Exception):
        raise request.param
    checker = Xframe(request, request.config.stash[SESSION_KEY])
    yield checker
    checker.finish()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    excinfo = call.excinfo
    if excinfo is not None and report.failed and _is_xframe_error(excinfo.value):
        from ..report.terminal import short_failure

        report.longrepr = short_failure(item, excinfo, item.config.get_verbosity())
    from .checks import annotate

    annotate(item, call, report, item.config.stash[SESSION_KEY])
    records = item.stash.get(RECORDS_KEY, None)
    if records and report.when == "call":
        if hasattr(report, "wasxfail"):  # an expected failure is not an error in the summary
            from ..judge.decide import expected_failure

            records = [{**r, "verdict": expected_failure(r["verdict"])} for r in records]
        report.xframe = records  # plain JSON data: travels from pytest-xdist workers too
    return report


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or nextitem.path != item.path:
        item.config.stash[SESSION_KEY].module_done()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A declared model that fails to collect is a check in the report too (``checks.collection_records``)."""
    report = yield
    if report.failed:
        from .checks import collection_records

        records = collection_records(collector, report, collector.config.stash[SESSION_KEY])
        if records:
            report.xframe = records
    return report


def _is_xframe_error(exc: BaseException) -> bool:
    from ..errors import XframeError

    return isinstance(exc, XframeError)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    config.stash[SESSION_KEY].terminal_summary(terminalreporter, int(exitstatus))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.pluginmanager.has_plugin("hypothesispytest"):
        # hypothesis's own plugin imports hypothesis in its terminal summary, under pytest's
        # assertion rewriting: 0.5 s in every process that has not imported it (an xdist controller)
        from ..imports import import_hypothesis

        import_hypothesis("hypothesis")
    if not hasattr(session.config, "workerinput"):
        session.config.stash[SESSION_KEY].finish_baseline()
        session.config.stash[SESSION_KEY].write_json(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        state.close()
