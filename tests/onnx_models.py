"""Hand-made ONNX models of pytest-xframe's own tests, defined once (torch models: torch_models.py)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def chain(lo: float = -0.5, hi: float = 0.5, width: int = 3) -> onnx.ModelProto:
    """x -> scale (Mul k) -> shift (Add b) -> clamp (Clip lo hi) -> squash (Tanh) -> out (Mul k),
    on a [2, width] float input: five named nodes, one value each, for the divergence searches."""

    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, width])

    def scalar(name: str, number: float) -> onnx.TensorProto:
        return helper.make_tensor(name, TensorProto.FLOAT, [], [number])

    nodes = [
        helper.make_node("Mul", ["x", "k"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "b"], ["shifted"], name="shift"),
        helper.make_node("Clip", ["shifted", "lo", "hi"], ["clamped"], name="clamp"),
        helper.make_node("Tanh", ["clamped"], ["squashed"], name="squash"),
        helper.make_node("Mul", ["squashed", "k"], ["y"], name="out"),
    ]
    initializers = [scalar("k", 1.5), scalar("b", 0.25), scalar("lo", lo), scalar("hi", hi)]
    graph = helper.make_graph(nodes, "chain", [value("x")], [value("y")], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model
