"""``python -m pytest_xframe replay`` on cases it cannot replay: each says why in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_replay_of_a_backend_without_load_case_says_to_rerun(tmp_path: Path) -> None:
    import numpy as np

    case = {"test_id": "t.py::test[litert-torch]", "backend": "litert-torch", "model": "Net", "onnx": "-", "comparisons": []}
    (tmp_path / "case.json").write_text(json.dumps(case))
    for name in ("inputs.npz", "reference.npz"):
        np.savez(tmp_path / name, x=np.zeros(2, np.float32))
    replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert replay.returncode != 0
    assert replay.stderr.strip().splitlines() == [
        f"replay: backend 'litert-torch' cannot load a saved case (it has no load_case); rerun its test instead of replaying {tmp_path}"
    ]


def test_replay_of_a_missing_case_says_what_to_pass(tmp_path: Path) -> None:
    replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(tmp_path)], capture_output=True, text=True)
    assert replay.returncode != 0
    assert "case.json not found" in replay.stderr
