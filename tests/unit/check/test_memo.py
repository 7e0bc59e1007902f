"""check/memo.py: torch outputs are memoised by model fingerprint and feeds, within a byte budget."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_torch_outputs_kept_least_recently_used_within_a_byte_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check import memo as memos_module

    monkeypatch.setattr(memos_module, "REFERENCE_CACHE_BYTES", 3 * 800)  # three outputs of 100 float64
    memo = memos_module.SessionMemo(tmp_path, ArtifactCache(None))
    runs: list[float] = []

    def reference(value: float, size: int = 100) -> dict:
        def compute() -> dict:
            runs.append(value)
            return {"output": np.full(size, value)}

        return memo.reference(("model",), {"x": np.array([value], np.float32)}, compute)

    for value in (1.0, 2.0, 3.0, 1.0):  # 1.0 is kept: computed once, and now the most recent
        assert reference(value)["output"][0] == value
    assert runs == [1.0, 2.0, 3.0]
    reference(4.0)  # over budget: the least recently used (2.0) goes
    reference(1.0), reference(3.0)
    assert runs == [1.0, 2.0, 3.0, 4.0]
    reference(2.0)
    assert runs[-1] == 2.0
    reference(5.0, size=1000)  # bigger than the whole budget: computed, never kept
    reference(5.0, size=1000)
    assert runs[-2:] == [5.0, 5.0]
