"""Pure-onnx graph rewrites that turn an exported model into one onnx-tf 1.10 can convert.

Kept apart from the TensorFlow side so each rewrite can be tested with onnx alone. Op-version gaps
(Unsqueeze-13, Reduce*-18, LayerNormalization, ...) are closed by handlers in
:mod:`pytest_xframe.backends.tensorflow.onnx_tf_compat`, not here: a handler reads a constant ``axes`` input
directly, which is simpler than folding it into an attribute and faking an older op version.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

__all__ = [
    "LAST_SUPPORTED_OPSET",
    "cap_opset",
    "inline_functions",
    "lower_for_onnx_tf",
    "signature_input_names",
    "tf_safe_input_names",
]

#: Highest ai.onnx opset that onnx-tf (with our handlers) converts; newer models are
#: down-converted to it first (where the installed onnx's version converter can read them, see
#: :func:`cap_opset`). An exporter can use it as ``opset_version``.
LAST_SUPPORTED_OPSET = 21


def _opset(model: onnx.ModelProto, domain: str = "") -> int | None:
    for entry in model.opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return int(entry.version)
    return None


def inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Inline model-local functions (the dynamo exporter can emit them); onnx-tf has no support."""
    if not model.functions:
        return model
    import onnx.inliner

    return onnx.inliner.inline_local_functions(model)


def cap_opset(model: onnx.ModelProto, max_opset: int = LAST_SUPPORTED_OPSET) -> onnx.ModelProto:
    """Down-convert a model whose ai.onnx opset is newer than ``max_opset``.

    onnx's version converter lacks adapters for some ops; then the model is returned unchanged and
    the converter reports the op it cannot handle, which is a clearer error than the adapter's.
    The same holds when the model's opset is newer than the installed onnx knows (onnx 1.15 stops
    at opset 20): its converter cannot read such a model at all, and onnx-tf then dispatches each
    op to the newest version the installed onnx defines.
    """
    current = _opset(model)
    if current is None or current <= max_opset:
        return model
    import onnx.defs
    import onnx.version_converter

    if current > onnx.defs.onnx_opset_version():
        return model  # convert_version would only fail its version-range assertion

    try:
        return onnx.version_converter.convert_version(model, max_opset)
    except Exception:  # noqa: BLE001 - the adapters raise RuntimeError / ConvertError / ...
        return model


def _tf_safe(name: str) -> str:
    safe = re.sub(r"\W", "_", name)
    if not safe or not (safe[0].isalpha() or safe[0] == "_") or keyword.iskeyword(safe):
        safe = "input_" + safe
    return safe


def _needs_rename(name: str) -> bool:
    return not name.isidentifier() or keyword.iskeyword(name) or not name.isascii()


def signature_input_names(model: onnx.ModelProto) -> dict[str, str]:
    """ONNX graph input name -> keyword name in the SavedModel's ``serving_default`` signature.

    TensorFlow function arguments must be identifiers: onnx-tf passes ONNX names straight through
    and a name such as ``input.1`` or ``onnx::Gemm_0`` silently becomes a None tensor. Such names
    are replaced by a sanitised one (``input.1`` -> ``input_1``), unique in the graph; identifiers
    are kept. Output names need no mapping: the signature's result dict uses the ONNX names as is.
    """
    graph = model.graph
    initialized = {init.name for init in graph.initializer}
    taken = {vi.name for vi in graph.input} | {vi.name for vi in graph.output} | initialized
    taken |= {out for node in graph.node for out in node.output}
    mapping: dict[str, str] = {}
    for vi in graph.input:
        if vi.name in initialized:
            continue
        new = vi.name
        if _needs_rename(vi.name):
            base = new = _tf_safe(vi.name)
            i = 1
            while new in taken:
                new, i = f"{base}_{i}", i + 1
            taken.add(new)
        mapping[vi.name] = new
    return mapping


def tf_safe_input_names(model: onnx.ModelProto, names: dict[str, str] | None = None) -> onnx.ModelProto:
    """Rename graph inputs as ``names`` (default: :func:`signature_input_names`) says.

    The old name is kept inside the graph by an ``Identity`` from the new input, so node inputs,
    subgraphs and an input that is also an output need no rewriting.
    """
    names = signature_input_names(model) if names is None else names
    renames = {old: new for old, new in names.items() if old != new}
    if not renames:
        return model
    import onnx
    import onnx.helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        if vi.name in renames:
            vi.name = renames[vi.name]
    identities = [
        onnx.helper.make_node("Identity", [new], [old], name=f"xframe_input_{new}") for old, new in renames.items()
    ]
    nodes = identities + list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def lower_for_onnx_tf(
    model: onnx.ModelProto, *, max_opset: int = LAST_SUPPORTED_OPSET, held_apart: Sequence[onnx.ValueInfoProto] = ()
) -> onnx.ModelProto:
    """All rewrites, in order: inline local functions, cap the opset, TF-safe input names.

    The input model is not modified. Input names follow :func:`signature_input_names` of the
    model as given, so callers can map their feeds from the original model. ``held_apart``:
    initializers taken out of the graph (weights held elsewhere), declared as graph inputs while
    the opset converter runs, which otherwise rejects their uses as undefined.
    """
    names = signature_input_names(model)
    model = inline_functions(model)
    model = _without_inputs(cap_opset(_with_inputs(model, held_apart), max_opset), {i.name for i in held_apart})
    return tf_safe_input_names(model, names)


def _with_inputs(model: onnx.ModelProto, inputs: Sequence[onnx.ValueInfoProto]) -> onnx.ModelProto:
    if not inputs:
        return model
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.input.extend(inputs)
    return out


def _without_inputs(model: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    if not names:
        return model
    kept = [i for i in model.graph.input if i.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model
