"""Op versions of opsets 16-21 that only widened the types, or added an attribute that a guard
checks is unused: each runs onnx-tf's own handler of an older version of the same op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..patches import delegating, onnx_tf_version
from .common import str_attr

__all__ = ["ALIASES", "same_as"]

Guard = Callable[[Any], str | None]


def same_as(version: int, guard: Guard | None = None) -> Callable[..., list[Any]]:
    """A handler for a newer op version that only widened the types (or added an attribute that
    ``guard`` checks is unused): run onnx-tf's own ``version_<version>`` of the same class."""

    def handler(cls: type, node: Any, **kwargs: Any) -> list[Any]:
        reason = guard(node) if guard is not None else None
        if reason:
            raise NotImplementedError(f"{node.op_type} node {node.name!r}: {reason} is not supported by onnx-tf")
        return onnx_tf_version(cls, version, node, **kwargs)

    handler.__name__ = f"same_as_{version}"
    handler.__doc__ = f"Reuse onnx-tf's version_{version}."
    return delegating(handler)


def _no_reduction(node: Any) -> str | None:
    """ScatterElements/ScatterND-16+ added ``reduction``; onnx-tf implements only 'none'."""
    mode = str_attr(node, "reduction", "none")
    return None if mode == "none" else f"reduction={mode}"


def _no_dilation(node: Any) -> str | None:
    """AveragePool-19 / LpPool-18 added ``dilations`` (LpPool also ``ceil_mode``)."""
    if any(int(d) != 1 for d in node.attrs.get("dilations", [])):
        return "dilations != 1"
    if node.op_type == "LpPool" and node.attrs.get("ceil_mode", 0):
        return "ceil_mode=1"
    return None


#: (op, newer since_version) -> (onnx-tf version with the same semantics, guard)
ALIASES: dict[tuple[str, int], tuple[int, Guard | None]] = {
    **{(op, 16): (v, None) for op, v in (("Where", 9), ("LeakyRelu", 6), ("GreaterOrEqual", 12),
                                           ("LessOrEqual", 12), ("PRelu", 9))},
    **{(op, v): (13, None) for op in ("If", "Loop") for v in (16, 19, 21)},
    **{("Scan", v): (11, None) for v in (16, 19, 21)},
    **{(op, v): (13, _no_reduction) for op in ("ScatterElements", "ScatterND") for v in (16, 18)},
    ("AveragePool", 19): (11, _no_dilation),
    ("LpPool", 18): (11, _no_dilation),
    **{(op, v): (13, None) for op in ("Cast", "Constant") for v in (19, 21)},
    **{("CastLike", v): (15, None) for v in (19, 21)},
    **{("ConstantOfShape", v): (9, None) for v in (20, 21)},
    ("Equal", 19): (13, None),
    **{("Identity", v): (16, None) for v in (19, 21)},
    **{("Size", v): (13, None) for v in (19, 21)},
    ("IsInf", 20): (10, None),
    ("IsNaN", 20): (13, None),
    ("Flatten", 21): (13, None),
    ("Transpose", 21): (13, None),
    **{("Reshape", v): (14, None) for v in (19, 21)},
}
