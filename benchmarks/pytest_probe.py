"""Measurement only: ``-p pytest_probe`` marks pytest's phases for the benchmark's timeline.

startup (process start to this plugin's import: interpreter, pytest, plugins), collection (imports
the test module: torch, the model code), each test's setup / call / teardown, session finish
(terminal summary, JSON report). Imports are timed by :mod:`import_probe`; the results go to
``BENCH_PROBE_OUT`` at unconfigure. It also notes the batch size of every input the plugin runs
through torch (by wrapping ``pytest_xframe.export.outputs.call_forward``, which it then calls
unchanged), so the table can show that both routes ran inputs of similar size.
"""

from __future__ import annotations

import import_probe  # first: installs the import timer before anything heavy is imported
import pytest
from import_probe import mark


def pytest_sessionstart(session) -> None:
    mark("session start")


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    mark("collect start")
    try:
        return (yield)
    finally:
        mark("collect end")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    mark(f"setup start {item.name}")
    try:
        return (yield)
    finally:
        mark(f"setup end {item.name}")


#: batch size of every input the plugin ran torch on, per test (the first two are the export-shaped
#: determinism check of run_check, not hypothesis examples)
batches: dict[str, list[int]] = {}


def _record_batches(name: str) -> None:
    """Wrap pytest_xframe.export.outputs.call_forward (every torch run of a check) to note each input's
    batch size (nothing else)."""
    import pytest_xframe.export.outputs as pipeline  # imported by check() a moment later anyway

    inner = getattr(pipeline.call_forward, "__wrapped__", pipeline.call_forward)
    seen = batches.setdefault(name, [])

    def recorded(*args, **kwargs):
        feeds = args[1] if len(args) > 1 else kwargs.get("feeds")
        try:
            seen.append(int(next(iter(feeds.values())).shape[0]))
        except Exception:  # noqa: BLE001 - only a statistic
            pass
        return inner(*args, **kwargs)

    recorded.__wrapped__ = inner
    pipeline.call_forward = recorded


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _record_batches(item.name)
    mark(f"call start {item.name}")
    try:
        return (yield)
    finally:
        mark(f"call end {item.name}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    mark(f"teardown start {item.name}")
    try:
        return (yield)
    finally:
        mark(f"teardown end {item.name}")


def pytest_sessionfinish(session) -> None:
    mark("session finish")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    mark("unconfigure")
    import_probe.write(batches=batches)
