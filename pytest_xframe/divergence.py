"""Where two frameworks first part ways: the first ONNX node out of tolerance whose inputs agree.

Three entry points:

* :func:`locate_conversion_divergence` (onnxruntime vs a backend). Every intermediate value of the
  ONNX model becomes a graph output; the augmented model runs in onnxruntime with graph
  optimizations off (so nothing is fused) and through the backend's ``run_intermediates`` (onnx-tf:
  converted into a SavedModel that returns the same values). Nodes are then walked in topological order; the first node with
  an output out of tolerance whose tensor inputs are all within it (graph inputs and initializers
  count as equal) is reported.

* :func:`locate_export_divergence` (torch vs onnxruntime). ``torch.onnx.verification`` in torch
  2.13 only offers ``verify_onnx_program(..., compare_intermediates=True)``, which needs the
  dynamo ``ONNXProgram`` object (not a stored ``ModelProto``) and compares against the
  *exported* FX graph, so it cannot see what the exporter froze (a data-dependent branch,
  a Python scalar); the torchscript exporter has no such facility any more. So this module does
  the equivalent by hand: forward hooks on every submodule capture the tensors each call takes and
  returns; each ONNX node's torch module scope is read from its name (torchscript:
  ``/layer1/layer1.0/conv/Conv``) or from its ``pkg.torch.onnx.name_scopes`` metadata (dynamo);
  the values crossing a module's scope boundary are matched to the hooked tensors by shape and
  dtype, and compared with the intermediate values onnxruntime computes.

  Limits (said in the report's note where they apply): only values at module boundaries can be
  compared, so when the first divergent value is produced by several nodes since the last values
  that agree, the report names the node producing the divergent value and lists the others as
  candidates; functional code in one ``forward`` is not split further. Constants baked in by the
  exporter (initializers, Constant nodes) count as equal, as graph inputs do: a Python scalar
  that changed since export shows up at the node reading it. A module called several times is
  matched call by call through torchscript's ``name_1``, ``name_2`` scope suffixes, or (dynamo,
  one scope for all calls) when its nodes fall into as many unconnected pieces as there were
  calls. Tensors whose shape/dtype fit several boundary values ambiguously are skipped, not
  guessed. A module the exporter fused into a neighbour (Conv + BatchNorm) has no nodes of its
  own; the value next to it is paired with both its input and its output tensor, and a value
  that matches *any* of its pairings counts as within tolerance. Modules with ONNX nodes that
  torch did not call for this input (the other side of a frozen branch) are named in the note.
  Subgraphs (If/Loop bodies) are not looked into, by either locator.

* :func:`attribute_step`: which step (export, conversion, runtime) a final mismatch belongs to,
  from the outputs of torch, onnxruntime and the backend.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .compare import OutputComparison, compare_all, compare_output, format_comparison
from .errors import describe_exception

__all__ = [
    "DivergenceReport",
    "NodeDivergence",
    "attribute_step",
    "locate_conversion_divergence",
    "locate_export_divergence",
]

STEPS = ("export", "conversion", "runtime", "unknown")
_MAX_LISTED = 6


@dataclass(frozen=True)
class NodeDivergence:
    """The first node out of tolerance whose inputs are all within it."""

    op_type: str
    node_name: str
    output: str
    input_shapes: list[list[int]]
    output_shape: list[int]
    #: at ``output``: reference = the first framework of the report's ``between``
    comparison: OutputComparison

    def format(self) -> str:
        return (
            f"{self.op_type} node {self.node_name!r} (inputs {self.input_shapes} -> output {self.output!r} {self.output_shape})\n"
            + _indent(format_comparison(self.comparison), "  ")
        )


@dataclass(frozen=True)
class DivergenceReport:
    between: tuple[str, str]
    node: NodeDivergence | None
    #: "export", "conversion", "runtime" or "unknown"
    step: str
    note: str

    def format(self) -> str:
        a, b = self.between
        lines = [f"first divergence {a} vs {b} (step: {self.step}):"]
        if self.node is None:
            lines.append("  no single node could be blamed")
        else:
            lines.append(_indent(self.node.format(), "  "))
        if self.note:
            lines.append(_indent(self.note, "  note: ", "        "))
        return "\n".join(lines)


def _indent(text: str, first: str, rest: str | None = None) -> str:
    rest = first if rest is None else rest
    return "\n".join((first if i == 0 else rest) + line for i, line in enumerate(text.splitlines()))


# --------------------------------------------------------------------------------------------
# ONNX helpers
# --------------------------------------------------------------------------------------------


def _topological_nodes(graph: Any) -> list[Any]:
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


def _augment(model: Any) -> tuple[Any, list[str], int, str]:
    """A copy of ``model`` whose every typed tensor intermediate is also a graph output.

    Returns (augmented model, intermediate names in topological order, how many were skipped for an
    unknown or non-tensor type, a remark when shape inference failed).
    """
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
    for node in _topological_nodes(model.graph):
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
    return out, names, skipped, remark


def _fill_output_ranks(model: Any, values: Mapping[str, np.ndarray]) -> None:
    """Give outputs without a shape one of unknown dims, of the rank onnxruntime produced.

    onnx-tf runs the ONNX checker, which wants a shape on every graph output.
    """
    for vi in model.graph.output:
        tensor = vi.type.tensor_type
        if not tensor.HasField("shape") and vi.name in values:
            shape = tensor.shape
            for _ in range(np.ndim(values[vi.name])):
                shape.dim.add()


def _run_ort_unoptimized(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` computed by onnxruntime (CPU) with graph optimizations off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {i.name: np.asarray(feeds[i.name]) for i in session.get_inputs()})
    return {n: np.asarray(v) for n, v in zip(names, values)}


def _constant_names(graph: Any, feeds: Mapping[str, Any]) -> set[str]:
    """Values that count as equal on both sides: graph inputs and initializers."""
    return {i.name for i in graph.input} | {i.name for i in graph.initializer} | set(feeds)


def _shapes_of(node: Any, values: Mapping[str, np.ndarray], graph: Any) -> list[list[int]]:
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


def _names(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _compare(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, equal_nan: bool) -> OutputComparison:
    ref, got = np.asarray(ref), np.asarray(got)
    # a converter may widen or narrow an integer type (int32 for int64): compare the values
    if ref.dtype != got.dtype and ref.dtype.kind in "iub" and got.dtype.kind in "iub" and ref.shape == got.shape:
        got = got.astype(ref.dtype)
    return compare_output(name, ref, got, atol, rtol, equal_nan)


# --------------------------------------------------------------------------------------------
# onnxruntime vs a converted backend
# --------------------------------------------------------------------------------------------


def locate_conversion_divergence(
    onnx_model: Any,
    feeds: Mapping[str, np.ndarray],
    atol: float,
    rtol: float,
    run_converted: Callable[[Any, Mapping[str, np.ndarray]], dict[str, np.ndarray]],
    between: tuple[str, str],
    *,
    equal_nan: bool = True,
) -> DivergenceReport:
    """First node whose converted output leaves tolerance of onnxruntime's, inputs agreeing.

    ``onnx_model`` is an ``onnx.ModelProto`` (a path or bytes are loaded); ``feeds`` are keyed by
    ONNX input name; ``run_converted(model, feeds)`` converts and runs the model with every
    intermediate exposed as an output and returns them by ONNX name (a backend's
    ``run_intermediates``); ``between`` names the two sides, onnxruntime first.
    NaN at the same place on both sides counts as equal unless ``equal_nan`` is False: the point
    is where the backends part ways, not whether the model makes NaNs.
    """
    import onnx

    from .errors import XframeError

    if not isinstance(onnx_model, onnx.ModelProto):
        onnx_model = onnx.load_from_string(onnx_model) if isinstance(onnx_model, bytes) else onnx.load(str(onnx_model))
    augmented, names, skipped, remark = _augment(onnx_model)
    graph = onnx_model.graph
    remarks = [remark] if remark else []
    if skipped:
        remarks.append(f"{skipped} intermediate(s) of unknown or non-tensor type were not compared")

    try:
        ort_values = _run_ort_unoptimized(augmented, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        return DivergenceReport(between, None, "unknown", f"onnxruntime could not run the model with its intermediates exposed: {describe_exception(exc)}")
    _fill_output_ranks(augmented, ort_values)
    try:
        converted_values = run_converted(augmented, feeds)
    except XframeError as exc:
        return DivergenceReport(
            between, None, "unknown",
            "; ".join([f"the model with its intermediates exposed could not be converted/run in {between[1]}: {exc.summary}"
                       + (f" ({exc.cause})" if exc.cause else "")] + remarks),
        )
    except Exception as exc:  # noqa: BLE001 - frameworks raise many unrelated types
        return DivergenceReport(
            between, None, "unknown",
            "; ".join([f"the model with its intermediates exposed failed in {between[1]}: {describe_exception(exc)}"] + remarks),
        )

    status: dict[str, OutputComparison] = {}
    missing: list[str] = []
    compared_names = list(names) + [o.name for o in graph.output if o.name not in names]
    for name in compared_names:
        if name in ort_values and name in converted_values:
            status[name] = _compare(name, ort_values[name], converted_values[name], atol, rtol, equal_nan)
        else:
            missing.append(name)
    if missing:
        remarks.insert(0, f"{len(missing)} of {len(compared_names)} intermediates could not be matched "
                          f"(fused/renamed by the converter): {_names(missing)}")
    if not status:
        return DivergenceReport(between, None, "unknown", "; ".join([f"no intermediate value could be matched between {between[0]} and {between[1]}"] + remarks))

    equal = _constant_names(graph, feeds)
    for node in _topological_nodes(graph):
        bad = [o for o in node.output if o in status and not status[o].ok]
        if not bad:
            continue
        inputs = [i for i in node.input if i and i not in equal]
        if any(i in status and not status[i].ok for i in inputs):
            continue  # downstream of an earlier divergence (only reachable with odd graphs)
        unknown = [i for i in inputs if i not in status]
        if unknown:
            remarks.insert(0, f"input(s) {_names(unknown)} of this node could not be compared; the divergence may lie in their producers")
        worst = max(bad, key=lambda o: (status[o].problem is not None, status[o].tolerance_ratio))
        found = NodeDivergence(
            op_type=node.op_type,
            node_name=node.name,
            output=worst,
            input_shapes=_shapes_of(node, ort_values, graph),
            output_shape=[int(d) for d in np.shape(ort_values[worst])],
            comparison=status[worst],
        )
        remarks.insert(0, f"{sum(1 for c in status.values() if c.ok)} of {len(status)} compared values within tolerance")
        return DivergenceReport(between, found, "conversion", "; ".join(remarks))
    return DivergenceReport(
        between, None, "unknown",
        "; ".join([f"all {len(status)} compared values are within tolerance (atol={atol:g}, rtol={rtol:g}) for this input"] + remarks),
    )


# --------------------------------------------------------------------------------------------
# torch vs onnxruntime
# --------------------------------------------------------------------------------------------


@dataclass
class _Point:
    """One ONNX value compared with one hooked torch tensor."""

    value: str
    label: str
    comparison: OutputComparison
    array: np.ndarray


_CALL_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def _unqualified(qualified: str) -> str:
    """What the torchscript exporter writes for a module in a scope: ``a.b.0`` -> ``b.0``."""
    atoms = qualified.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return qualified


class _ScopeResolver:
    """ONNX node -> chain of (module qualified name, call index), outermost first; None if unknown."""

    def __init__(self, torch_model: Any) -> None:
        self.children: dict[str, dict[str, str]] = {}
        self.modules = dict(torch_model.named_modules())
        for qname, module in self.modules.items():
            self.children[qname] = {
                _unqualified(f"{qname}.{child}" if qname else child): f"{qname}.{child}" if qname else child
                for child, _ in module.named_children()
            }

    def __call__(self, node: Any) -> list[tuple[str, int]] | None:
        # NodeProto.metadata_props is onnx >= 1.16 (IR 10); an older onnx cannot carry dynamo's
        # scope metadata, so only the torchscript node names are there to read.
        for prop in getattr(node, "metadata_props", ()):
            if prop.key == "pkg.torch.onnx.name_scopes":
                return self._dynamo(prop.value)
        if node.name.startswith("/"):
            return self._torchscript(node.name.split("/")[1:-1])
        return None

    def _split_call(self, name: str, known: Callable[[str], bool]) -> tuple[str, int] | None:
        if known(name):
            return name, 0
        match = _CALL_SUFFIX.match(name)
        if match and known(match.group(1)):
            return match.group(1), int(match.group(2))
        return None

    def _dynamo(self, text: str) -> list[tuple[str, int]] | None:
        try:
            scopes = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        if not isinstance(scopes, list) or not scopes:
            return None
        chain = [("", 0)]
        for scope in scopes[1:-1]:  # '' is the root, the last one is the FX node
            found = self._split_call(str(scope), lambda s: s in self.modules)
            if found is None:
                return None
            chain.append(found)
        return chain

    def _torchscript(self, segments: list[str]) -> list[tuple[str, int]] | None:
        chain = [("", 0)]
        current = ""
        for segment in segments:
            children = self.children.get(current, {})
            found = self._split_call(segment, lambda s: s in children)
            if found is None:
                return None
            current = children[found[0]]
            chain.append((current, found[1]))
        return chain


def _tensor_leaves(obj: Any, torch: Any) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in _tensor_leaves(v, torch)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensor_leaves(v, torch)]
    return []


def _to_numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().clone().numpy()


def _run_torch_hooked(torch_model: Any, feeds: Mapping[str, np.ndarray], positional: bool) -> tuple[dict[str, list[tuple[list[np.ndarray], list[np.ndarray]]]], list[np.ndarray]]:
    """Per module, per call: (tensor inputs, tensor outputs) as numpy copies; plus the model's outputs."""
    import torch

    calls: dict[str, list[tuple[list[np.ndarray], list[np.ndarray]]]] = {}
    handles = []

    def hook(qname: str):
        def capture(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            outputs.setdefault(qname, []).append([_to_numpy(t) for t in _tensor_leaves(output, torch)])
        return capture

    def pre_hook(qname: str):
        def capture(module: Any, args: Any, kwargs: Any) -> None:
            # copied before forward runs, in case forward changes them in place
            inputs.setdefault(qname, []).append([_to_numpy(t) for t in _tensor_leaves(list(args) + list(kwargs.values()), torch)])
        return capture

    inputs: dict[str, list[list[np.ndarray]]] = {}
    outputs: dict[str, list[list[np.ndarray]]] = {}
    for qname, module in torch_model.named_modules():
        handles.append(module.register_forward_pre_hook(pre_hook(qname), with_kwargs=True))
        handles.append(module.register_forward_hook(hook(qname), with_kwargs=True))
    from .export import model_device

    device = model_device(torch_model)
    tensors = {k: torch.from_numpy(np.array(v, copy=True)).to(device) for k, v in feeds.items()}
    try:
        with torch.no_grad():
            out = torch_model(*tensors.values()) if positional else torch_model(**tensors)
    finally:
        for handle in handles:
            handle.remove()
    # calls of one module start and finish in the same order unless it recurses into itself
    for qname, outs in outputs.items():
        ins = inputs.get(qname, [])
        calls[qname] = [(ins[i] if i < len(ins) else [], o) for i, o in enumerate(outs)]
    return calls, [_to_numpy(t) for t in _tensor_leaves(out, torch)]


def _split_repeated_calls(members: dict[tuple[str, int], list[int]], calls: Mapping[str, list[Any]], nodes: list[Any]) -> None:
    """Share a module's nodes out among its calls when the scope names do not number them.

    The dynamo exporter gives every call of a module the same scope; the nodes of separate calls
    form separate connected pieces, assigned to the calls in topological order. When the pieces
    do not line up with the calls, all stay with the first call (and will not match: ambiguous).
    """
    for qname, per_call in calls.items():
        if len(per_call) < 2 or (qname, 0) not in members or any((qname, k) in members for k in range(1, len(per_call))):
            continue
        inside = members[(qname, 0)]
        parent = {i: i for i in inside}

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        producer = {v: i for i in inside for v in nodes[i].output if v}
        for i in inside:
            for v in nodes[i].input:
                if v in producer:
                    parent[root(i)] = root(producer[v])
        pieces: dict[int, list[int]] = {}
        for i in inside:
            pieces.setdefault(root(i), []).append(i)
        if len(pieces) != len(per_call):
            continue
        for k, piece in enumerate(sorted(pieces.values(), key=min)):
            members[(qname, k)] = sorted(piece)


def _match_by_shape(arrays: list[np.ndarray], candidates: list[str], values: Mapping[str, np.ndarray]) -> tuple[list[tuple[int, str]], int]:
    """Pair hooked tensors with ONNX values of the same shape and dtype where that is unambiguous."""
    pairs, ambiguous = [], 0
    for i, arr in enumerate(arrays):
        fits = [c for c in candidates if c in values and values[c].shape == arr.shape and values[c].dtype == arr.dtype]
        if len(fits) == 1:
            pairs.append((i, fits[0]))
        elif len(fits) > 1:
            # same shape several times: fall back on position when counts line up
            same = [a for a in arrays if a.shape == arr.shape and a.dtype == arr.dtype]
            if len(same) == len(fits):
                pairs.append((i, fits[sum(1 for a in arrays[:i] if a.shape == arr.shape and a.dtype == arr.dtype)]))
            else:
                ambiguous += 1
    return pairs, ambiguous


def locate_export_divergence(
    torch_model: Any,
    onnx_model: Any,
    feeds: Mapping[str, np.ndarray],
    atol: float,
    rtol: float,
    positional: bool,
    *,
    equal_nan: bool = True,
) -> DivergenceReport:
    """First ONNX node whose output leaves tolerance of the torch module output it stands for.

    ``feeds`` are keyed by input name in ``forward``'s order; ``positional`` calls
    ``torch_model(*feeds.values())`` instead of ``torch_model(**feeds)``. The model runs as it is
    (put it in eval mode: dropout would differ on its own). See the module docstring for how ONNX
    values are matched to torch tensors and for the limits.
    """
    import onnx

    between = ("torch", "onnxruntime")
    if not isinstance(onnx_model, onnx.ModelProto):
        onnx_model = onnx.load_from_string(onnx_model) if isinstance(onnx_model, bytes) else onnx.load(str(onnx_model))
    graph = onnx_model.graph
    augmented, _, _, _ = _augment(onnx_model)
    try:
        ort_values = _run_ort_unoptimized(augmented, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        return DivergenceReport(between, None, "unknown", f"onnxruntime could not run the model with its intermediates exposed: {describe_exception(exc)}")
    for name in _constant_names(graph, feeds):
        if name in feeds:
            ort_values.setdefault(name, np.asarray(feeds[name]))
    calls, torch_outputs = _run_torch_hooked(torch_model, feeds, positional)

    nodes = _topological_nodes(graph)
    position = {v: i for i, node in enumerate(nodes) for v in node.output if v}
    resolve = _ScopeResolver(torch_model)
    graph_outputs = [o.name for o in graph.output]
    inits = {i.name for i in graph.initializer}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for v in node.input:
            consumers.setdefault(v, []).append(i)

    # which nodes sit inside each (module, call)
    members: dict[tuple[str, int], list[int]] = {}
    unscoped = 0
    for i, node in enumerate(nodes):
        chain = resolve(node)
        if chain is None:
            unscoped += 1
            continue
        for scope in chain[1:]:
            members.setdefault(scope, []).append(i)

    _split_repeated_calls(members, calls, nodes)

    points: list[_Point] = []
    unmatched = ambiguous = 0

    def add(arrays: list[np.ndarray], candidates: list[str], label: str) -> None:
        nonlocal unmatched, ambiguous
        pairs, amb = _match_by_shape(arrays, candidates, ort_values)
        ambiguous += amb
        unmatched += len(arrays) - len(pairs) - amb
        for i, value in pairs:
            what = label if len(arrays) == 1 else f"{label} #{i}"
            points.append(_Point(value, what, compare_output(value, arrays[i], ort_values[value], atol, rtol, equal_nan), arrays[i]))

    # the model's own outputs are the graph outputs, in order
    if len(torch_outputs) == len(graph_outputs):
        for i, (arr, value) in enumerate(zip(torch_outputs, graph_outputs)):
            if value in ort_values:
                points.append(_Point(value, f"model output #{i}", compare_output(value, arr, ort_values[value], atol, rtol, equal_nan), arr))
    else:
        add(torch_outputs, graph_outputs, "model output")

    no_nodes: list[str] = []
    folded: list[tuple[str, list[np.ndarray], list[np.ndarray]]] = []
    for qname, per_call in calls.items():
        if not qname:
            continue
        for k, (ins, outs) in enumerate(per_call):
            inside = members.get((qname, k))
            label = f"module {qname!r}" + (f" (call {k + 1})" if len(per_call) > 1 else "")
            if not inside:
                no_nodes.append(label)
                folded.append((label, ins, outs))
                continue
            inside_set = set(inside)
            produced = [v for i in inside for v in nodes[i].output if v]
            produced_set = set(produced)
            boundary_out = [v for v in produced if v in graph_outputs or any(j not in inside_set for j in consumers.get(v, ()))]
            boundary_in: list[str] = []
            for i in inside:
                for v in nodes[i].input:
                    if v and v not in produced_set and v not in inits and v not in boundary_in:
                        boundary_in.append(v)
            add(outs, boundary_out, f"output of {label}")
            add(ins, boundary_in, f"input of {label}")

    # A module without nodes of its own was fused with a neighbour: into its producer (torchscript
    # folds BatchNorm into the Conv before it), so the ONNX value standing for its input holds its
    # output; or into its consumer (the dynamo exporter leaves the fused Conv in the BatchNorm's
    # scope), so the value standing for its output holds its input. Pair those values with the
    # other tensor too; chains of fused modules take several rounds.
    paired: set[tuple[str, str, str]] = set()
    for _ in range(len(folded)):
        added = False
        for label, ins, outs in folded:
            if len(ins) != 1 or len(outs) != 1:
                continue
            for p in list(points):
                for seen, other, how in ((ins[0], outs[0], "folded into this value's producer"),
                                         (outs[0], ins[0], "fused into this value's consumer")):
                    key = (p.value, label, how)
                    if key in paired or p.array.shape != seen.shape or p.array.dtype != seen.dtype:
                        continue
                    if not np.array_equal(p.array, seen, equal_nan=seen.dtype.kind in "fc"):
                        continue
                    if other.shape != p.array.shape or other.dtype != p.array.dtype:
                        continue
                    paired.add(key)
                    added = True
                    what = f"output of {label} ({how})" if other is outs[0] else f"input of {label} ({how})"
                    points.append(_Point(p.value, what, compare_output(p.value, other, ort_values[p.value], atol, rtol, equal_nan), other))
        if not added:
            break

    by_value: dict[str, list[_Point]] = {}
    for p in points:
        by_value.setdefault(p.value, []).append(p)
    ok = {v: any(p.comparison.ok for p in ps) for v, ps in by_value.items()}

    remarks = []
    if unscoped == len(nodes) and nodes:
        remarks.append("no ONNX node name or metadata carries a torch module scope this exporter layout is known for, "
                       "so only the model outputs could be compared")
    elif unscoped:
        remarks.append(f"{unscoped} of {len(nodes)} ONNX nodes had a scope that names no torch module")
    not_called = sorted({q for q, k in members if k >= len(calls.get(q, []))})
    if not_called:
        remarks.append(f"module(s) with ONNX nodes that torch did not call (this often) for this input: {_names(not_called)}"
                       " - control flow that took another path at export?")
    if no_nodes:
        remarks.append(f"{len(no_nodes)} module call(s) have no ONNX nodes of their own (fused, folded or inlined by the exporter): {_names(no_nodes)}")
    if unmatched or ambiguous:
        remarks.append(f"{unmatched + ambiguous} hooked tensor(s) could not be matched to an ONNX value"
                       + (f" ({ambiguous} ambiguous by shape)" if ambiguous else ""))
    if not by_value:
        return DivergenceReport(between, None, "unknown", "; ".join(["no torch tensor could be matched to an ONNX value"] + remarks))

    divergent = [v for v in by_value if not ok[v]]
    if not divergent:
        return DivergenceReport(
            between, None, "unknown",
            "; ".join([f"all {len(by_value)} matched values are within tolerance (atol={atol:g}, rtol={rtol:g}) for this input"] + remarks),
        )
    first = min(divergent, key=lambda v: position.get(v, -1))
    if first not in position:  # a graph input differs: the inputs were not fed alike
        return DivergenceReport(between, None, "unknown", "; ".join([f"graph input {first!r} differs from what torch received"] + remarks))
    node = nodes[position[first]]

    # the nodes that can have caused it: ancestors back to values that agree, graph inputs,
    # initializers and Constant nodes (a constant the exporter baked in counts as equal, like an
    # initializer; it is named in the note)
    constants = {v for n in nodes if n.op_type == "Constant" and not n.input for v in n.output if v}
    region: list[int] = []
    stack, seen = [position[first]], set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        region.append(i)
        for v in nodes[i].input:
            if v and v in position and not ok.get(v, False) and v not in constants:
                stack.append(position[v])
    region.sort()
    worst = min(by_value[first], key=lambda p: p.comparison.tolerance_ratio)  # the pairing that agrees best
    found = NodeDivergence(
        op_type=node.op_type,
        node_name=node.name,
        output=first,
        input_shapes=_shapes_of(node, ort_values, graph),
        output_shape=[int(d) for d in np.shape(ort_values[first])],
        comparison=worst.comparison,
    )
    where = ", ".join(p.label for p in by_value[first])
    head = f"value {first!r} is the {where}"
    if len(region) == 1:
        head += "; the values it is computed from agree, so this node is the first to diverge"
        baked = [v for v in node.input if v in constants or v in inits]
        if baked:
            head += f" (it also reads constant(s) fixed at export, which count as equal: {_names(baked)})"
    else:
        head += (f"; it is computed from values that agree through {len(region)} nodes, any of which may be the cause: "
                 + _names([nodes[i].name or nodes[i].op_type for i in region]))
    agreeing = sum(1 for v in by_value if ok[v])
    return DivergenceReport(
        between, found, "export",
        "; ".join([head, f"{agreeing} of {len(by_value)} matched values within tolerance"] + remarks),
    )


# --------------------------------------------------------------------------------------------
# which step
# --------------------------------------------------------------------------------------------


def _agree(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], tolerance: Any, equal_nan: bool) -> bool:
    if not callable(tolerance):
        atol, rtol = tolerance
        tolerance = lambda dtype: (atol, rtol)  # noqa: E731
    return all(c.ok for c in compare_all(ref, got, tolerance, equal_nan))


def attribute_step(
    torch_out: Mapping[str, np.ndarray],
    ort_out: Mapping[str, np.ndarray],
    backend_out: Mapping[str, np.ndarray] | None,
    tolerance: Callable[[str], tuple[float, float]] | tuple[float, float],
    *,
    deployed_out: Mapping[str, np.ndarray] | None = None,
    equal_nan: bool = False,
) -> str:
    """Which step a mismatch belongs to, from the outputs of each stage for one input.

    ``tolerance`` is ``CheckOptions.tolerance`` (dtype -> (atol, rtol)) or one (atol, rtol) pair.
    ``backend_out`` is the converted model's output (None when there is no converted backend);
    ``deployed_out`` optionally the output of the runner as deployed, when it differs from the
    converted model checked directly.

    * "export": torch and onnxruntime differ, onnxruntime and the backend agree (or no backend);
    * "conversion": onnxruntime and the backend differ while torch and onnxruntime agree;
    * "runtime": every step agrees but the end result does not: either the deployed runner differs
      from the converted model, or torch vs backend is out of tolerance although each step is
      within it (small per-runtime numeric differences that add up);
    * "unknown": both steps differ (cannot be pinned on one), or nothing differs.
    """
    export_ok = _agree(torch_out, ort_out, tolerance, equal_nan)
    if backend_out is None:
        return "unknown" if export_ok else "export"
    convert_ok = _agree(ort_out, backend_out, tolerance, equal_nan)
    if not export_ok:
        return "export" if convert_ok else "unknown"
    if not convert_ok:
        return "conversion"
    if deployed_out is not None:
        if not (_agree(backend_out, deployed_out, tolerance, equal_nan) and _agree(torch_out, deployed_out, tolerance, equal_nan)):
            return "runtime"
        return "unknown"
    return "unknown" if _agree(torch_out, backend_out, tolerance, equal_nan) else "runtime"
