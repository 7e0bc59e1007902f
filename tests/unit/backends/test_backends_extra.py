"""The optional onnx2tf and tflite backends, end to end through the ``xframe`` fixture.

Real frameworks, no mocks: each test is skipped, naming the missing package, where its backend
is not installed. Small models and few examples keep the file around a minute on 2 cores.
"""

from __future__ import annotations

import importlib
import socket
import sys
import time

import pytest

from pytest_xframe import Dim, TensorSpec

torch = pytest.importorskip("torch")
nn = torch.nn

from torch_models import MLP, TokenModel, TwoIn  # noqa: E402

BATCH = Dim("batch", 1, 3)


def _needs(backend: str) -> None:
    """Skip, naming the missing packages and the extra, unless ``backend`` can run here.

    The registry checks importability without importing (onnx_tf only imports behind our
    compatibility layer, so ``pytest.importorskip("onnx_tf")`` would fail rather than skip).
    """
    from pytest_xframe import backends

    reason = backends.get(backend).missing()
    if reason:
        pytest.skip(reason)


# litert-torch runs the same architectures in test_coverage.py and its own cases in test_litert_torch.py
@pytest.fixture(params=["onnx2tf", "tflite"])
def backend(request: pytest.FixtureRequest) -> str:
    _needs(request.param)
    return request.param


class SmallCNN(nn.Module):
    """Conv + BatchNorm + pooling on a 3-channel image; the output keeps a channels axis."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 4, 3, padding=1, stride=2)
        with torch.no_grad():  # non-trivial running statistics
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return self.conv2(torch.relu(self.bn(self.conv(x))))


class DictOut(TwoIn):
    """Two inputs, a dict of outputs whose names do not sort in ONNX order."""

    def forward(self, left, right):
        joint = self.a(left) + self.b(right)
        return {"zsum": joint, "gate": joint.sigmoid()}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every DNS lookup or connection fails (and is recorded), as on an offline CI machine."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1] if len(args) > 1 else args)
        raise OSError("network disabled by test")

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    return attempts


def _check(xframe, backend: str, model, inputs, **options):
    report = xframe.check(model.eval(), inputs=inputs, backends=[backend], max_examples=options.pop("max_examples", 5), **options)
    result = report[backend]
    assert result.verdict == "passed", result.message
    assert result.examples >= 1
    print(f"{backend} {type(model).__name__}: max abs {result.max_abs:.3g}, convert {result.convert_seconds:.2f} s, onnx {result.onnx}")
    return result


def test_mlp(xframe, backend: str) -> None:
    result = _check(xframe, backend, MLP(), [TensorSpec((BATCH, 6))])
    assert result.max_abs < 1e-5


def test_cnn_with_batchnorm_keeps_torch_layout(xframe, backend: str, no_network: list) -> None:
    result = _check(xframe, backend, SmallCNN(), [TensorSpec((BATCH, 3, 16, 16))])
    # compared in the torch layout: NCHW shape in the report, not onnx2tf's NHWC
    (comparison,) = result.worst.values()
    assert comparison.shape[1:] == (4, 8, 8)
    assert result.max_abs < 1e-4
    assert no_network == []


def test_int64_token_ids_through_embedding(xframe, backend: str) -> None:
    result = _check(xframe, backend, TokenModel(), [TensorSpec((BATCH, 5), "int64", low=0, high=49)])
    assert result.max_abs < 1e-5


def test_dict_output_mapped_by_name(xframe, backend: str) -> None:
    result = _check(xframe, backend, DictOut(), {"left": TensorSpec((BATCH, 4)), "right": TensorSpec((BATCH, 3))})
    assert set(result.worst) == {"zsum", "gate"}
    assert result.max_abs < 1e-5


class WidthThreeImage(nn.Module):
    """Static batch, 3 channels, width 3: kept NCHW, its last dim is 3, which is exactly when
    onnx2tf fetches its calibration images from the network."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


def test_onnx2tf_converts_offline(xframe, no_network: list, monkeypatch: pytest.MonkeyPatch) -> None:
    _needs("onnx2tf")
    # the module the check will import (sys.modules'), not an earlier in-process session's copy that
    # may still hang on the package as an attribute, which ``from ... import convert`` would return
    conv = importlib.import_module("pytest_xframe.backends.onnx2tf.convert")

    calls = []
    original = conv._offline_calibration_data
    monkeypatch.setattr(conv, "_offline_calibration_data", lambda: calls.append(1) or original())
    # fresh weights each run: a cached conversion would not reach onnx2tf at all
    model = WidthThreeImage(seed=time.time_ns() % 2**31)
    result = _check(xframe, "onnx2tf", model, [TensorSpec((2, 3, 8, 3))], max_examples=3)
    assert result.convert_seconds > 0 and not result.cache_hit
    assert calls, "the model did not reach onnx2tf's calibration download: the test proves nothing"
    assert no_network == [], f"onnx2tf tried to reach the network: {no_network}"
    assert result.max_abs < 1e-5


STATE_SCRIPT = r"""
import json, os, random, sys, warnings
import numpy as np
import tensorflow as tf
import torch
from tensorflow.python.framework import config as tf_config
from tensorflow.python.eager import context

def state():
    return repr((
        sys.getrecursionlimit(),
        [(f[0], str(f[1]), getattr(f[2], "__name__", f[2]), str(f[3]), f[4]) for f in warnings.filters],
        {k: os.environ.get(k) for k in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")},
        random.getstate(),
        np.random.get_state()[1].tobytes(),
        context.global_seed(),
        tf_config.is_op_determinism_enabled(),
        tf.get_logger().level,
    ))

import onnx
from pathlib import Path
out = Path(sys.argv[1])
model = torch.nn.Sequential(torch.nn.Linear(6, 3)).eval()
torch.onnx.export(model, (torch.rand(2, 6),), str(out / "m.onnx"), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
before = state()
from pytest_xframe.backends.onnx2tf import convert as conv
conv.load()
after_import = state()
conv.convert(onnx.load(str(out / "m.onnx")), out / "saved", model_name="m")
after_convert = state()
print(json.dumps({
    "import_kept": after_import == before,
    "convert_kept": after_convert == before,
    "keras": tf.keras.layers.Dense.__module__,
    "saved": (out / "saved" / "saved_model.pb").is_file(),
}))
"""


@pytest.mark.slow
def test_onnx2tf_leaves_process_state_alone(tmp_path) -> None:
    """In a fresh process: importing onnx2tf and converting change no process-wide state."""
    _needs("onnx2tf")
    import json
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "CUDA_VISIBLE_DEVICES")}
    done = subprocess.run(
        [sys.executable, "-c", STATE_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["saved"]
    assert result["import_kept"], "importing onnx2tf changed process state"
    assert result["convert_kept"], "converting with onnx2tf changed process state"
    # tf.keras is still Keras 3, not the tf_keras that onnx2tf selects with TF_USE_LEGACY_KERAS=1
    assert result["keras"].startswith("keras"), result["keras"]


def test_onnx2tf_runner_transposes_channels_last_outputs() -> None:
    np = pytest.importorskip("numpy")
    from pytest_xframe.backends.onnx2tf.convert import to_onnx_layout

    nchw = np.arange(2 * 4 * 8 * 3).reshape(2, 4, 8, 3)
    nhwc = nchw.transpose(0, 2, 3, 1)
    spec = {"channels_last": True, "shape": [None, 4, 8, 3]}
    assert np.array_equal(to_onnx_layout(nhwc, spec), nchw)
    # the flag is checked against the ONNX dims: a flag that cannot be right is overruled
    assert np.array_equal(to_onnx_layout(nchw, spec), nchw)
    assert np.array_equal(to_onnx_layout(nhwc, {"channels_last": False, "shape": [None, 4, 8, 3]}), nchw)
    flat = np.ones((2, 5))
    assert to_onnx_layout(flat, {"channels_last": True, "shape": [None, 5]}) is not None


def test_tflite_rejects_ids_that_do_not_fit_the_declared_dtype() -> None:
    np = pytest.importorskip("numpy")
    from pytest_xframe.backends.tflite.runner import _cast_feed

    assert _cast_feed(np.array([1, 2], dtype=np.int64), np.dtype(np.int32), "ids").dtype == np.int32
    with pytest.raises(ValueError, match="outside int32"):
        _cast_feed(np.array([2**40], dtype=np.int64), np.dtype(np.int32), "ids")


def test_missing_backend_names_its_extra() -> None:
    from dataclasses import replace

    from pytest_xframe import backends

    for name, extra in (("onnx2tf", "onnx2tf"), ("tflite", "tflite"), ("litert-torch", "litert-torch")):
        backend = backends.get(name)
        assert backend.extra == extra
        fake = replace(backend, modules=("no_such_module_xframe",))
        assert fake.missing() == f"{name} backend needs no_such_module_xframe: pip install 'pytest-xframe[{extra}]'"


def test_framework_that_fails_to_import_is_a_conversion_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed but broken (a version clash raising at import): a ConversionError naming the
    framework and the extra, remembered for the session; a missing one stays a skip (above)."""
    from dataclasses import replace

    from pytest_xframe import ConversionError, backends
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.export.to_onnx import OnnxArtifact

    (tmp_path / "xframe_broken_framework.py").write_text("raise RuntimeError('built against another numpy')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = replace(backends.get("tflite"), name="broken", framework=("xframe_broken_framework",))
    artifact = OnnxArtifact(tmp_path / "model.onnx", "torchscript", 17, ("x",), ("y",), 0.0)
    memo = SessionMemo(tmp_path, ArtifactCache(None, scratch=tmp_path))
    for _ in range(2):  # the second call gets the remembered error
        with pytest.raises(ConversionError) as caught:
            memo.prepare(broken, artifact, "Net")
        text = str(caught.value)
        assert "xframe_broken_framework is installed but fails to import" in text
        assert "RuntimeError: built against another numpy" in text and "pytest-xframe[tflite]" in text


def test_framework_import_pauses_the_collector_restores_it_and_freezes_the_module(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    from dataclasses import replace

    from pytest_xframe import backends

    (tmp_path / "xframe_probe_framework.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    (tmp_path / "xframe_probe_framework2.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = replace(backends.get("tflite"), framework=("xframe_probe_framework",))
    assert gc.isenabled()
    assert probe.import_framework() > 0
    module = __import__("xframe_probe_framework")
    assert gc.isenabled() and not module.COLLECTING
    # frozen: later collections (pytest's at the end, the interpreter's at exit) skip the module
    assert gc.get_freeze_count() > 0 and all(o is not module.__dict__ for o in gc.get_objects())
    # once imported, nothing more is frozen: what tests made since stays collectable
    made_since = [[]]
    made_since[0].append(made_since)
    frozen = gc.get_freeze_count()
    assert probe.import_framework() < 0.01
    # (<=: a frozen object that an earlier test left behind may be freed meanwhile)
    assert gc.get_freeze_count() <= frozen and any(o is made_since for o in gc.get_objects())
    gc.disable()  # a suite that runs with the collector off keeps it off
    try:
        replace(probe, framework=("xframe_probe_framework2",)).import_framework()
        assert not gc.isenabled()
    finally:
        gc.enable()
