"""Where a quantized model loses accuracy: SNR per intermediate value, worst drops first.

A quantized target's backend finds its own values for some of the ONNX model's intermediates
(by name: TFLite tensors named after the ONNX nodes, or the quantized ONNX model's own values);
this module compares them with ONNX Runtime's fp32 values and formats the figures. The *drop* of
a value is the SNR of its nearest compared ancestors (graph inputs and weights count as exact)
minus its own: the layer that loses the most is the one to look at, even though every later
layer inherits its error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..judge.metrics import snr_db

#: SNR taken for an exact value (graph inputs, weights) when computing drops: about float32's own
#: rounding noise, so a drop from an exact input reads as a number, not as infinity
EXACT_DB = 140.0
_SHOWN = 8


@dataclass(frozen=True)
class LayerError:
    value: str
    #: the ONNX op and node producing ``value``
    op_type: str
    node: str
    snr_db: float
    #: SNR of the nearest compared ancestors (min), EXACT_DB when they are inputs or weights
    upstream_db: float

    @property
    def drop_db(self) -> float:
        own = min(self.snr_db, EXACT_DB) if not math.isnan(self.snr_db) else -math.inf
        return self.upstream_db - own


def _producers(graph: Any) -> dict[str, Any]:
    return {out: node for node in graph.node for out in node.output if out}


def layer_errors(graph: Any, order: list[str], reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> list[LayerError]:
    """SNR of every value in ``order`` (topological) found in both ``reference`` and ``candidate``."""
    producers = _producers(graph)
    snr = {v: snr_db(reference[v], candidate[v]) for v in order if v in reference and v in candidate}
    memo: dict[str, float] = {}

    def upstream(value: str) -> float:
        """min SNR over the nearest compared values feeding the node that makes ``value``."""
        if value in memo:
            return memo[value]
        memo[value] = EXACT_DB  # a cycle or a graph input
        node = producers.get(value)
        found = EXACT_DB
        for name in node.input if node is not None else ():
            if name in snr:
                found = min(found, snr[name] if not math.isnan(snr[name]) else -math.inf)
            elif name in producers:
                found = min(found, upstream(name))
        memo[value] = found
        return found

    out = []
    for value in order:
        if value in snr:
            node = producers[value]
            out.append(LayerError(value, node.op_type, node.name, snr[value], min(upstream(value), EXACT_DB)))
    return out


def _db(value: float) -> str:
    return "exact" if value == math.inf else "nan" if math.isnan(value) else f"{value:.1f} dB"


def format_layer_errors(title: str, errors: list[LayerError], total: int, unmapped: list[str], why_unmapped: str) -> str:
    """The report: worst drops first, the values in graph order, and what could not be compared."""
    lines = [f"{title}: {len(errors)} of {total} ONNX intermediate values compared"]
    if errors:
        lines.append("  worst SNR drops (the value's SNR vs its inputs'):")
        for e in sorted(errors, key=lambda e: -e.drop_db)[:_SHOWN]:
            lines.append(
                f"    {e.drop_db:6.1f} dB  {e.value!r} ({e.op_type} {e.node!r}): {_db(e.snr_db)}, inputs {_db(e.upstream_db)}"
            )
        shown = ", ".join(f"{e.value} {_db(e.snr_db)}" for e in errors[:12])
        lines.append(f"  down the graph: {shown}" + (f", ... ({len(errors) - 12} more)" if len(errors) > 12 else ""))
    if unmapped:
        names = ", ".join(map(repr, unmapped[:6])) + (f" and {len(unmapped) - 6} more" if len(unmapped) > 6 else "")
        lines.append(f"  not mapped ({len(unmapped)}): {names} -- {why_unmapped}")
    return "\n".join(lines)


def onnx_intermediates(model: Any, feeds: Mapping[str, np.ndarray]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every typed intermediate of ``model`` by ONNX Runtime, unoptimized: (topological names, values)."""
    from ..export.onnx_graph import augment, run_ort_unoptimized

    augmented = augment(model)
    inputs = {i.name for i in model.graph.input}
    values = run_ort_unoptimized(augmented.model, {k: v for k, v in feeds.items() if k in inputs})
    return list(augmented.names), values


def against_fp32(
    onnx_path: Any, feeds: Mapping[str, np.ndarray], candidate: Callable[[Any, list[str], dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    title: Callable[[Any], str], why_unmapped: str,
) -> str:
    """A reduced-precision target's report: its values (``candidate(model, order, reference)``,
    keyed by ONNX value name) against the fp32 ONNX model's in ONNX Runtime, layer by layer."""
    import onnx

    model = onnx.load(str(onnx_path))
    order, reference = onnx_intermediates(model, feeds)
    matched = candidate(model, order, reference)
    errors = layer_errors(model.graph, order, reference, matched)
    unmapped = [v for v in order if v not in matched]
    return format_layer_errors(title(model), errors, len(order), unmapped, why_unmapped)
