"""The exported ONNX model as a graph, and ONNX Runtime as the reference implementation of its meaning.

What diagnosis and the layer reports share: topological order, a model with every intermediate
exposed as an output, constants and shapes, and ONNX Runtime sessions (``ort_session``,
``run_onnx``, ``run_ort_unoptimized``) that say what the ONNX model computes. The onnxruntime
backend builds its sessions here too, so the reference and the backend run one configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Augmented",
    "augment",
    "constant_names",
    "fill_output_ranks",
    "load_model",
    "ort_session",
    "run_onnx",
    "run_ort_unoptimized",
    "shapes_of",
    "topological_nodes",
]


def load_model(onnx_model: Any) -> Any:
    """An ``onnx.ModelProto`` from a ModelProto, serialized bytes or a path."""
    import onnx

    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model
    return onnx.load_from_string(onnx_model) if isinstance(onnx_model, bytes) else onnx.load(str(onnx_model))


def topological_nodes(graph: Any) -> list[Any]:
    """Nodes of ``graph`` in a topological order (stable: the stored order when it is one)."""
    produced_by: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out:
                produced_by[out] = i
    deps = [{produced_by[v] for v in node.input if v in produced_by and produced_by[v] != i} for i, node in enumerate(graph.node)]
    done: list[bool] = [False] * len(deps)
    order: list[int] = []
    progress = True
    while progress and len(order) < len(deps):
        progress = False
        for i in range(len(deps)):
            if not done[i] and all(done[d] for d in deps[i]):
                done[i] = True
                order.append(i)
                progress = True
    order += [i for i in range(len(deps)) if not done[i]]  # a cycle: keep the rest as stored
    return [graph.node[i] for i in order]


@dataclass(frozen=True)
class Augmented:
    """A copy of a model whose every typed tensor intermediate is also a graph output."""

    model: Any
    #: the intermediates exposed, in topological order
    names: list[str]
    #: how many intermediates were left out for an unknown or non-tensor type
    skipped: int
    #: why fewer were typed than usual (shape inference failed), or ""
    remark: str


def augment(model: Any) -> Augmented:
    """``model`` with every typed tensor intermediate exposed as a graph output (``model`` is left alone)."""
    import onnx
    import onnx.shape_inference

    remark = ""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - inference fails on some custom ops / big models
        inferred, remark = model, f"shape inference failed ({type(exc).__name__}); only typed values were exposed"
    types: dict[str, Any] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        types.setdefault(vi.name, vi.type)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    existing = {o.name for o in out.graph.output}
    names: list[str] = []
    skipped = 0
    for node in topological_nodes(model.graph):
        for name in node.output:
            if not name or name in existing:
                continue
            existing.add(name)
            t = types.get(name)
            if t is None or t.WhichOneof("value") != "tensor_type" or t.tensor_type.elem_type == 0:
                skipped += 1
                continue
            vi = out.graph.output.add()
            vi.name = name
            vi.type.tensor_type.elem_type = t.tensor_type.elem_type
            if t.tensor_type.HasField("shape"):
                vi.type.tensor_type.shape.CopyFrom(t.tensor_type.shape)
            names.append(name)
    return Augmented(out, names, skipped, remark)


def fill_output_ranks(model: Any, values: Mapping[str, np.ndarray]) -> None:
    """Give outputs without a shape one of unknown dims, of the rank onnxruntime produced.

    onnx-tf runs the ONNX checker, which wants a shape on every graph output.
    """
    for vi in model.graph.output:
        tensor = vi.type.tensor_type
        if not tensor.HasField("shape") and vi.name in values:
            shape = tensor.shape
            for _ in range(np.ndim(values[vi.name])):
                shape.dim.add()


def ort_session(model: str | bytes, threads: int | None = None, optimized: bool = True) -> Any:
    """An ONNX Runtime session on the CPU provider for ``model`` (a path or serialized bytes).

    ``threads`` sizes its pools (per session: nothing global changes; None lets ORT decide);
    ``optimized=False`` turns graph optimizations off, so every node computes what ONNX says."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # torch and TensorFlow run between our calls: idle ORT threads spinning would steal their CPU
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(model: Any, feeds: Mapping[str, np.ndarray], optimized: bool = True) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` (a path, bytes or ModelProto) by ONNX Runtime; inputs the
    graph does not declare are left out of the feed (exporters drop unused inputs)."""
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    session = ort_session(model if isinstance(model, bytes) else str(model), optimized=optimized)
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {i.name: np.asarray(feeds[i.name]) for i in session.get_inputs()})
    return {n: np.asarray(v) for n, v in zip(names, values)}


def run_ort_unoptimized(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` computed by onnxruntime (CPU) with graph optimizations off."""
    return run_onnx(model, feeds, optimized=False)


def constant_names(graph: Any, feeds: Mapping[str, Any]) -> set[str]:
    """Values that count as equal on both sides: graph inputs and initializers."""
    return {i.name for i in graph.input} | {i.name for i in graph.initializer} | set(feeds)


def shapes_of(node: Any, values: Mapping[str, np.ndarray], graph: Any) -> list[list[int]]:
    inits = {i.name: list(i.dims) for i in graph.initializer}
    shapes = []
    for name in node.input:
        if not name:
            continue
        if name in values:
            shapes.append([int(d) for d in np.shape(values[name])])
        elif name in inits:
            shapes.append([int(d) for d in inits[name]])
        else:
            shapes.append([])
    return shapes
