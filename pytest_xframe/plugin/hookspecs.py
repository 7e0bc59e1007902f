"""Hooks pytest-xframe offers other plugins and ``conftest.py`` files (added in ``pytest_addhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..backends import Backend


@pytest.hookspec
def pytest_xframe_register_backends(config: pytest.Config) -> list[Backend]:
    """Return backends (``pytest_xframe.backends.Backend`` objects) to check besides the built-ins.

    Called once per process in ``pytest_configure``, so implement it in a plugin or in a
    ``conftest.py`` pytest loads at start-up (the rootdir's, or one beside the tests given on the
    command line). Each name must be new; options, marker ids, reports and replay then know it.
    """
