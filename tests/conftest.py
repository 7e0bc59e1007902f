"""Shared fixtures for pytest-xframe's own tests.

pytester's in-process runs restore ``sys.modules`` afterwards, so a framework first imported
inside one would be imported again in the next (slow, and TensorFlow does not survive it). The
frameworks are imported here once instead, lazily: only tests that run pytester sessions need them.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: tiny models shared by the inner pytest sessions (written as their conftest)
INNER_CONFTEST = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class MLP(nn.Module):
        def __init__(self, d_in=6, d_out=3):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(d_in, 8), nn.ReLU(), nn.Linear(8, d_out))

        def forward(self, x):
            return self.net(x)


    class Branchy(nn.Module):
        """A data-dependent branch: the torchscript exporter freezes the one the example took."""

        def forward(self, x):
            if x.sum() > 0:
                return x * 2.0
            return x - 1.0


    class TwoIn(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a = nn.Linear(4, 5)
            self.b = nn.Linear(3, 5)

        def forward(self, left, right):
            joint = self.a(left) + self.b(right)
            return {"sum": joint, "pair": (joint.relu(), joint.sigmoid())}
    '''
)


@pytest.fixture(scope="session")
def frameworks() -> None:
    """Import torch, ONNX Runtime, TensorFlow and onnx-tf once for the whole run.

    The tests that use it run the plugin's default backends, TensorFlow among them: skipped, not
    errors, where TensorFlow is not installed (an ONNX Runtime-only machine).
    """
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (imported lazily by torch.manual_seed and the dynamo exporter: not twice)

    pytest.importorskip("tensorflow", reason="these tests run the default backends; TensorFlow is not installed (extra 'tf')")
    if importlib.util.find_spec("onnx_tf") is None:  # importing it needs the compat layer first
        pytest.skip("these tests run the default backends; onnx-tf is not installed (extra 'tf')")

    from pytest_xframe.convert.onnx_tf_compat import install

    install()
    import onnx_tf.backend  # noqa: F401


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion cache for every inner session: each model converts once per test run."""
    return tmp_path_factory.mktemp("xframe-cache")


@pytest.fixture
def xf_pytester(pytester: pytest.Pytester, frameworks: None, shared_cache: Path) -> pytest.Pytester:
    """A pytester project with the tiny models and the shared conversion cache."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makeini(f"[pytest]\naddopts = --xframe-cache-dir={shared_cache} -p no:randomly\n")
    return pytester


@pytest.fixture(autouse=True)
def _restore_hypothesis_seed():
    """hypothesis's plugin sets ``core.global_force_seed`` from ``--hypothesis-seed`` and leaves it
    set: an in-process inner session given that flag must not fix the seed (and switch off the
    example database) of every later test in this process."""
    from hypothesis import core

    forced = core.global_force_seed
    yield
    core.global_force_seed = forced
