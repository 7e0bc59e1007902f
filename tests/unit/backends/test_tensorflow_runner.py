"""The TensorFlow runner: a SavedModel loaded once, called through one concrete signature."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_saved_model_signature_is_reused_without_retracing(frameworks: None, tmp_path: Path) -> None:
    import tensorflow as tf
    import torch

    from pytest_xframe import Dim, TensorSpec
    from pytest_xframe.backends import BuildContext, get
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.export.to_onnx import export
    from pytest_xframe.inputs.spec import InputSlot

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh()).eval()
    slots = (InputSlot("x", TensorSpec((Dim("batch", 1, 6), 5))),)
    memo = SessionMemo(tmp_path, ArtifactCache(tmp_path / "cache"))
    artifact, _ = memo.export(("mlp",), lambda d: export(model, slots, ("output",), exporter="torchscript", opset=13, out_dir=d,
                                                          model_name="mlp", positional=True))
    prepared, fresh, _ = memo.prepare(get("tensorflow"), artifact, "mlp")
    again, fresh_again, import_again = memo.prepare(get("tensorflow"), artifact, "mlp")
    assert fresh and not fresh_again and again is prepared and import_again == 0  # one runner per session
    function = prepared.runner.function
    assert isinstance(function, tf.types.experimental.ConcreteFunction)  # a signature cannot retrace
    owner = function._xframe_owner
    tracing_count = owner.__call__.experimental_get_tracing_count
    traced_before = tracing_count()
    for batch in (1, 3, 6, 2, 6):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, 5)).astype(np.float32)
        got = prepared.runner.run({"x": x})["output"]
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).detach().numpy(), atol=1e-6)
    assert tracing_count() == traced_before
    # a new session (new memo, same disk cache) reads the conversion back instead of converting
    assert get("tensorflow").prepare(artifact, BuildContext("mlp", tmp_path, ArtifactCache(tmp_path / "cache"))).cache_hit
