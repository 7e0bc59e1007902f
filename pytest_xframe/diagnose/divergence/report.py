"""What a divergence search reports: the node to blame (if any), the step, and a note."""

from __future__ import annotations

from dataclasses import dataclass

from ...judge.compare import OutputComparison, format_comparison

__all__ = ["DivergenceReport", "NodeDivergence", "list_names"]

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
    """Where two frameworks first part ways, and what the search could not see (``note``)."""

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


def list_names(items: list[str]) -> str:
    """Names for a note, quoted, the first few only."""
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")
