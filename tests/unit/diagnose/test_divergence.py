"""Divergence localisation against the real frameworks: torch, onnxruntime and onnx-tf/TensorFlow.

The conversion cases use ops onnx-tf was found (by experiment, tensorflow 2.21 / onnx-tf 1.10 /
onnxruntime 1.32) to compute differently from onnxruntime:

* Resize, linear, half_pixel, with a non-integer scale: onnxruntime maps coordinates with the
  given scale (1.7), tf.image.resize with the size ratio (8/5);
* Clip with min > max: onnxruntime returns max (min(max(x, lo), hi)), tf.clip_by_value min.
"""

from __future__ import annotations

import importlib.util
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_models import chain  # noqa: E402
from pytest_xframe.diagnose.divergence import DivergenceReport, NodeDivergence, attribute_step, locate_conversion_divergence, locate_export_divergence  # noqa: E402
from torch_models import Gated, Upsampler  # noqa: E402

helper, TensorProto = onnx.helper, onnx.TensorProto
ATOL, RTOL = 1e-4, 1e-4


def _export(model, args, opset=13, dynamo=False):
    if dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript (extra 'dynamo')")
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, f, input_names=["x"], output_names=["y"], opset_version=opset, dynamo=dynamo, verbose=False)
    return onnx.load_from_string(f.getvalue())


# ------------------------------------------------------------------------------- conversion


def _chain(lo: float, hi: float) -> onnx.ModelProto:
    return chain(lo, hi, width=6)


@pytest.fixture(scope="module")
def tf_available():
    pytest.importorskip("tensorflow")
    if importlib.util.find_spec("onnx_tf") is None:  # importing it needs our compatibility layer first
        pytest.skip("onnx-tf is not installed")


BETWEEN = ("onnxruntime", "tensorflow")


def _via_tensorflow(workdir, model_name):
    """The tensorflow backend's ``run_intermediates`` as the locator's ``run_converted``."""
    from pytest_xframe.backends import get

    run = get("tensorflow").run_intermediates
    return lambda model, feeds: run(model, feeds, workdir, model_name)


def test_conversion_divergence_names_the_resize_of_an_exported_cnn(tf_available, tmp_path):
    torch.manual_seed(0)
    model = Upsampler().eval()
    x = torch.randn(1, 2, 5, 5)
    proto = _export(model, (x,))
    resize = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert len(resize) == 1

    report = locate_conversion_divergence(proto, {"x": x.numpy()}, ATOL, RTOL, _via_tensorflow(tmp_path, "Upsampler"), BETWEEN)

    assert isinstance(report, DivergenceReport)
    assert report.between == ("onnxruntime", "tensorflow")
    assert report.step == "conversion"
    assert report.node is not None, report.format()
    assert (report.node.op_type, report.node.node_name) == ("Resize", resize[0].name)
    assert report.node.output == resize[0].output[0]
    assert report.node.output_shape == [1, 4, 8, 8]
    assert report.node.input_shapes[0] == [1, 4, 5, 5]
    assert not report.node.comparison.ok and report.node.comparison.mismatches > 0
    assert "could not be matched" not in report.note  # every intermediate was found in TensorFlow
    text = report.format()
    assert "Resize" in text and resize[0].name in text and "conversion" in text


def test_conversion_divergence_blames_the_clip_not_its_producers(tf_available, tmp_path):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    report = locate_conversion_divergence(_chain(lo=1.0, hi=-1.0), {"x": x}, ATOL, RTOL, _via_tensorflow(tmp_path, "chain"), BETWEEN)

    assert report.node is not None, report.format()
    assert (report.node.node_name, report.node.op_type) == ("clamp", "Clip")
    assert report.node.output == "clamped"
    assert report.node.input_shapes == [[2, 6], [], []]
    # onnxruntime gives hi (-1) everywhere, TensorFlow lo (1)
    assert report.node.comparison.worst_ref == pytest.approx(-1.0)
    assert report.node.comparison.worst_got == pytest.approx(1.0)
    assert report.node.comparison.mismatches == 12
    # scale and shift agree; clamp, squash and the output do not
    assert report.note.startswith("2 of 5 compared values within tolerance"), report.note


def test_conversion_without_divergence_reports_no_node(tf_available, tmp_path):
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    report = locate_conversion_divergence(_chain(lo=-1.0, hi=1.0), {"x": x}, ATOL, RTOL, _via_tensorflow(tmp_path, "chain"), BETWEEN)
    assert report.node is None
    assert report.step == "unknown"
    assert "all 5 compared values are within tolerance" in report.note
    assert "no single node" in report.format()


# ------------------------------------------------------------------------------- export


def _branchy():
    torch.manual_seed(0)
    model = Gated().eval()
    pos = torch.full((2, 4), 2.0)
    neg = torch.full((2, 4), -2.0)
    with torch.no_grad():  # make sure the two inputs take different branches
        model.inp[0].weight.copy_(torch.eye(8, 4))
        model.inp[0].bias.zero_()
        assert model.inp(pos).add(0.1).sum() > 0 and model.inp(neg).add(0.1).sum() < 0
    return model, pos, neg


def test_export_divergence_is_inside_the_module_with_the_frozen_branch():
    model, pos, neg = _branchy()
    proto = _export(model, (pos,))  # traced through branch A: relu(lin(h))
    assert any(n.name.startswith("/gate/lin/") for n in proto.graph.node)

    report = locate_export_divergence(model, proto, {"x": neg.numpy()}, ATOL, RTOL, positional=True)

    assert report.between == ("torch", "onnxruntime")
    assert report.step == "export"
    assert isinstance(report.node, NodeDivergence), report.format()
    assert report.node.node_name.startswith("/gate/"), report.format()
    assert (report.node.op_type, report.node.node_name) == ("Relu", "/gate/Relu")
    assert report.node.output_shape == [2, 8]
    assert "output of module 'gate'" in report.note
    assert "torch did not call" in report.note and "'gate.lin'" in report.note  # the branch not taken now
    # the module's input (built by inp and the root's + 0.5) still agreed
    assert not report.node.comparison.ok


def test_export_same_branch_and_keyword_call_finds_nothing():
    model, pos, _ = _branchy()
    proto = _export(model, (pos,))
    report = locate_export_divergence(model, proto, {"x": (pos * 0.5).numpy()}, ATOL, RTOL, positional=False)
    assert report.node is None, report.format()
    assert report.step == "unknown"
    assert "within tolerance" in report.note


class ConvBn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_export_batchnorm_folded_into_conv_is_not_blamed(dynamo):
    torch.manual_seed(1)
    model = ConvBn().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 2.0)
        model.bn.bias.uniform_(-1, 1)
    x = torch.randn(1, 2, 6, 6)
    proto = _export(model, (x,), opset=18 if dynamo else 13, dynamo=dynamo)
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)  # folded by the exporter

    report = locate_export_divergence(model, proto, {"x": x.numpy()}, ATOL, RTOL, positional=True)
    assert report.node is None, report.format()
    # said, not hidden: torchscript leaves the fused Conv in conv's scope, dynamo in bn's
    assert f"module {'conv' if dynamo else 'bn'!r}" in report.note and "no ONNX nodes of their own" in report.note

    with torch.no_grad():  # now break the conv after export: the fused node is blamed
        model.conv.weight[0, 0, 0, 0] += 1.0
    report = locate_export_divergence(model, proto, {"x": x.numpy()}, ATOL, RTOL, positional=True)
    assert report.node is not None and report.node.op_type == "Conv", report.format()


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.k = 2.0
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, h):
        return self.lin(h) * self.k  # a Python float: baked into the graph by either exporter


class Stack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(3, 4)
        self.scaled = Scaled()
        self.last = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.last(torch.tanh(self.scaled(self.first(x))))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_export_divergence_of_a_baked_python_constant(dynamo):
    torch.manual_seed(2)
    model = Stack().eval()
    x = torch.randn(2, 3)
    proto = _export(model, (x,), opset=18 if dynamo else 13, dynamo=dynamo)
    model.scaled.k = 3.0  # torch now differs from the exported graph, inside 'scaled' only

    report = locate_export_divergence(model, proto, {"x": x.numpy()}, ATOL, RTOL, positional=True)

    assert report.node is not None, report.format()
    assert report.node.op_type == "Mul"
    node = next(n for n in proto.graph.node if n.name == report.node.node_name)
    if dynamo:
        scopes = {p.key: p.value for p in node.metadata_props}["pkg.torch.onnx.name_scopes"]
        assert "'scaled'" in scopes and "'scaled.lin'" not in scopes
    else:
        assert report.node.node_name == "/scaled/Mul"
    assert "output of module 'scaled'" in report.note
    assert "this node is the first to diverge" in report.note
    assert "constant(s) fixed at export" in report.note


# ------------------------------------------------------------------------------- attribute_step


def _tol(dtype: str) -> tuple[float, float]:
    return (0.0, 0.0) if dtype.startswith("int") else (1e-4, 1e-4)


A = {"y": np.array([0.0, 2.0, 3.0], np.float32), "i": np.array([1, 2], np.int64)}
OFF = {"y": np.array([0.0, 2.5, 3.0], np.float32), "i": np.array([1, 2], np.int64)}
OFF_INT = {"y": A["y"], "i": np.array([1, 3], np.int64)}
NEAR = {"y": A["y"] + np.float32(7e-5), "i": A["i"]}  # within tolerance of A
FAR = {"y": A["y"] + np.float32(1.4e-4), "i": A["i"]}  # within tolerance of NEAR, not of A


@pytest.mark.parametrize(
    ("torch_out", "ort_out", "backend_out", "deployed", "expected"),
    [
        (A, OFF, OFF, None, "export"),
        (A, OFF_INT, OFF_INT, None, "export"),
        (A, OFF, None, None, "export"),
        (A, A, OFF, None, "conversion"),
        (A, A, OFF_INT, None, "conversion"),
        (A, NEAR, FAR, None, "runtime"),  # each step within tolerance, end to end not
        (A, A, A, OFF, "runtime"),  # the deployed runner differs from the converted model
        (A, OFF, A, None, "unknown"),  # both steps differ
        (A, A, A, None, "unknown"),  # nothing to attribute
        (A, A, None, None, "unknown"),
        (A, A, A, A, "unknown"),
    ],
)
def test_attribute_step(torch_out, ort_out, backend_out, deployed, expected):
    assert attribute_step(torch_out, ort_out, backend_out, _tol, deployed_out=deployed) == expected


def test_attribute_step_takes_a_tolerance_pair():
    assert attribute_step(A, OFF, OFF, (1.0, 0.0)) == "unknown"  # 0.5 apart is within atol 1
    assert attribute_step(A, OFF, OFF, (1e-3, 0.0)) == "export"
