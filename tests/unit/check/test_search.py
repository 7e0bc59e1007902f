"""check/search.py: how the marker's items of one test split their examples, and the example
database each of their searches sees."""

from __future__ import annotations

import pytest

from pytest_xframe.check.search import Drawn, Sharing, Split, database_view, judging_first, known_failures, split


@pytest.mark.parametrize(
    ("examples", "backends", "expected"),
    [
        (20, 1, [None]),  # nothing to share: one search of 20
        (1, 3, [None] * 3),  # too few to split
        (20, 2, [Split(shared=18, own=2, drawn=18)] * 2),
        (20, 3, [Split(shared=19, own=1, drawn=19)] * 3),
        # 2 own inputs for 4 backends after the first: the first two in the list search on their own,
        # the others judge the whole draw, one input longer for all
        (20, 5, [Split(shared=19, own=1, drawn=20)] * 2 + [Split(shared=20, own=0, drawn=20)] * 3),
        (40, 5, [Split(shared=39, own=1, drawn=39)] * 5),
        (100, 3, [Split(shared=95, own=5, drawn=95)] * 3),
        (9, 2, [Split(shared=9, own=0, drawn=9)] * 2),  # under 10 examples there is no room for own searches
    ],
)
def test_split_keeps_torch_within_a_tenth_more_than_one_backend(examples: int, backends: int, expected: list[Split | None]) -> None:
    plans = [split(examples, Sharing(backends, position)) for position in range(backends)]
    assert plans == expected
    assert split(examples, None) is None  # no marker: one search
    if expected[0] is not None:
        assert len({p.drawn for p in plans}) == 1  # every backend draws the same inputs
        assert all(p.shared + p.own == examples and p.shared <= p.drawn for p in plans)  # and judges max_examples of them
        torch_runs = plans[0].drawn + sum(p.own for p in plans)  # the draw once, each own search's inputs
        assert torch_runs <= examples + int(0.1 * examples), plans


def test_judging_first_passes_over_later_inputs_until_a_failure() -> None:
    ran: list[int] = []

    def example(feeds: int, record: bool = True) -> None:
        ran.append(feeds)
        if feeds == 99:
            raise AssertionError("mismatch")

    first = judging_first(example, 2)
    for feeds in (1, 2, 3, 4):
        first(feeds)
    assert ran == [1, 2]  # 3 and 4 pass unrun
    ran.clear()
    failing = judging_first(example, 1)
    with pytest.raises(AssertionError):
        failing(99)
    failing(5)  # after a failure every input runs: hypothesis's shrinking calls the test again
    assert ran == [99, 5]


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
