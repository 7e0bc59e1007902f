"""How a check spends its examples on hypothesis's searches.

A check of several backends in one call is one search: every input runs torch once and each
backend, and hypothesis steers by every backend's error at once. The marker checks each backend in a
test item of its own, and each item runs its own search; were those searches free, torch would run
on nearly every input twice (hypothesis's targeting, steered by each backend's own error, leaves
each run inputs of its own). So the marker's items of one test split ``max_examples``:

- **the shared draw** (``Split.shared`` inputs): hypothesis generates from the test's seed with its
  targeting held back, so the inputs depend on the seed alone: the same on every backend, whichever
  runs first and wherever it runs. torch's outputs are memoised per input (``SessionMemo.reference``),
  so within one process torch runs once on each of them for all the backends.
- **each backend's own search** (``Split.own`` inputs): hypothesis's target phase, steered by this
  backend's error, starts from the shared inputs this backend judged worst (replayed through the
  example database, without running anything again) and climbs from there.

Torch then runs on one backend's ``max_examples`` inputs and at most ``OWN_SHARE`` more: the own
searches get ``max_examples // 10`` inputs between them beyond the first backend's. Where that is at
least one per backend after the first, every backend searches the same number on its own; where it
is fewer (at 20 examples, more than 3 backends), the backends first in the marker's list get one
each and the others judge the whole shared draw instead, which is then drawn one input longer for
every backend (those with an own search judge its first ``max_examples - 1``), so that each backend
judges ``max_examples`` inputs and all draw the same ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: the torch runs the own searches may add to one backend's ``max_examples``, as a share of it
OWN_SHARE = 0.1


@dataclass(frozen=True)
class Sharing:
    """The marker's backends of one test (``backends``), and this item's place in its list."""

    backends: int
    position: int


@dataclass(frozen=True)
class Split:
    """``max_examples`` of one backend's check: ``shared`` inputs of the shared draw and ``own`` of
    its own search; the shared draw generates ``drawn`` inputs, the same number for every backend
    of the test (``shared`` of them judged here, the rest passed over unrun)."""

    shared: int
    own: int
    drawn: int


def split(max_examples: int, sharing: Sharing | None) -> Split | None:
    """How the marker's item ``sharing`` spends ``max_examples``; None where there is nothing to
    share (no marker, one backend, or too few examples to split)."""
    if sharing is None or sharing.backends < 2 or max_examples < 2:
        return None
    budget = int(OWN_SHARE * max_examples)  # torch runs beyond one backend's
    later = sharing.backends - 1
    if budget >= later:
        own = min(budget // later, max_examples - 1)
        return Split(shared=max_examples - own, own=own, drawn=max_examples - own)
    own = 1 if sharing.position < budget else 0
    return Split(shared=max_examples - own, own=own, drawn=max_examples)


@dataclass
class Drawn:
    """What the shared draw learnt about its inputs, for the own search to start from: each
    input's hypothesis choices and this backend's ``target`` scores on it, by feeds digest."""

    choices: dict[bytes, bytes] = field(default_factory=dict)
    scores: dict[bytes, dict[str, float]] = field(default_factory=dict)

    def add(self, digest: bytes, choices: bytes, scores: Mapping[str, float]) -> None:
        self.choices[digest] = choices
        self.scores[digest] = dict(scores)

    def best(self) -> tuple[bytes, ...]:
        """The choices of the input that scored highest on each label (hypothesis climbs from
        these), each once."""
        best: dict[str, tuple[float, bytes]] = {}
        for digest, scores in self.scores.items():
            for label, score in scores.items():
                if label not in best or score > best[label][0]:
                    best[label] = (score, digest)
        return tuple(dict.fromkeys(self.choices[digest] for _, digest in best.values()))


def judging_first(example: Callable[..., None], count: int) -> Callable[..., None]:
    """``example`` on the first ``count`` inputs it is called with; the later ones pass unrun (the
    shared draw's inputs beyond this backend's share, drawn so that every backend of the test draws
    the same). After a failure every input runs: hypothesis's shrinking must see the test's verdicts."""
    state = {"seen": 0, "failed": False}

    def first(feeds: Any, record: bool = True) -> None:
        __tracebackhide__ = True
        if state["seen"] >= count and not state["failed"]:
            return
        state["seen"] += 1
        try:
            example(feeds, record)
        except BaseException:
            state["failed"] = True
            raise

    return first


def failure_phases(phases: Iterable[Any]) -> list[Any]:
    """The replay of known failures: reuse, and shrinking where the settings shrink."""
    from hypothesis import Phase

    return [Phase.reuse, *(p for p in phases if p is Phase.shrink)]


def shared_phases(phases: Iterable[Any]) -> list[Any]:
    """The shared draw: generation (and shrinking), without the replay of earlier inputs or the
    targeting that would make its inputs differ per backend."""
    return [p for p in phases if p.name not in ("explain", "reuse", "target")]


def own_phases(phases: Iterable[Any]) -> list[Any] | None:
    """The own search: replay (the shared inputs to start from), targeting, shrinking where the
    settings shrink; None where the settings do not target."""
    from hypothesis import Phase

    chosen = [p for p in phases if p in (Phase.target, Phase.shrink)]
    return [Phase.reuse, *chosen] if Phase.target in chosen else None


def database_view(inner: Any, key: bytes, *, replay: tuple[bytes, ...] = (), failures_only: bool = False) -> Any:
    """The example database one search of a check sees, over the user's (``inner``, or None):

    - ``replay``: choices served under the check's ``key`` besides the user's entries, so the
      engine runs them first (the own search's starting points; the engine drops an entry that
      passes with ``delete``, which never reaches the user's database for these);
    - ``failures_only``: the check's known failures (the key's own entries) and nothing of the
      inputs this backend's earlier searches kept (its secondary and Pareto entries).
    """
    return _view_class()(inner, key, replay, failures_only)


@functools.cache
def _view_class() -> type:
    from hypothesis.database import ExampleDatabase

    class CheckDatabase(ExampleDatabase):
        """A view of the user's example database for one search of a check (``database_view``)."""

        def __init__(self, inner: ExampleDatabase | None, key: bytes, replay: tuple[bytes, ...], failures_only: bool) -> None:
            super().__init__()
            self.inner, self.key, self.replay, self.failures_only = inner, key, replay, failures_only

        def fetch(self, key: bytes) -> Iterable[bytes]:
            if self.failures_only and key != self.key:
                return []
            own = list(self.inner.fetch(key)) if self.inner is not None else []
            return list(dict.fromkeys([*self.replay, *own])) if key == self.key else own

        def save(self, key: bytes, value: bytes) -> None:
            if self.inner is not None:
                self.inner.save(key, value)

        def delete(self, key: bytes, value: bytes) -> None:
            if self.inner is not None and not (key == self.key and value in self.replay):
                self.inner.delete(key, value)

        def __repr__(self) -> str:
            return f"CheckDatabase({self.inner!r})"

    return CheckDatabase


def known_failures(inner: Any, key: bytes) -> int:
    """How many failures the user's database keeps for the check's key: replayed on their own
    before the shared draw, whose generation a replayed input would steer away from the shared one."""
    return 0 if inner is None else len(list(inner.fetch(key)))
