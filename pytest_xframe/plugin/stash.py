"""Keys of pytest's stash shared by the plugin's hooks and the modules they call (no import cycle)."""

from __future__ import annotations

import pytest

#: an item's records (``report.records_from``), one per backend checked in the test
RECORDS_KEY = pytest.StashKey[list]()

#: the model given by --xframe-model (``collect.ModelDecl``), None without one
CLI_MODEL_KEY = pytest.StashKey["object"]()
