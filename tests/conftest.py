"""Shared fixtures for pytest-xframe's own tests.

pytester's in-process runs restore ``sys.modules`` afterwards, so a framework first imported
inside one would be imported again in the next (slow, and TensorFlow does not survive it). The
frameworks are imported here once instead, lazily: only tests that run pytester sessions need them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: the shared test models (``tests/torch_models.py``), written as the inner projects' conftest so
#: their tests say ``from conftest import MLP``; read as text: importing torch here would slow every run
MODELS_FILE = Path(__file__).with_name("torch_models.py")
INNER_CONFTEST = MODELS_FILE.read_text()


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, whose sessions start serial even when this suite runs under pytest-xdist.

    An xdist worker's environment (``PYTEST_XDIST_WORKER``, ``PYTEST_XDIST_WORKER_COUNT``...)
    would otherwise reach the inner sessions, in process and in subprocesses alike, and make
    them size their thread pools as workers of the outer run.
    """
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
    return pytester


def _load_the_dynamo_exporter() -> None:
    """One tiny dynamo export, so torch.export, onnxscript and the ~470 modules they import lazily
    are loaded before pytester snapshots ``sys.modules``: imported again in a second in-process
    run, torch.export fails ("Failed to export the model with torch.export")."""
    if importlib.util.find_spec("onnxscript") is None:
        return
    import io
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Linear(2, 1), (torch.zeros(1, 2),), io.BytesIO(), dynamo=True, verbose=False)


@pytest.fixture(scope="session")
def frameworks() -> None:
    """Import torch, ONNX Runtime, TensorFlow and onnx-tf once for the whole run.

    The tests that use it run the plugin's default backends, TensorFlow among them: skipped, not
    errors, where TensorFlow is not installed (an ONNX Runtime-only machine).
    """
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch
    import torch._dynamo  # noqa: F401  (imported lazily by torch.manual_seed and the dynamo exporter: not twice)
    _load_the_dynamo_exporter()
    # Modules that register themselves in torch's registries (dynamo's backends; torchao, which
    # transformers' models pull, and its operator libraries) are imported here, outside any inline
    # pytester session: imported inside one, they are dropped from sys.modules with the session's
    # modules, and the next import registers them twice (torch raises on "duplicate name: eager" and
    # on a second TORCH_LIBRARY).
    from torch._dynamo.backends.registry import list_backends

    list_backends(exclude_tags=())
    if importlib.util.find_spec("transformers") is not None:
        import transformers.modeling_utils  # noqa: F401

    pytest.importorskip("tensorflow", reason="these tests run the default backends; TensorFlow is not installed (extra 'tf')")
    if importlib.util.find_spec("onnx_tf") is None:  # importing it needs the compat layer first
        pytest.skip("these tests run the default backends; onnx-tf is not installed (extra 'tf')")

    from pytest_xframe.backends.tensorflow.onnx_tf_compat import install

    install()
    import onnx_tf.backend  # noqa: F401


@pytest.fixture(scope="session")
def torch_mod():
    """torch, for tests that call ``xframe.check`` directly; skipped where torch is not installed."""
    return pytest.importorskip("torch")


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


@pytest.fixture
def unforced_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the tests of the example database: hypothesis uses no database under a forced seed, and
    this suite's own ``--hypothesis-seed`` is forced in this process, so in-process inner sessions
    would inherit it. These tests are about runs without one."""
    from hypothesis import core

    monkeypatch.setattr(core, "global_force_seed", None)


#: the models of the data-set tests (``tests/data_models.py``), written as their projects' conftest
DATA_MODELS = Path(__file__).with_name("data_models.py").read_text()


@pytest.fixture(scope="session")
def data_artifacts(tmp_path_factory: pytest.TempPathFactory, frameworks: None) -> Path:
    """The classifier of ``data_models``, trained once per run (about a second), and its data:
    ``eval.npz`` (200 labelled samples stacked), ``eval_dir/`` (the first 24, one file each) and
    ``seq.npz`` (100 sequences of 5 positions, unlabelled)."""
    import numpy as np
    import torch

    import data_models

    root = tmp_path_factory.mktemp("xframe-data")
    torch.save(data_models.train_classifier().state_dict(), root / "classifier.pt")
    x, y = data_models.blobs(200, 1)
    np.savez(root / "eval.npz", x=x, label=y)
    (root / "eval_dir").mkdir()
    for i in range(24):
        np.savez(root / "eval_dir" / f"s{i:03d}.npz", x=x[i], label=y[i])
    tokens, _ = data_models.blobs(500, 2)
    np.savez(root / "seq.npz", x=tokens.reshape(100, 5, data_models.D))
    return root


@pytest.fixture
def data_pytester(xf_pytester: pytest.Pytester, data_artifacts: Path) -> pytest.Pytester:
    """A pytester project whose conftest is ``data_models``, pointed at the trained artifacts, with
    the shared models it builds on (``torch_models.py``) beside it."""
    xf_pytester.makepyfile(torch_models=INNER_CONFTEST)
    xf_pytester.makeconftest(DATA_MODELS.replace("\nARTIFACTS = None\n", f"\nARTIFACTS = {str(data_artifacts)!r}\n"))
    return xf_pytester
