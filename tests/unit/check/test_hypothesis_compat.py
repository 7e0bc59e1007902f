"""The private hypothesis attributes pytest-xframe relies on (``pytest_xframe.check.hypothesis_compat``)
still work: these fail loudly when an installed hypothesis changes them."""

from __future__ import annotations

import inspect
from typing import Any

import hypothesis
import pytest
from hypothesis import core, given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.internal.conjecture import providers

from pytest_xframe.check import hypothesis_compat as compat

CHANGED = f"hypothesis {hypothesis.__version__} changed what pytest_xframe.check.hypothesis_compat (checked with {compat.CHECKED_WITH}) relies on"


def test_hypothesis_still_reads_the_private_attributes() -> None:
    assert "_hypothesis_internal_database_key" in inspect.getsource(core.StateForActualGivenExecution.run_engine), CHANGED
    assert "_hypothesis_internal_use_seed" in inspect.getsource(core), CHANGED
    assert hasattr(core, "global_force_seed"), CHANGED
    assert callable(providers._get_local_constants) and hasattr(providers, "CONSTANTS_CACHE"), CHANGED

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
    """Unlike ``@seed``, the example database stays on; the key, exactly as given, tells two checks
    of one function apart."""
    database = InMemoryExampleDatabase()
    _fail_under(b"first", database)
    assert list(database.fetch(b"first")), CHANGED  # the failing example was saved under the key
    _fail_under(b"second", database)
    assert list(database.fetch(b"second")), CHANGED


def test_entries_filed_under_the_key_are_replayed_first_with_their_choices(unforced_seed: None) -> None:
    """What the own search relies on: an input's choices, recorded while it runs and filed under
    the test's key, are all run again before anything is generated, and its ``target`` scores
    steer the target phase."""
    from hypothesis import Phase, target

    recorded: dict[int, bytes] = {}

    def run(database: InMemoryExampleDatabase, phases: list[Phase], max_examples: int) -> list[int]:
        seen: list[int] = []

        @settings(max_examples=max_examples, database=database, phases=phases, derandomize=False)
        @given(st.integers(0, 10**6))
        def climb(x: int) -> None:
            seen.append(x)
            recorded.setdefault(x, compat.current_choices())
            target(float(x))

        compat.set_database_key(climb, b"key")
        compat.seed_keeping_database(climb, 3)
        climb()
        return seen

    first = run(InMemoryExampleDatabase(), [Phase.generate], 10)
    database = InMemoryExampleDatabase()
    for x in first:
        database.save(b"key", recorded[x])
    second = run(database, [Phase.reuse, Phase.target], len(set(first)) + 3)
    assert sorted(set(second[: len(set(first))])) == sorted(set(first)), CHANGED
    assert max(second) > max(first), CHANGED  # climbed from the best of the replayed ones


def _draw_after_import(seed: int, module_source: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What a seed draws after a local module holding constants has been imported."""
    import importlib

    name = f"local_consts_{abs(hash(module_source)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(module_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module(name)
    seen: list[int] = []

    @settings(max_examples=60, database=None, derandomize=False)
    @given(st.integers(0, 10**9))
    def draw(x: int) -> None:
        seen.append(x)

    compat.seed_keeping_database(draw, seed)
    with compat.without_local_constants():
        draw()
    return seen


def test_without_local_constants_one_seed_draws_the_same_whatever_was_imported(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _draw_after_import(5, "A = 1\n", tmp_path, monkeypatch)
    after = _draw_after_import(5, "B = " + " + ".join(str(123456789 + i) for i in range(200)) + "\n", tmp_path, monkeypatch)
    assert before == after, CHANGED


