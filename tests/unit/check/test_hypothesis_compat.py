"""The private hypothesis attributes pytest-xframe relies on (``pytest_xframe.check.hypothesis_compat``)
still work: these fail loudly when an installed hypothesis changes them."""

from __future__ import annotations

import inspect

import hypothesis
import pytest
from hypothesis import core, given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.internal import reflection

from pytest_xframe.check import hypothesis_compat as compat

CHANGED = f"hypothesis {hypothesis.__version__} changed what pytest_xframe.check.hypothesis_compat (checked with {compat.CHECKED_WITH}) relies on"


def test_hypothesis_still_reads_the_private_attributes() -> None:
    assert "_hypothesis_internal_add_digest" in inspect.getsource(reflection.function_digest), CHANGED
    assert "_hypothesis_internal_use_seed" in inspect.getsource(core), CHANGED
    assert hasattr(core, "global_force_seed"), CHANGED

    @given(st.integers())
    def plain(x: int) -> None:
        pass

    assert plain._hypothesis_internal_use_seed is None, CHANGED  # what seed_keeping_database looks for
    assert hasattr(plain.hypothesis, "inner_test"), CHANGED


def _draws(seed: int) -> list[list[float]]:
    seen: list[list[float]] = []

    @settings(max_examples=10, database=None, derandomize=False)
    @given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4))
    def record(values: list[float]) -> None:
        seen.append(values)

    compat.seed_keeping_database(record, seed)
    record()
    return seen


def test_a_seed_set_through_the_compat_layer_decides_the_draws() -> None:
    assert _draws(7) == _draws(7), CHANGED
    assert _draws(7) != _draws(8), CHANGED


def _fail_under(key: bytes, database: InMemoryExampleDatabase) -> None:
    @settings(max_examples=50, database=database, derandomize=False)
    @given(st.integers(0, 100))
    def small(x: int) -> None:
        assert x < 10

    compat.set_database_key(small, key)
    compat.seed_keeping_database(small, 1)
    with pytest.raises(AssertionError):
        small()


def test_the_seed_keeps_the_database_and_the_key_files_its_examples(unforced_seed: None) -> None:
    """Unlike ``@seed``, the example database stays on; the key tells two checks of one function apart."""
    database = InMemoryExampleDatabase()
    _fail_under(b"first", database)
    first = set(database.data)
    assert first, CHANGED  # the failing example was saved
    _fail_under(b"second", database)
    assert set(database.data) - first, CHANGED  # saved under another key


