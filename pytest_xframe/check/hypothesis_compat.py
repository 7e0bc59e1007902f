"""Every use of a private hypothesis API, in one place.

Checked against hypothesis 6.170.17 (``CHECKED_WITH``). ``tests/unit/check/test_hypothesis_compat.py`` fails
loudly when an installed hypothesis no longer reads one of these attributes the way we rely on.
hypothesis itself is imported inside the functions only (start-up stays light).
"""

from __future__ import annotations

from typing import Any

CHECKED_WITH = "6.170.17"


def set_database_key(test: Any, key: bytes) -> None:
    """File a ``@given`` test's examples in hypothesis's database under ``key`` as well as the
    function's own digest: the marker's runs of one test function (one per backend, per model)
    would otherwise share the entries. hypothesis 6.170.17: ``internal/reflection.py``'s
    ``function_digest`` hashes ``inner_test._hypothesis_internal_add_digest`` into the database key."""
    test.hypothesis.inner_test._hypothesis_internal_add_digest = key


def seed_keeping_database(test: Any, seed: int) -> None:
    """Draw a ``@given`` test's inputs from ``seed``, as ``@seed`` does, without ``@seed``'s side
    effect of switching the example database off; a test already seeded (by ``@seed``) keeps its
    seed. hypothesis 6.170.17: ``@given`` sets ``_hypothesis_internal_use_seed = None`` on the
    wrapper and ``core.py`` reads it per run."""
    if getattr(test, "_hypothesis_internal_use_seed", 0) is None:
        test._hypothesis_internal_use_seed = seed


def forced_seed() -> int | None:
    """The seed ``--hypothesis-seed`` forces on every test, or None. hypothesis 6.170.17: its
    pytest plugin stores it in ``hypothesis.core.global_force_seed``."""
    from hypothesis import core

    return getattr(core, "global_force_seed", None)
