"""check/search.py: how the marker's items of one test split their examples, and the example
database each of their searches sees."""

from __future__ import annotations

import pytest

from pytest_xframe.check.search import Drawn, Split, database_view, known_failures, split


@pytest.mark.parametrize(
    ("examples", "backends", "expected"),
    [
        (20, 1, None),  # nothing to share: one search of 20
        (1, 3, None),  # too few to split
        (20, 2, Split(shared=18, own=2)),
        (20, 3, Split(shared=19, own=1)),
        (20, 5, Split(shared=19, own=1)),  # at least one input of its own per backend
        (100, 3, Split(shared=95, own=5)),
        (2, 2, Split(shared=1, own=1)),
    ],
)
def test_split_keeps_torch_within_a_tenth_more_than_one_backend(examples: int, backends: int, expected: Split | None) -> None:
    assert split(examples, backends) == expected
    if expected is not None and backends <= 3 and examples >= 20:
        assert expected.shared + backends * expected.own <= 1.1 * examples
        assert expected.shared + expected.own == examples  # each backend judges max_examples inputs


def test_drawn_best_is_the_top_input_per_label_each_once() -> None:
    drawn = Drawn()
    drawn.add(b"a", b"choices-a", {"ratio": 0.5, "-snr": -40.0})
    drawn.add(b"b", b"choices-b", {"ratio": 0.9, "-snr": -60.0})
    drawn.add(b"c", b"choices-c", {"ratio": 0.9, "-snr": -50.0})  # a tie keeps the first seen
    assert drawn.best() == (b"choices-b", b"choices-a")
    drawn.add(b"d", b"choices-d", {"ratio": 2.0, "-snr": -10.0})
    assert drawn.best() == (b"choices-d",)
    assert Drawn().best() == ()


def test_the_view_replays_given_entries_first_and_keeps_them_out_of_the_users_database() -> None:
    from hypothesis.database import InMemoryExampleDatabase

    user = InMemoryExampleDatabase()
    user.save(b"key", b"failure")
    user.save(b"key.pareto", b"earlier-best")
    view = database_view(user, b"key", replay=(b"start",))
    assert list(view.fetch(b"key")) == [b"start", b"failure"]
    assert list(view.fetch(b"key.pareto")) == [b"earlier-best"]
    view.delete(b"key", b"start")  # the engine drops an entry that passed: not the user's to lose
    view.save(b"key", b"new-failure")
    view.delete(b"key", b"failure")
    assert set(user.fetch(b"key")) == {b"new-failure"} and list(view.fetch(b"key")) == [b"start", b"new-failure"]
    failures = database_view(user, b"key", failures_only=True)
    assert list(failures.fetch(b"key")) == [b"new-failure"] and list(failures.fetch(b"key.pareto")) == []
    assert known_failures(user, b"key") == 1 and known_failures(None, b"key") == 0
    assert list(database_view(None, b"key", replay=(b"start",)).fetch(b"key")) == [b"start"]
