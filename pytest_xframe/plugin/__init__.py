"""pytest hooks for pytest-xframe: options, marker, fixture, reporting. No logic lives here.

Nothing in this module imports torch, TensorFlow, ONNX or hypothesis: a run that uses no parity
test pays nothing for the plugin being installed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..backends import BUILTIN
from .options import MARKER, OPTION_NAMES
from .stash import CLI_MODEL_KEY, RECORDS_KEY

if TYPE_CHECKING:
    from .fixture import Xframe
    from .session import XframeSession

SESSION_KEY = pytest.StashKey["XframeSession"]()


def _positive_int(value: str) -> int:
    number = _int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {number}")
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None


def _threads(value: str) -> str:
    from ..check.threads import parse

    try:
        return str(parse(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', 0 or a thread count, got {value!r}") from None


def _export_key(value: str) -> str | tuple[str, ...]:
    from .options import export_key_arg

    try:
        return export_key_arg(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _drift_factor(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 1, got {value!r}") from None
    if not number > 1:
        raise argparse.ArgumentTypeError(f"expected a number > 1, got {value!r}")
    return number


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xframe", "cross-framework parity testing (pytest-xframe)")
    # checked in pytest_configure, once plugins and conftests have registered their backends
    group.addoption("--xframe-backends", default=None, metavar="LIST",
                    help=f"comma-separated backends to check, overriding markers and check() (built in: {', '.join(BUILTIN)}; "
                    "plugins may register more).")
    group.addoption("--xframe-max-examples", type=_positive_int, default=None, metavar="N",
                    help="hypothesis examples per parity check, overriding markers and check().")
    group.addoption("--xframe-seed", type=_int, default=None, metavar="SEED",
                    help="seed for drawing inputs, overriding markers and check(); see also --hypothesis-seed.")
    group.addoption("--xframe-artifacts-dir", default=None, metavar="DIR",
                    help="where failing cases are kept for replay (default: .pytest_cache/d/xframe-artifacts).")
    group.addoption("--xframe-report", default=None, metavar="PATH",
                    help="write a JSON report of every parity check (schema: docs/reports.md).")
    group.addoption("--xframe-cache-dir", default=None, metavar="DIR",
                    help="cache of converted models across runs (default: .pytest_cache/d/xframe); --cache-clear empties it.")
    group.addoption("--xframe-no-cache", action="store_true", default=False,
                    help="convert every model afresh; read and write no cache.")
    group.addoption("--xframe-threads", type=_threads, default=None, metavar="auto|N",
                    help="CPU threads per framework (torch, TensorFlow, ONNX Runtime): 'auto' (default) gives each "
                    "pytest-xdist worker CPUs // workers and leaves a serial run alone; 0 leaves the frameworks' defaults.")
    group.addoption("--xframe-max-input-bytes", type=_positive_int, default=None, metavar="BYTES",
                    help="largest input one example may draw (all tensors together; default 268435456 = 256 MiB); "
                    "a spec that can exceed it is refused before anything runs.")
    group.addoption("--xframe-export-key", type=_export_key, default=None, metavar="VERSION|@FILES",
                    help="vouch for the models' code so ONNX exports are reused across runs: a version string, or "
                    "@a.py,src/**/*.py (paths/globs relative to the rootdir, contents hashed); overrides markers, "
                    "check() and xframe_export_key (docs/performance.md, export_key).")
    group.addoption("--xframe-baseline-update", action="store_true", default=False,
                    help="write the error figures of this run's passing checks to the baseline file (keeps other entries, drops stale ones).")
    group.addoption("--xframe-baseline", default=None, metavar="PATH",
                    help="the baseline file (default: xframe-baseline.json at the rootdir; ini xframe_baseline).")
    group.addoption("--xframe-drift-factor", type=_drift_factor, default=None, metavar="F",
                    help="fail a check whose error figures got more than F times worse than its baseline (default 2).")
    group.addoption("--xframe-model", default=None, metavar="MODULE:FACTORY",
                    help="check this one model (built by calling FACTORY) instead of collecting tests; needs --xframe-inputs.")
    group.addoption("--xframe-inputs", default=None, metavar="TEXT",
                    help="inputs of --xframe-model, e.g. \"x=float32[batch:1..8,20]\" (grammar: docs/model-repos.md).")
    group.addoption("--xframe-model-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an option of --xframe-model (atol=1e-4, exporter=\"torchscript\", ...); repeatable.")
    group.addoption("--xframe-strict-quantization", action="store_true", default=False,
                    help="fail a quantized target that quantized none of the model's weight tensors (default: warn); "
                    "overrides markers and check().")
    group.addoption("--xframe-lock", default=None, metavar="PATH",
                    help="a pip constraints file of the stack the suite passed on: the report header, the summary of a failing "
                    "run and the JSON report name the packages whose installed version moved since (ini xframe_lock).")
    parser.addini("xframe_backends", "default backends for parity checks (comma or space separated).", type="args", default=[])
    parser.addini("xframe_max_examples", "default hypothesis examples per parity check.", default="")
    parser.addini("xframe_seed", "default seed for drawing inputs.", default="")
    parser.addini("xframe_artifacts_dir", "where failing cases are kept for replay.", default="")
    parser.addini("xframe_max_input_bytes", "largest input one example may draw, in bytes.", default="")
    parser.addini("xframe_export_key", "files/globs (relative to the rootdir) whose contents vouch for the models' code: "
                  "exports are then reused across runs (docs/performance.md, export_key).", type="args", default=[])
    parser.addini("xframe_baseline", "the baseline file of error figures, relative to the ini file.", default="")
    parser.addini("xframe_drift_factor", "how much worse than its baseline a figure may get (default 2).", default="")
    parser.addini("xframe_strict_quantization", "fail quantized targets that quantized nothing (default: warn).", type="bool", default=False)
    parser.addini("xframe_lock", "the lock (pip constraints file) of the tested stack, relative to the ini file's directory.", default="")
    parser.addini("xframe_threads", "CPU threads per framework: auto (default), 0 or a count.", default="")


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
        self.session.records.extend(getattr(report, "xframe", None) or [])


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
    records = item.stash.get(RECORDS_KEY, None)
    if records and report.when == "call":
        if hasattr(report, "wasxfail"):  # an expected failure is not an error in the summary
            records = [{**r, "verdict": "xfailed"} if r["verdict"] in ("failed", "error") else r for r in records]
        report.xframe = records  # plain JSON data: travels from pytest-xdist workers too
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
