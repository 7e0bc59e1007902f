"""Every use of a private hypothesis API, in one place.

Checked against hypothesis 6.170.27 (``CHECKED_WITH``). ``tests/unit/check/test_hypothesis_compat.py`` fails
loudly when an installed hypothesis no longer reads one of these attributes the way we rely on.
hypothesis itself is imported inside the functions only (start-up stays light).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHECKED_WITH = "6.170.27"


def set_database_key(test: Any, key: bytes) -> None:
    """File a ``@given`` test's examples in its example database under exactly ``key``: the
    marker's runs of one test function (one per backend, per model) would otherwise share the
    entries, and the check must know the key to hand its search inputs to replay
    (``check/search.py``). A key set this way stays in use under ``--hypothesis-seed`` too, so the
    caller passes ``database=None`` where hypothesis would use none. hypothesis 6.170.27:
    ``core.py``'s ``run_engine`` reads ``wrapped_test._hypothesis_internal_database_key`` first
    (``find()`` sets it), and the engine replays every entry filed under that key (the "primary"
    corpus) before it generates, each counted as an example, its ``target`` scores kept."""
    test._hypothesis_internal_database_key = key


def current_choices() -> bytes:
    """The choices hypothesis made for the example now running, serialized as its database stores
    them: filed under a test's key, they replay that example. hypothesis 6.170.27:
    ``control.current_build_context().data`` is the example's ``ConjectureData``, whose ``choices``
    ``database.choices_to_bytes`` serializes."""
    from hypothesis.control import current_build_context
    from hypothesis.database import choices_to_bytes

    return choices_to_bytes(current_build_context().data.choices)


def seed_keeping_database(test: Any, seed: int) -> None:
    """Draw a ``@given`` test's inputs from ``seed``, as ``@seed`` does, without ``@seed``'s side
    effect of switching the example database off; a test already seeded (by ``@seed``) keeps its
    seed. hypothesis 6.170.27: ``@given`` sets ``_hypothesis_internal_use_seed = None`` on the
    wrapper and ``core.py`` reads it per run."""
    if getattr(test, "_hypothesis_internal_use_seed", 0) is None:
        test._hypothesis_internal_use_seed = seed


def forced_seed() -> int | None:
    """The seed ``--hypothesis-seed`` forces on every test, or None. hypothesis 6.170.27: its
    pytest plugin stores it in ``hypothesis.core.global_force_seed``."""
    from hypothesis import core

    return getattr(core, "global_force_seed", None)


@contextmanager
def without_local_constants() -> Iterator[None]:
    """Draw with hypothesis's built-in constants only, so that one seed draws the same inputs at any
    point of any session. hypothesis 6.170.27 mixes into about 5% of its draws the literals found in
    the source of every local module imported so far (``internal/conjecture/providers.py``:
    ``_get_local_constants``, which the per-example ``HypothesisProvider`` calls, its results
    filtered per choice into ``CONSTANTS_CACHE``); that set grows as a session imports modules, so
    two runs from one seed draw differently when a module was imported between them. Both module
    globals are swapped for the duration and put back."""
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    saved = providers._get_local_constants, providers.CONSTANTS_CACHE
    empty = Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE = type(saved[1])(1024)
    try:
        yield
    finally:
        providers._get_local_constants, providers.CONSTANTS_CACHE = saved
