"""Each phase of the divergence searches on its own, against real torch and onnxruntime.

Graph utilities; the export search (run_ort_intermediates -> run_torch_hooked -> scope_graph ->
match_values -> compare_pairings -> pick_first_divergence); the conversion search (run_both ->
compare_intermediates -> first_conversion_divergence), with onnxruntime running an edited copy of
the model as the "converted" side. tests/unit/diagnose/test_divergence.py checks each search end to end.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_models import chain  # noqa: E402
from pytest_xframe.diagnose.divergence.conversion_locator import compare_intermediates, first_conversion_divergence, locate_conversion_divergence, run_both  # noqa: E402
from pytest_xframe.diagnose.divergence.export_locator import (  # noqa: E402
    Pairing,
    compare_pairings,
    locate_export_divergence,
    match_values,
    pick_first_divergence,
    run_ort_intermediates,
)
from pytest_xframe.diagnose.divergence.scopes import scope_graph  # noqa: E402
from pytest_xframe.diagnose.divergence.torch_run import run_torch_hooked  # noqa: E402
from pytest_xframe.export.onnx_graph import augment, shapes_of, topological_nodes  # noqa: E402

helper, TensorProto = onnx.helper, onnx.TensorProto
ATOL, RTOL = 1e-4, 1e-4


_chain = chain

X = np.array([[-1.0, 0.0, 0.1], [0.2, 0.5, 2.0]], np.float32)


def _chain_by_numpy(x: np.ndarray) -> dict[str, np.ndarray]:
    scaled = x * np.float32(1.5)
    shifted = scaled + np.float32(0.25)
    clamped = np.clip(shifted, -0.5, 0.5)
    squashed = np.tanh(clamped)
    return {"scaled": scaled, "shifted": shifted, "clamped": clamped, "squashed": squashed, "y": squashed * np.float32(1.5)}


class Twice(torch.nn.Module):
    """One Linear called twice around an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.act = torch.nn.ReLU(inplace=True)

    def forward(self, x):
        return self.lin(self.act(self.lin(x)))


class ConvBn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x))


def _torchscript(model: torch.nn.Module, x: torch.Tensor) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, input_names=["x"], output_names=["y"], opset_version=13, dynamo=False)
    return onnx.load_from_string(f.getvalue())


@pytest.fixture(scope="module")
def twice() -> tuple[torch.nn.Module, np.ndarray, onnx.ModelProto]:
    torch.manual_seed(0)
    model = Twice().eval()
    x = torch.randn(2, 4)
    return model, x.numpy(), _torchscript(model, x)


# ------------------------------------------------------------------------------- onnxruntime


def test_run_ort_intermediates_gives_every_value_and_the_feeds() -> None:
    model = _chain()
    values = run_ort_intermediates(model, {"x": X})
    want = _chain_by_numpy(X)
    assert set(values) == {"x", *want}
    for name, expected in want.items():
        np.testing.assert_allclose(values[name], expected, rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(values["x"], X)
    assert [o.name for o in model.graph.output] == ["y"]  # the caller's model is left alone


# ------------------------------------------------------------------------------- torch


def test_run_torch_hooked_records_each_call_in_and_out(twice) -> None:
    model, x, _ = twice
    run = run_torch_hooked(model, {"x": x}, positional=False)

    assert set(run.calls) == {"", "lin", "act"}
    assert len(run.calls["lin"]) == 2 and len(run.calls["act"]) == 1 and len(run.calls[""]) == 1
    with torch.no_grad():
        first = model.lin(torch.from_numpy(x))
        expected_out = model.lin(torch.relu(first))
    lin1, lin2 = run.calls["lin"]
    np.testing.assert_array_equal(lin1.inputs[0], x)
    np.testing.assert_allclose(lin1.outputs[0], first.numpy(), rtol=1e-6)
    np.testing.assert_allclose(lin2.outputs[0], expected_out.numpy(), rtol=1e-6)
    act = run.calls["act"][0]
    # the in-place ReLU's input is copied before it runs: its negatives are still there
    assert (act.inputs[0] < 0).any() and (act.outputs[0] >= 0).all()
    np.testing.assert_allclose(act.inputs[0], first.numpy(), rtol=1e-6)
    assert len(run.outputs) == 1
    np.testing.assert_allclose(run.outputs[0], expected_out.numpy(), rtol=1e-6)
    assert not model.lin._forward_hooks and not model.lin._forward_pre_hooks  # hooks removed


# ------------------------------------------------------------------------------- scopes


def test_scope_graph_reads_torchscript_scopes_per_call(twice) -> None:
    model, _, proto = twice
    scopes = scope_graph(proto.graph, model, {"": [None], "lin": [None, None], "act": [None]})

    assert scopes.unscoped == 0
    names = {key: [scopes.nodes[i].name for i in members] for key, members in scopes.members.items()}
    assert names == {("lin", 0): ["/lin/Gemm"], ("act", 0): ["/act/Relu"], ("lin", 1): ["/lin_1/Gemm"]}
    entering, leaving = scopes.boundary(scopes.members[("lin", 0)])
    assert entering == ["x"]  # weights are initializers, not inputs
    assert leaving == [scopes.nodes[scopes.members[("act", 0)][0]].input[0]]
    assert scopes.boundary(scopes.members[("lin", 1)])[1] == ["y"]  # a graph output leaves
    assert scopes.graph_outputs == ["y"] and "lin.weight" in scopes.initializers


def _dynamo_node(op: str, inputs: list[str], output: str, scopes: list[str]) -> onnx.NodeProto:
    node = helper.make_node(op, inputs, [output], name=f"node_{output}")
    prop = node.metadata_props.add()
    prop.key, prop.value = "pkg.torch.onnx.name_scopes", repr(scopes)
    return node


@pytest.mark.skipif(not hasattr(onnx.NodeProto(), "metadata_props"), reason="dynamo's name scopes live in node metadata_props (onnx >= 1.16)")
def test_scope_graph_shares_a_dynamo_scope_out_among_the_calls() -> None:
    """dynamo gives every call of a module one scope: the unconnected pieces are the calls."""
    model = Twice()
    nodes = [
        _dynamo_node("Relu", ["x"], "a", ["", "lin", "relu"]),
        _dynamo_node("Neg", ["a"], "b", ["", "lin", "neg"]),
        _dynamo_node("Sigmoid", ["b"], "c", ["", "act", "sigmoid"]),
        _dynamo_node("Relu", ["c"], "y", ["", "lin", "relu_1"]),
        _dynamo_node("Abs", ["y"], "z", ["", "nowhere", "abs"]),
    ]
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("x", "z")]
    graph = helper.make_graph(nodes, "g", info[:1], info[1:])

    scopes = scope_graph(graph, model, {"lin": [None, None], "act": [None]})
    assert scopes.members[("lin", 0)] == [0, 1] and scopes.members[("lin", 1)] == [3]
    assert scopes.members[("act", 0)] == [2]
    assert scopes.unscoped == 1  # 'nowhere' names no module

    three_calls = scope_graph(graph, model, {"lin": [None, None, None]})  # pieces do not line up
    assert three_calls.members[("lin", 0)] == [0, 1, 3] and ("lin", 1) not in three_calls.members


# ------------------------------------------------------------------------------- matching


def test_match_values_pairs_each_call_with_its_boundary_values(twice) -> None:
    model, x, proto = twice
    values = run_ort_intermediates(proto, {"x": x})
    run = run_torch_hooked(model, {"x": x}, positional=True)
    matching = match_values(run, scope_graph(proto.graph, model, run.calls), values)

    labels = {p.label: p.value for p in matching.pairings}
    assert labels["model output #0"] == "y"
    assert labels["input of module 'lin' (call 1)"] == "x"
    assert labels["output of module 'lin' (call 2)"] == "y"
    assert labels["output of module 'lin' (call 1)"] == labels["input of module 'act'"]
    assert matching.unmatched == matching.ambiguous == 0 and matching.no_nodes == []
    for p in matching.pairings:  # torch and onnxruntime agree on this model
        np.testing.assert_allclose(p.array, values[p.value], rtol=1e-5, atol=1e-6, err_msg=p.label)


def test_match_values_pairs_a_folded_module_with_its_neighbours_value() -> None:
    torch.manual_seed(1)
    model = ConvBn().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
    x = torch.randn(1, 2, 5, 5)
    proto = _torchscript(model, x)
    assert [n.op_type for n in proto.graph.node] == ["Conv"]  # BatchNorm folded into the Conv

    values = run_ort_intermediates(proto, {"x": x.numpy()})
    run = run_torch_hooked(model, {"x": x.numpy()}, positional=True)
    matching = match_values(run, scope_graph(proto.graph, model, run.calls), values)

    assert matching.no_nodes == ["module 'bn'"]
    labels = [p.label for p in matching.pairings if p.value == "y"]
    assert "output of module 'bn' (folded into this value's producer)" in labels
    assert "output of module 'conv'" in labels  # what the Conv's scope says: the unfused value


# ------------------------------------------------------------------------------- comparing


def test_compare_pairings_a_value_agrees_when_any_pairing_does() -> None:
    values = {"a": np.ones(3, np.float32), "b": np.zeros(2, np.float32)}
    pairings = [
        Pairing("a", "output of m", np.full(3, 2.0, np.float32)),
        Pairing("a", "output of m (fused)", np.ones(3, np.float32)),
        Pairing("b", "input of n", np.array([0.0, 1.0], np.float32)),
    ]
    verdicts = compare_pairings(pairings, values, ATOL, RTOL, equal_nan=True)

    assert list(verdicts.by_value) == ["a", "b"]
    assert [c.comparison.ok for c in verdicts.by_value["a"]] == [False, True]
    assert verdicts.ok == {"a": True, "b": False}
    assert verdicts.divergent == ["b"] and verdicts.agreeing == 1
    assert verdicts.by_value["b"][0].comparison.max_abs == pytest.approx(1.0)


# ------------------------------------------------------------------------------- first divergence


def _verdicts_on_chain(off: set[str], paired: set[str]):
    """Compare the chain's values with themselves, ``off`` ones shifted by 1."""
    model = _chain()
    values = run_ort_intermediates(model, {"x": X})
    pairings = [Pairing(v, f"at {v}", values[v] + np.float32(1.0 if v in off else 0.0)) for v in sorted(paired)]
    scopes = scope_graph(model.graph, torch.nn.Module(), {})
    return compare_pairings(pairings, values, ATOL, RTOL, equal_nan=True), scopes


def test_pick_first_divergence_blames_the_node_whose_inputs_agree() -> None:
    verdicts, scopes = _verdicts_on_chain(off={"clamped", "y"}, paired={"scaled", "shifted", "clamped", "y"})
    first = pick_first_divergence(verdicts, scopes)
    assert first.value == "clamped"
    assert scopes.nodes[first.node_index].name == "clamp"
    assert [scopes.nodes[i].name for i in first.region] == ["clamp"]


def test_pick_first_divergence_widens_the_region_over_values_not_compared() -> None:
    verdicts, scopes = _verdicts_on_chain(off={"clamped"}, paired={"scaled", "clamped"})
    first = pick_first_divergence(verdicts, scopes)
    # 'shifted' was not compared: its producer may be the cause as well; 'scaled' agrees
    assert [scopes.nodes[i].name for i in first.region] == ["shift", "clamp"]


def test_pick_first_divergence_of_a_graph_input_names_no_node() -> None:
    verdicts, scopes = _verdicts_on_chain(off={"x", "y"}, paired={"x", "y"})
    first = pick_first_divergence(verdicts, scopes)
    assert first.value == "x" and first.node_index is None and first.region == []


def test_export_search_reports_when_onnxruntime_cannot_run(twice) -> None:
    model, _, proto = twice
    report = locate_export_divergence(model, proto, {"x": np.zeros((2, 5), np.float32)}, ATOL, RTOL, positional=True)
    assert report.node is None and report.step == "unknown"
    assert report.note.startswith("onnxruntime could not run the model with its intermediates exposed")


# ------------------------------------------------------------------------------- graph utilities


def test_topological_nodes_orders_a_graph_stored_out_of_order() -> None:
    model = _chain()
    stored = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(stored))
    assert [n.name for n in topological_nodes(model.graph)] == ["scale", "shift", "clamp", "squash", "out"]


def test_augment_exposes_typed_intermediates_and_counts_the_rest() -> None:
    model = _chain()
    exposed = augment(model)
    assert exposed.names == ["scaled", "shifted", "clamped", "squashed"]
    assert [o.name for o in exposed.model.graph.output] == ["y", *exposed.names]
    assert exposed.skipped == 0 and exposed.remark == ""
    assert [o.name for o in model.graph.output] == ["y"]

    f = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [2])  # noqa: E731
    custom = helper.make_node("Mystery", ["x"], ["m"], domain="example.custom")  # no schema: no type
    graph = helper.make_graph([custom, helper.make_node("Relu", ["m"], ["y"])], "g", [f("x")], [f("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("example.custom", 1)])
    exposed = augment(model)
    assert exposed.names == [] and exposed.skipped == 1


def test_shapes_of_reads_values_then_initializers() -> None:
    model = _chain()
    values = run_ort_intermediates(model, {"x": X})
    nodes = {n.name: n for n in model.graph.node}
    assert shapes_of(nodes["scale"], values, model.graph) == [[2, 3], []]
    assert shapes_of(nodes["clamp"], values, model.graph) == [[2, 3], [], []]


# ------------------------------------------------------------------------------- conversion search


BETWEEN = ("onnxruntime", "edited onnxruntime")


def _edited(lo: float, hi: float, drop: tuple[str, ...] = ()):
    """A "converted" side that really runs: onnxruntime on the augmented model with the Clip
    bounds changed, returning every value but ``drop`` (as a converter that fuses them would)."""
    from pytest_xframe.export.onnx_graph import run_ort_unoptimized

    def run(model: onnx.ModelProto, feeds):
        edited = onnx.ModelProto()
        edited.CopyFrom(model)
        for init in edited.graph.initializer:
            if init.name in ("lo", "hi"):
                init.CopyFrom(helper.make_tensor(init.name, TensorProto.FLOAT, [], [lo if init.name == "lo" else hi]))
        values = run_ort_unoptimized(edited, feeds)
        return {k: v for k, v in values.items() if k not in drop}

    return run


def test_run_both_gives_each_side_by_onnx_name() -> None:
    runs = run_both(_chain(), {"x": X}, _edited(-0.25, 0.25), BETWEEN)
    assert runs.failure is None and runs.remarks == []
    assert runs.names == ["scaled", "shifted", "clamped", "squashed"]
    assert set(runs.ort) == set(runs.converted) == {"y", *runs.names}
    np.testing.assert_allclose(runs.ort["clamped"], _chain_by_numpy(X)["clamped"], rtol=1e-6)
    np.testing.assert_allclose(runs.converted["clamped"], np.clip(X * 1.5 + 0.25, -0.25, 0.25), rtol=1e-6)


def test_run_both_says_why_the_converted_side_failed() -> None:
    def unknown_op(model: onnx.ModelProto, feeds):
        from pytest_xframe.export.onnx_graph import run_ort_unoptimized

        broken = onnx.ModelProto()
        broken.CopyFrom(model)
        broken.graph.node[0].op_type = "NoSuchOp"
        return run_ort_unoptimized(broken, feeds)

    runs = run_both(_chain(), {"x": X}, unknown_op, BETWEEN)
    assert runs.failure is not None
    assert runs.failure.startswith("the model with its intermediates exposed failed in edited onnxruntime: ")
    assert "NoSuchOp" in runs.failure


def test_compare_intermediates_in_order_with_missing_values() -> None:
    runs = run_both(_chain(), {"x": X}, _edited(-0.25, 0.25, drop=("shifted",)), BETWEEN)
    found = compare_intermediates(runs, ["y"], ATOL, RTOL, equal_nan=True)
    assert list(found.status) == ["scaled", "clamped", "squashed", "y"]
    assert {k: c.ok for k, c in found.status.items()} == {"scaled": True, "clamped": False, "squashed": False, "y": False}
    assert found.missing == ["shifted"] and found.total == 5 and found.agreeing == 1


def test_first_conversion_divergence_is_the_node_whose_inputs_agree() -> None:
    model = _chain()
    runs = run_both(model, {"x": X}, _edited(-0.25, 0.25), BETWEEN)
    culprit = first_conversion_divergence(model.graph, {"x": X}, compare_intermediates(runs, ["y"], ATOL, RTOL, True).status)
    assert (culprit.node.name, culprit.output, culprit.unknown_inputs) == ("clamp", "clamped", [])

    runs = run_both(model, {"x": X}, _edited(-0.25, 0.25, drop=("shifted",)), BETWEEN)
    culprit = first_conversion_divergence(model.graph, {"x": X}, compare_intermediates(runs, ["y"], ATOL, RTOL, True).status)
    assert culprit.node.name == "clamp" and culprit.unknown_inputs == ["shifted"]

    runs = run_both(model, {"x": X}, _edited(-0.5, 0.5), BETWEEN)  # the same model: nothing to blame
    assert first_conversion_divergence(model.graph, {"x": X}, compare_intermediates(runs, ["y"], ATOL, RTOL, True).status) is None


def test_conversion_search_end_to_end_without_tensorflow() -> None:
    report = locate_conversion_divergence(_chain(), {"x": X}, ATOL, RTOL, _edited(-0.25, 0.25, drop=("shifted",)), BETWEEN)
    assert report.between == BETWEEN and report.step == "conversion"
    assert (report.node.node_name, report.node.output, report.node.output_shape) == ("clamp", "clamped", [2, 3])
    assert report.note == ("1 of 4 compared values within tolerance; input(s) 'shifted' of this node could not be "
                           "compared; the divergence may lie in their producers; 1 of 5 intermediates could not be "
                           "matched (fused/renamed by the converter): 'shifted'")
