"""The litert-torch backend: torch -> TFLite by litert-torch, without ONNX, run by LiteRT.

Real frameworks, no mocks; skipped, naming the extra, where litert-torch is not installed. The
15 architectures (MLP, CNN, int64 ids, dict outputs, RNNs, attention...) run in ``test_coverage.py``;
this file covers what is particular to this route. Models are tiny and most
inputs static (one conversion each); ``exporter="torchscript"`` because the ONNX export only keys
the conversion cache here and TorchScript exports faster than dynamo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_xframe import ConversionError, Dim, TensorSpec

torch = pytest.importorskip("torch")
nn = torch.nn
np = pytest.importorskip("numpy")


@pytest.fixture(autouse=True)
def _needs_litert_torch() -> None:
    from pytest_xframe import backends

    reason = backends.get("litert-torch").missing()
    if reason:
        pytest.skip(reason)


def _check(xframe, model, inputs, **options):
    options.setdefault("max_examples", 3)
    report = xframe.check(model.eval(), inputs=inputs, backends=["litert-torch"], exporter="torchscript", **options)
    return report["litert-torch"]


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))


def test_report_names_the_route_not_an_onnx_model(xframe) -> None:
    result = _check(xframe, Affine(), [TensorSpec((2, 6))])
    assert result.verdict == "passed" and result.max_abs < 1e-5
    assert result.onnx == "torch.export -> litert-torch"  # the report's onnx column: no ONNX ran


class ConvTanh(nn.Module):
    """Ops litert-torch lowers without its JAX bridge: they convert with a dynamic batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.tanh(self.conv(x))


def test_dynamic_batch_converts_once(xframe) -> None:
    result = _check(xframe, ConvTanh(), [TensorSpec((Dim("batch", 1, 4), 3, 6, 6))], max_examples=4)
    assert result.verdict == "passed" and result.max_abs < 1e-5
    assert result.onnx == "torch.export (dynamic batch) -> litert-torch"


class ManyOutputs(nn.Module):
    """Thirteen outputs: litert-torch names them z, a_0 .. a_11 and its signature sorts a_10 before a_2."""

    def forward(self, x):
        return {"z": x + 1.0, "a": tuple(x * float(i) - i for i in range(12))}


def test_outputs_are_matched_by_position_not_by_sorted_name(xframe) -> None:
    result = _check(xframe, ManyOutputs(), [TensorSpec((2, 3))], max_examples=2)
    assert result.verdict == "passed" and result.max_abs < 1e-5
    assert list(result.worst) == ["z"] + [f"a.{i}" for i in range(12)]


class CollidingNames(nn.Module):
    def forward(self, x):
        return {"b_c": x + 1.0, "b": {"c": x * 10.0}}


def test_colliding_output_names_are_a_conversion_error(xframe) -> None:
    with pytest.raises(ConversionError) as raised:
        _check(xframe, CollidingNames(), [TensorSpec((2, 3))])
    text = str(raised.value)
    assert "backend litert-torch" in text
    # both are named b_c; the signature keeps the second, so the first has no name to be read by
    assert "cause: outputs b_c have no signature name: litert-torch's names collide (b_c)" in text


class Bags(nn.Module):
    """nn.EmbeddingBag: exports to ONNX, but litert-torch has no lowering for it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bag = nn.EmbeddingBag(20, 4, mode="mean")

    def forward(self, ids):
        return self.bag(ids)


def test_unconvertible_op_is_a_conversion_error(xframe) -> None:
    with pytest.raises(ConversionError) as raised:
        _check(xframe, Bags(), [TensorSpec((2, 5), "int64", low=0, high=19)])
    error = raised.value
    assert error.op_type == "aten._embedding_bag.default"
    lines = str(error).splitlines()
    assert lines[0] == "litert-torch has no lowering for aten._embedding_bag.default (model Bags, backend litert-torch)"
    assert lines[1] == "  cause: RuntimeError: Lowering not found: aten._embedding_bag.default (converting at input shapes ids [2, 5])"
    assert lines[2].startswith("  try:   try the tflite backend")
    assert "Traceback" in error.details and "litert_torch" in error.details


class Tokens(nn.Module):
    """Float features and int64 ids in; a float and an int64 output out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(5, 7)
        self.emb = nn.Embedding(20, 7)

    def forward(self, x, ids):
        return {"z": torch.relu(self.fc(x)) + self.emb(ids).mean(1), "count": (ids > 3).sum(1)}


def _entries(cache: Path) -> int:
    return len(list(cache.glob("litert-torch/*/*/manifest.json")))


def test_conversions_are_cached_per_input_shape(tmp_path: Path) -> None:
    from pytest_xframe.backends import BuildContext, TorchSource, get
    from pytest_xframe.backends.litert_torch.runner import PerShapeRunner
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.export.to_onnx import export
    from pytest_xframe.inputs.spec import InputSlot

    model = Tokens().eval()
    batch = Dim("batch", 1, 6)
    slots = (InputSlot("x", TensorSpec((batch, 5))), InputSlot("ids", TensorSpec((batch, 4), "int64", low=0, high=19)))
    source = TorchSource(model, slots, positional=True)
    memo = SessionMemo(tmp_path, ArtifactCache(tmp_path / "cache"))
    artifact, _ = memo.export(("tokens",), lambda d: export(model, slots, ("z", "count"), exporter="torchscript", opset=17,
                                                              out_dir=d, model_name="tokens", positional=True))
    prepared, fresh, _ = memo.prepare(get("litert-torch"), artifact, "tokens", source)
    assert fresh and not prepared.cache_hit
    # Linear's bias add goes through litert-torch's JAX bridge, which needs static shapes
    assert prepared.route == "torch.export per input shape -> litert-torch (dynamic dims failed at aten.mul.Tensor)"
    runner = prepared.runner
    # converted in prepare at the smallest shape, the first one hypothesis tries
    assert isinstance(runner, PerShapeRunner) and list(runner.runners) == [((1, 5), (1, 4))]
    ((smallest, smallest_path),) = runner.runners.values()
    assert smallest.inputs["ids"][1] == np.int32  # int64 ids narrowed by litert-torch
    assert smallest_path == prepared.converted_path

    rng = np.random.default_rng(0)
    feeds = {b: {"x": rng.uniform(-1, 1, (b, 5)).astype(np.float32), "ids": rng.integers(0, 20, (b, 4))} for b in (1, 3)}
    for feed in feeds.values():
        got = runner.run(feed)
        with torch.no_grad():
            ref = model(torch.from_numpy(feed["x"]), torch.from_numpy(feed["ids"]))
        assert got["count"].dtype == np.int64 and np.array_equal(got["count"], ref["count"].numpy())
        np.testing.assert_allclose(got["z"], ref["z"].numpy(), atol=1e-5)
    assert len(runner.runners) == 2 and _entries(tmp_path / "cache") == 2
    # a failing case keeps the flatbuffer that ran its inputs, not the one converted first
    ran_3 = runner.converted_path_for(feeds[3])
    assert ran_3 != smallest_path and (ran_3 / "model.tflite").is_file()
    assert json.loads((ran_3 / "litert-torch.json").read_text())["shapes"] == {"x": [3, 5], "ids": [3, 4]}
    with pytest.raises(ValueError, match="outside int32"):
        runner.run({"x": feeds[1]["x"], "ids": np.full((1, 4), 2**40)})

    # a new session on the same cache reads every conversion back
    again = get("litert-torch").prepare(artifact, BuildContext("tokens", tmp_path, ArtifactCache(tmp_path / "cache"), source))
    assert again.cache_hit and again.route == prepared.route
    np.testing.assert_array_equal(again.runner.run(feeds[3])["z"], runner.run(feeds[3])["z"])
    assert _entries(tmp_path / "cache") == 2


def test_a_dim_without_a_size_above_one_is_converted_per_shape() -> None:
    from pytest_xframe.backends.litert_torch.runner import _dynamic_dims
    from pytest_xframe.inputs.spec import InputSlot

    dims, why = _dynamic_dims((InputSlot("x", TensorSpec((Dim("b", 0, 1), 3))),))
    assert dims == {} and why == "Dim 'b' ranges over [0, 1], sizes torch.export specializes"
    seq = Dim("seq", 1, 9)
    dims, why = _dynamic_dims((InputSlot("x", TensorSpec((Dim("one", 2, 2), seq))), InputSlot("y", TensorSpec((seq,)))))
    assert why is None and list(dims) == ["x", "y"] and list(dims["x"]) == [1]
    assert dims["x"][1] is dims["y"][0]  # one torch.export.Dim per name


