"""Reduced-precision and quantized targets, function by function: calibration samples, int8 I/O, missing extras."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_xframe import backends
from pytest_xframe.errors import SpecError
from suite_helpers import skip_unless_backends, skip_unless_imports

TARGETS = ("tflite-fp16", "tflite-int8", "tflite-int8-full", "onnxruntime-int8")


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([{"ids": np.arange(3), "x": np.zeros((2, 3)), "y": 1}], "calibration sample 0 names input(s) 'y' the model does not take"),
        ([(np.arange(3),)], "calibration sample 0 has 1 value(s), the model takes 2 input(s)"),
        ([{"x": np.zeros((2, 3))}], "calibration sample 0 lacks input(s) 'ids'"),
        ([(np.zeros(3), np.zeros((2, 3)))], "calibration sample 0, input 'ids' has dtype float64, the input is int64"),
        ([(np.arange(5), np.zeros((2, 3)))], "calibration sample 0, input 'ids' has shape [5], the input is declared int64[seq[2..4]]"),
        ([(np.arange(3), "abc")], "calibration sample 0, input 'x' is a str, not a numeric array"),
        ([], "calibration= holds no samples"),
    ],
)
def test_user_samples_are_checked_against_the_spec(samples: list, message: str) -> None:
    from pytest_xframe.inputs.calibration import from_user

    with pytest.raises(SpecError) as info:
        from_user(samples, _slots(), "M")
    assert message in str(info.value) and "M" in str(info.value)


def test_spec_samples_follow_their_own_seed() -> None:
    from pytest_xframe.inputs.calibration import from_spec

    a, b, c = from_spec(_slots(), 5, 0), from_spec(_slots(), 5, 0), from_spec(_slots(), 5, 1)
    assert a.digest == b.digest != c.digest
    assert len(a.samples) == 5 and a.samples[0]["ids"].shape == (4,) and a.samples[0]["x"].dtype == np.float32
    assert all(0 <= s["ids"].min() and s["ids"].max() <= 9 for s in a.samples)


def test_int8_io_quantizes_feeds_and_dequantizes_outputs(tmp_path: Path) -> None:
    """With int8_io the flatbuffer's float input and output are int8; the runner still takes and
    returns float, and agrees with the float-I/O flatbuffer to within one output quantization step."""
    skip_unless_backends("tflite-int8-full")
    import torch
    from torch import nn

    from pytest_xframe import Dim, TensorSpec
    from pytest_xframe.backends.tensorflow.onnx_tf_compat import install
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.export.to_onnx import export
    from pytest_xframe.inputs import calibration
    from pytest_xframe.inputs.spec import bind_inputs

    install()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
    slots = bind_inputs(model, [TensorSpec((Dim("batch", 1, 3), 16))], "Lin")
    artifact = export(model, slots, ("out",), exporter="dynamo", opset=None, out_dir=tmp_path / "e", model_name="Lin", positional=True)
    samples = calibration.from_spec(slots, 8, 0)
    backend = backends.get("tflite-int8-full")
    cache = ArtifactCache(tmp_path / "cache")
    runners = {
        io: backend.prepare(artifact, backends.BuildContext("Lin", tmp_path, cache, calibration=samples, int8_io=io)).runner
        for io in (False, True)
    }
    int8 = runners[True]
    assert {np.dtype(d["dtype"]) for d in int8.inner.signature.get_input_details().values()} == {np.dtype(np.int8)}
    assert {np.dtype(d["dtype"]) for d in int8.inner.signature.get_output_details().values()} == {np.dtype(np.int8)}
    feeds = {"input": np.random.default_rng(0).uniform(-1, 1, (3, 16)).astype(np.float32)}
    got, ref = int8.run(feeds)["out"], runners[False].run(feeds)["out"]
    expected = model(torch.from_numpy(feeds["input"])).detach().numpy()
    (scale, _), = (d["quantization"] for d in int8.inner.signature.get_output_details().values())
    assert got.dtype == np.float32 and got.shape == (3, 4)
    assert np.abs(got - ref).max() <= scale * 1.01
    assert np.abs(got - expected).max() < 0.05


def test_missing_packages_name_each_targets_extra() -> None:
    for name in TARGETS:
        backend = backends.get(name)
        assert backend.extra == name
        fake = replace(backend, modules=("no_such_module_xframe",))
        assert fake.missing() == f"{name} backend needs no_such_module_xframe: pip install 'pytest-xframe[{name}]'"
    assert {backends.get(t).precision for t in TARGETS} == {"fp16", "int8"}
    assert all(backends.get(t).layer_report is not None and backends.get(t).load_case is not None for t in TARGETS)


def _slots():
    from pytest_xframe import Dim, TensorSpec
    from pytest_xframe.inputs.spec import InputSlot

    return (
        InputSlot("ids", TensorSpec((Dim("seq", 2, 4),), "int64", low=0, high=9)),
        InputSlot("x", TensorSpec((2, 3))),
    )


def test_an_ort_model_of_transposed_convolutions_quantizes_nothing_dynamically(tmp_path) -> None:
    """onnxruntime's dynamic quantizer has no ConvTranspose kernel, and a graph without a Conv is
    quantized dynamically: the model keeps its weights in float, and the count says why."""
    onnx = pytest.importorskip("onnx")
    skip_unless_imports("onnxruntime.quantization", "the dynamic quantizer")
    from onnx import TensorProto, helper, numpy_helper

    from pytest_xframe.backends import Prepared
    from pytest_xframe.backends.onnxruntime.int8 import QUANTIZED_NAME, mode, quantization_count
    from pytest_xframe.export.to_onnx import OnnxArtifact

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 8, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])],
        [weight],
    )
    source = tmp_path / "model.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, source)
    assert mode(model) == "dynamic"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(tmp_path / QUANTIZED_NAME), weight_type=QuantType.QInt8)
    artifact = OnnxArtifact(path=source, exporter="torchscript", opset=17, input_names=("x",), output_names=("y",), seconds=0.0)
    count = quantization_count(Prepared(None, 0.0, 0.0, converted_path=tmp_path), artifact)
    assert (count.quantized, count.total, count.total_bytes) == (0, 1, 8 * 8 * 3 * 3 * 4)
    assert count.reason == "its weights feed ConvTranspose, which onnxruntime.quantization (dynamic) leaves in float"
