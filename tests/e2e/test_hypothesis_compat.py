"""``--hypothesis-seed`` reaches the seed pytest-xframe draws with (``pytest_xframe.check.hypothesis_compat``)."""

from __future__ import annotations

import pytest


def test_the_forced_seed_is_hypothesis_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_xframe.check.hypothesis_compat import forced_seed

        def test_seed():
            assert forced_seed() == 5
        """
    )
    pytester.runpytest_subprocess("--hypothesis-seed=5", "-p", "no:randomly").assert_outcomes(passed=1)
