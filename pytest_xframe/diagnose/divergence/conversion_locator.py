"""onnxruntime vs a converted backend: the first ONNX node whose converted output leaves tolerance
of onnxruntime's, its inputs agreeing.

Every intermediate value of the ONNX model becomes a graph output; the augmented model runs in
onnxruntime with graph optimizations off (so nothing is fused) and through the backend's
``run_intermediates`` (onnx-tf: converted into a SavedModel that returns the same values). In
phases: :func:`run_both` -> :class:`BothRuns`, :func:`compare_intermediates` ->
:class:`Intermediates`, :func:`first_conversion_divergence` -> :class:`Culprit`. Nodes are walked
in topological order; the first node with an output out of tolerance whose tensor inputs are all
within it (graph inputs and initializers count as equal) is reported. Subgraphs (If/Loop bodies)
are not looked into.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import XframeError, describe_exception
from ...export.onnx_graph import augment, constant_names, fill_output_ranks, load_model, run_ort_unoptimized, shapes_of, topological_nodes
from ...judge.compare import OutputComparison, compare_output
from .report import DivergenceReport, NodeDivergence, list_names

__all__ = [
    "BothRuns",
    "Culprit",
    "Intermediates",
    "compare_intermediates",
    "first_conversion_divergence",
    "locate_conversion_divergence",
    "run_both",
]

RunConverted = Callable[[Any, Mapping[str, np.ndarray]], dict[str, np.ndarray]]


def _compare(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, equal_nan: bool) -> OutputComparison:
    ref, got = np.asarray(ref), np.asarray(got)
    # a converter may widen or narrow an integer type (int32 for int64): compare the values
    if ref.dtype != got.dtype and ref.dtype.kind in "iub" and got.dtype.kind in "iub" and ref.shape == got.shape:
        got = got.astype(ref.dtype)
    return compare_output(name, ref, got, atol, rtol, equal_nan)


@dataclass(frozen=True)
class BothRuns:
    """Every exposed value by ONNX name, from onnxruntime and from the converted model; or why not."""

    ort: dict[str, np.ndarray]
    converted: dict[str, np.ndarray]
    #: the intermediates exposed, in topological order
    names: list[str]
    #: what the comparison cannot cover (untyped values, failed shape inference)
    remarks: list[str]
    #: set when a side could not run: the report's note, and nothing else is filled in
    failure: str | None = None


def _converted_failure(exc: Exception, between: tuple[str, str], remarks: list[str]) -> str:
    """The note for a converted model that could not be built or run."""
    if isinstance(exc, XframeError):
        first = (f"the model with its intermediates exposed could not be converted/run in {between[1]}: {exc.summary}"
                 + (f" ({exc.cause})" if exc.cause else ""))
    else:
        first = f"the model with its intermediates exposed failed in {between[1]}: {describe_exception(exc)}"
    return "; ".join([first] + remarks)


def run_both(onnx_model: Any, feeds: Mapping[str, np.ndarray], run_converted: RunConverted, between: tuple[str, str]) -> BothRuns:
    """Run the model, every intermediate exposed, in onnxruntime and through ``run_converted``."""
    exposed = augment(onnx_model)
    remarks = [exposed.remark] if exposed.remark else []
    if exposed.skipped:
        remarks.append(f"{exposed.skipped} intermediate(s) of unknown or non-tensor type were not compared")
    try:
        ort_values = run_ort_unoptimized(exposed.model, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        failure = f"onnxruntime could not run the model with its intermediates exposed: {describe_exception(exc)}"
        return BothRuns({}, {}, exposed.names, remarks, failure)
    fill_output_ranks(exposed.model, ort_values)
    try:
        converted = run_converted(exposed.model, feeds)
    except Exception as exc:  # noqa: BLE001 - frameworks raise many unrelated types
        return BothRuns(ort_values, {}, exposed.names, remarks, _converted_failure(exc, between, remarks))
    return BothRuns(ort_values, converted, exposed.names, remarks)


@dataclass(frozen=True)
class Intermediates:
    """The comparison of every value both sides produced."""

    #: value name -> onnxruntime (reference) vs converted, in topological order
    status: dict[str, OutputComparison]
    #: values one side did not return (fused or renamed by the converter)
    missing: list[str]
    #: how many values were to be compared
    total: int

    @property
    def agreeing(self) -> int:
        return sum(1 for c in self.status.values() if c.ok)


def compare_intermediates(runs: BothRuns, graph_outputs: list[str], atol: float, rtol: float, equal_nan: bool) -> Intermediates:
    """Compare the exposed intermediates, then the graph outputs, onnxruntime as the reference."""
    status: dict[str, OutputComparison] = {}
    missing: list[str] = []
    compared = list(runs.names) + [o for o in graph_outputs if o not in runs.names]
    for name in compared:
        if name in runs.ort and name in runs.converted:
            status[name] = _compare(name, runs.ort[name], runs.converted[name], atol, rtol, equal_nan)
        else:
            missing.append(name)
    return Intermediates(status, missing, len(compared))


@dataclass(frozen=True)
class Culprit:
    """The first node with an output out of tolerance whose compared inputs are within it."""

    node: Any
    #: its output out of tolerance by the most (a non-numeric problem first)
    output: str
    #: its inputs that could not be compared (the divergence may lie in their producers)
    unknown_inputs: list[str]


def first_conversion_divergence(graph: Any, feeds: Mapping[str, Any], status: Mapping[str, OutputComparison]) -> Culprit | None:
    """Walk the nodes in topological order; graph inputs and initializers count as equal."""
    equal = constant_names(graph, feeds)
    for node in topological_nodes(graph):
        bad = [o for o in node.output if o in status and not status[o].ok]
        if not bad:
            continue
        inputs = [i for i in node.input if i and i not in equal]
        if any(i in status and not status[i].ok for i in inputs):
            continue  # downstream of an earlier divergence (only reachable with odd graphs)
        worst = max(bad, key=lambda o: (status[o].problem is not None, status[o].tolerance_ratio))
        return Culprit(node, worst, [i for i in inputs if i not in status])
    return None


def _culprit_report(culprit: Culprit, found: Intermediates, runs: BothRuns, graph: Any, between: tuple[str, str],
                    remarks: list[str]) -> DivergenceReport:
    node = culprit.node
    divergence = NodeDivergence(
        op_type=node.op_type,
        node_name=node.name,
        output=culprit.output,
        input_shapes=shapes_of(node, runs.ort, graph),
        output_shape=[int(d) for d in np.shape(runs.ort[culprit.output])],
        comparison=found.status[culprit.output],
    )
    head = [f"{found.agreeing} of {len(found.status)} compared values within tolerance"]
    if culprit.unknown_inputs:
        head.append(f"input(s) {list_names(culprit.unknown_inputs)} of this node could not be compared; "
                    "the divergence may lie in their producers")
    return DivergenceReport(between, divergence, "conversion", "; ".join(head + remarks))


def locate_conversion_divergence(
    onnx_model: Any,
    feeds: Mapping[str, np.ndarray],
    atol: float,
    rtol: float,
    run_converted: RunConverted,
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
    onnx_model = load_model(onnx_model)
    graph = onnx_model.graph
    runs = run_both(onnx_model, feeds, run_converted, between)
    if runs.failure is not None:
        return DivergenceReport(between, None, "unknown", runs.failure)
    found = compare_intermediates(runs, [o.name for o in graph.output], atol, rtol, equal_nan)
    remarks = list(runs.remarks)
    if found.missing:
        remarks.insert(0, f"{len(found.missing)} of {found.total} intermediates could not be matched "
                          f"(fused/renamed by the converter): {list_names(found.missing)}")
    if not found.status:
        unmatched = f"no intermediate value could be matched between {between[0]} and {between[1]}"
        return DivergenceReport(between, None, "unknown", "; ".join([unmatched, *remarks]))
    culprit = first_conversion_divergence(graph, feeds, found.status)
    if culprit is not None:
        return _culprit_report(culprit, found, runs, graph, between, remarks)
    return DivergenceReport(
        between, None, "unknown",
        "; ".join([f"all {len(found.status)} compared values are within tolerance (atol={atol:g}, rtol={rtol:g}) for this input"] + remarks),
    )
