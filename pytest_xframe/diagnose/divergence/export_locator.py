"""torch vs onnxruntime: the first ONNX node whose value leaves tolerance of the torch tensor it
stands for, the values it is computed from agreeing.

``torch.onnx.verification`` in torch 2.13 only offers ``verify_onnx_program(...,
compare_intermediates=True)``, which needs the dynamo ``ONNXProgram`` object (not a stored
``ModelProto``) and compares against the *exported* FX graph, so it cannot see what the exporter
froze (a data-dependent branch, a Python scalar); the torchscript exporter has no such facility
any more. So the search does the equivalent by hand, in phases, each a function returning a
dataclass:

1. :func:`run_ort_intermediates`: every value of the graph as onnxruntime computes it;
2. :func:`~.torch_run.run_torch_hooked` -> ``TorchRun``: forward hooks on every submodule capture
   the tensors each call takes and returns;
3. :func:`~.scopes.scope_graph` -> ``GraphScopes``: each ONNX node's torch module scope, read from
   its name (torchscript) or its metadata (dynamo);
4. :func:`match_values` -> :class:`Matching`: the values crossing a module call's scope boundary
   paired with its hooked tensors by shape and dtype;
5. :func:`compare_pairings` -> :class:`Verdicts`: each pairing compared;
6. :func:`pick_first_divergence` -> :class:`FirstDivergence`: the divergent value produced first,
   and the nodes since the last values that agree.

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
Subgraphs (If/Loop bodies) are not looked into.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import describe_exception
from ...export.onnx_graph import augment, load_model, run_ort_unoptimized, shapes_of
from ...judge.compare import OutputComparison, compare_output
from .report import DivergenceReport, NodeDivergence, list_names
from .scopes import GraphScopes, scope_graph
from .torch_run import ModuleCall, TorchRun, run_torch_hooked

__all__ = [
    "ComparedPairing",
    "FirstDivergence",
    "Matching",
    "Pairing",
    "Verdicts",
    "compare_pairings",
    "locate_export_divergence",
    "match_values",
    "pick_first_divergence",
    "run_ort_intermediates",
]


def run_ort_intermediates(onnx_model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of the model (intermediates, outputs, and the feeds) as onnxruntime computes it,
    with graph optimizations off so that nothing is fused away."""
    values = run_ort_unoptimized(augment(onnx_model).model, feeds)
    for name, value in feeds.items():
        values.setdefault(name, np.asarray(value))
    return values


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


@dataclass(frozen=True)
class Pairing:
    """An ONNX value and a hooked torch tensor it stands for (``label`` says which)."""

    value: str
    label: str
    array: np.ndarray


@dataclass
class Matching:
    """The pairings found, in the order found, and what could not be paired."""

    pairings: list[Pairing] = field(default_factory=list)
    #: hooked tensors with no ONNX value of their shape and dtype at their boundary
    unmatched: int = 0
    #: hooked tensors whose shape and dtype fit several boundary values
    ambiguous: int = 0
    #: labels of the module calls without ONNX nodes of their own (fused, folded or inlined)
    no_nodes: list[str] = field(default_factory=list)

    def add_by_shape(self, arrays: list[np.ndarray], candidates: list[str], label: str,
                     values: Mapping[str, np.ndarray]) -> None:
        pairs, ambiguous = _match_by_shape(arrays, candidates, values)
        self.ambiguous += ambiguous
        self.unmatched += len(arrays) - len(pairs) - ambiguous
        for i, value in pairs:
            self.pairings.append(Pairing(value, label if len(arrays) == 1 else f"{label} #{i}", arrays[i]))


def _match_model_outputs(matching: Matching, run: TorchRun, scopes: GraphScopes, values: Mapping[str, np.ndarray]) -> None:
    """The model's own outputs are the graph outputs, in order (by shape when the counts differ)."""
    if len(run.outputs) != len(scopes.graph_outputs):
        matching.add_by_shape(run.outputs, scopes.graph_outputs, "model output", values)
        return
    for i, (arr, value) in enumerate(zip(run.outputs, scopes.graph_outputs)):
        if value in values:
            matching.pairings.append(Pairing(value, f"model output #{i}", arr))


def _match_module_calls(matching: Matching, run: TorchRun, scopes: GraphScopes,
                        values: Mapping[str, np.ndarray]) -> list[tuple[str, ModuleCall]]:
    """Pair each module call's tensors with the values crossing its nodes' boundary; returns the
    calls without nodes of their own, with their labels."""
    folded = []
    for qname, per_call in run.calls.items():
        if not qname:
            continue
        for k, call in enumerate(per_call):
            inside = scopes.members.get((qname, k))
            label = f"module {qname!r}" + (f" (call {k + 1})" if len(per_call) > 1 else "")
            if not inside:
                matching.no_nodes.append(label)
                folded.append((label, call))
                continue
            entering, leaving = scopes.boundary(inside)
            matching.add_by_shape(call.outputs, leaving, f"output of {label}", values)
            matching.add_by_shape(call.inputs, entering, f"input of {label}", values)
    return folded


def _fused_pairings(pairings: list[Pairing], label: str, call: ModuleCall, paired: set[tuple[str, str, str]]) -> list[Pairing]:
    """New pairings of a fused module's other tensor with values already paired with one of its tensors."""
    if len(call.inputs) != 1 or len(call.outputs) != 1:
        return []
    found = []
    for p in pairings:
        for seen, other, how in ((call.inputs[0], call.outputs[0], "folded into this value's producer"),
                                 (call.outputs[0], call.inputs[0], "fused into this value's consumer")):
            key = (p.value, label, how)
            if key in paired or p.array.shape != seen.shape or p.array.dtype != seen.dtype:
                continue
            if not np.array_equal(p.array, seen, equal_nan=seen.dtype.kind in "fc"):
                continue
            if other.shape != p.array.shape or other.dtype != p.array.dtype:
                continue
            paired.add(key)
            what = f"output of {label} ({how})" if other is call.outputs[0] else f"input of {label} ({how})"
            found.append(Pairing(p.value, what, other))
    return found


def _pair_fused_modules(matching: Matching, folded: list[tuple[str, ModuleCall]]) -> None:
    """A module without nodes of its own was fused with a neighbour: into its producer (torchscript
    folds BatchNorm into the Conv before it), so the ONNX value standing for its input holds its
    output; or into its consumer (the dynamo exporter leaves the fused Conv in the BatchNorm's
    scope), so the value standing for its output holds its input. Pair those values with the
    other tensor too; chains of fused modules take several rounds."""
    paired: set[tuple[str, str, str]] = set()
    for _ in range(len(folded)):
        added = False
        for label, call in folded:
            # pairings added for an earlier module count in this pass already
            new = _fused_pairings(list(matching.pairings), label, call, paired)
            matching.pairings.extend(new)
            added = added or bool(new)
        if not added:
            break


def match_values(run: TorchRun, scopes: GraphScopes, values: Mapping[str, np.ndarray]) -> Matching:
    """Pair the hooked torch tensors with the ONNX values they stand for (``values``: by name, as
    onnxruntime computed them; only their shapes, dtypes and presence are used here)."""
    matching = Matching()
    _match_model_outputs(matching, run, scopes, values)
    folded = _match_module_calls(matching, run, scopes, values)
    _pair_fused_modules(matching, folded)
    return matching


@dataclass(frozen=True)
class ComparedPairing:
    """One pairing's hooked torch tensor (the reference) compared with onnxruntime's value."""

    value: str
    label: str
    comparison: OutputComparison


@dataclass(frozen=True)
class Verdicts:
    """Every paired ONNX value with its comparisons, in the order first paired."""

    by_value: dict[str, list[ComparedPairing]]
    #: a value agrees when any of its pairings is within tolerance (a fused module's two tensors)
    ok: dict[str, bool]

    @property
    def divergent(self) -> list[str]:
        return [v for v in self.by_value if not self.ok[v]]

    @property
    def agreeing(self) -> int:
        return sum(1 for v in self.by_value if self.ok[v])


def compare_pairings(pairings: list[Pairing], values: Mapping[str, np.ndarray], atol: float, rtol: float,
                     equal_nan: bool) -> Verdicts:
    """Compare each pairing's torch tensor with onnxruntime's value of the same name."""
    by_value: dict[str, list[ComparedPairing]] = {}
    for p in pairings:
        comparison = compare_output(p.value, p.array, values[p.value], atol, rtol, equal_nan)
        by_value.setdefault(p.value, []).append(ComparedPairing(p.value, p.label, comparison))
    return Verdicts(by_value, {v: any(c.comparison.ok for c in cs) for v, cs in by_value.items()})


@dataclass(frozen=True)
class FirstDivergence:
    """The first divergent value in topological order, and the nodes that can have caused it."""

    value: str
    #: index of its producer in ``GraphScopes.nodes``; None when it is a graph input
    node_index: int | None
    #: the producer's ancestors back to values that agree, graph inputs, initializers and
    #: Constant nodes (sorted node indices, the producer included)
    region: list[int]
    #: outputs of Constant nodes: baked in by the exporter, they count as equal like initializers
    constants: set[str]


def pick_first_divergence(verdicts: Verdicts, scopes: GraphScopes) -> FirstDivergence:
    """The divergent value produced first; ``verdicts`` must hold at least one divergent value."""
    position, nodes = scopes.position, scopes.nodes
    first = min(verdicts.divergent, key=lambda v: position.get(v, -1))
    constants = {v for n in nodes if n.op_type == "Constant" and not n.input for v in n.output if v}
    if first not in position:
        return FirstDivergence(first, None, [], constants)
    region: list[int] = []
    stack, seen = [position[first]], set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        region.append(i)
        for v in nodes[i].input:
            if v and v in position and not verdicts.ok.get(v, False) and v not in constants:
                stack.append(position[v])
    return FirstDivergence(first, position[first], sorted(region), constants)


def _export_remarks(scopes: GraphScopes, run: TorchRun, matching: Matching) -> list[str]:
    """What the search could not see, for the report's note."""
    remarks = []
    if scopes.unscoped == len(scopes.nodes) and scopes.nodes:
        remarks.append("no ONNX node name or metadata carries a torch module scope this exporter layout is known for, "
                       "so only the model outputs could be compared")
    elif scopes.unscoped:
        remarks.append(f"{scopes.unscoped} of {len(scopes.nodes)} ONNX nodes had a scope that names no torch module")
    not_called = sorted({q for q, k in scopes.members if k >= len(run.calls.get(q, []))})
    if not_called:
        remarks.append(f"module(s) with ONNX nodes that torch did not call (this often) for this input: {list_names(not_called)}"
                       " - control flow that took another path at export?")
    if matching.no_nodes:
        remarks.append(f"{len(matching.no_nodes)} module call(s) have no ONNX nodes of their own (fused, folded or inlined "
                       f"by the exporter): {list_names(matching.no_nodes)}")
    if matching.unmatched or matching.ambiguous:
        remarks.append(f"{matching.unmatched + matching.ambiguous} hooked tensor(s) could not be matched to an ONNX value"
                       + (f" ({matching.ambiguous} ambiguous by shape)" if matching.ambiguous else ""))
    return remarks


def _blame_head(first: FirstDivergence, verdicts: Verdicts, scopes: GraphScopes) -> str:
    """The note's first sentence: where the value sits in torch and which nodes may be the cause."""
    nodes = scopes.nodes
    node = nodes[first.node_index]  # type: ignore[index]
    where = ", ".join(p.label for p in verdicts.by_value[first.value])
    head = f"value {first.value!r} is the {where}"
    if len(first.region) == 1:
        head += "; the values it is computed from agree, so this node is the first to diverge"
        baked = [v for v in node.input if v in first.constants or v in scopes.initializers]
        if baked:
            head += f" (it also reads constant(s) fixed at export, which count as equal: {list_names(baked)})"
    else:
        head += (f"; it is computed from values that agree through {len(first.region)} nodes, any of which may be the cause: "
                 + list_names([nodes[i].name or nodes[i].op_type for i in first.region]))
    return head


def _export_blame(first: FirstDivergence, verdicts: Verdicts, scopes: GraphScopes, values: Mapping[str, np.ndarray],
                  graph: Any, remarks: list[str]) -> DivergenceReport:
    """The report naming the producer of the first divergent value."""
    node = scopes.nodes[first.node_index]  # type: ignore[index]
    best = min(verdicts.by_value[first.value], key=lambda p: p.comparison.tolerance_ratio)  # the pairing that agrees best
    found = NodeDivergence(
        op_type=node.op_type,
        node_name=node.name,
        output=first.value,
        input_shapes=shapes_of(node, values, graph),
        output_shape=[int(d) for d in np.shape(values[first.value])],
        comparison=best.comparison,
    )
    counts = f"{verdicts.agreeing} of {len(verdicts.by_value)} matched values within tolerance"
    return DivergenceReport(("torch", "onnxruntime"), found, "export",
                            "; ".join([_blame_head(first, verdicts, scopes), counts] + remarks))


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
    between = ("torch", "onnxruntime")
    onnx_model = load_model(onnx_model)
    try:
        values = run_ort_intermediates(onnx_model, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        return DivergenceReport(between, None, "unknown", f"onnxruntime could not run the model with its intermediates exposed: {describe_exception(exc)}")
    run = run_torch_hooked(torch_model, feeds, positional)
    scopes = scope_graph(onnx_model.graph, torch_model, run.calls)
    matching = match_values(run, scopes, values)
    verdicts = compare_pairings(matching.pairings, values, atol, rtol, equal_nan)
    remarks = _export_remarks(scopes, run, matching)
    if not verdicts.by_value:
        return DivergenceReport(between, None, "unknown", "; ".join(["no torch tensor could be matched to an ONNX value"] + remarks))
    if not verdicts.divergent:
        return DivergenceReport(
            between, None, "unknown",
            "; ".join([f"all {len(verdicts.by_value)} matched values are within tolerance (atol={atol:g}, rtol={rtol:g}) for this input"] + remarks),
        )
    first = pick_first_divergence(verdicts, scopes)
    if first.node_index is None:  # a graph input differs: the inputs were not fed alike
        return DivergenceReport(between, None, "unknown", "; ".join([f"graph input {first.value!r} differs from what torch received"] + remarks))
    return _export_blame(first, verdicts, scopes, values, onnx_model.graph, remarks)
