"""ONNX -> TensorFlow SavedModel through onnx-tf (with :mod:`.onnx_tf_compat` and :mod:`.lowering`).

The SavedModel's ``serving_default`` signature takes the graph inputs as keyword arguments and
returns a dict keyed by the ONNX output names. Input names that are not Python identifiers
(``input.1``, ``onnx::Gemm_0``) cannot be TensorFlow argument names, so they are renamed; use
:func:`signature_input_names` / :func:`signature_feeds` to map ONNX feeds onto the signature.
"""

from __future__ import annotations

import pathlib
import re
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import ConversionError
from ..conversion import import_converter
from .lowering import LAST_SUPPORTED_OPSET, lower_for_onnx_tf, signature_input_names

if TYPE_CHECKING:
    import onnx

__all__ = [
    "BACKEND",
    "LAST_SUPPORTED_OPSET",
    "convert",
    "convert_file",
    "converter_revision",
    "signature_feeds",
    "signature_input_names",
]

BACKEND = "tensorflow (onnx-tf)"
_INSTALL_HINT = "pip install pytest-xframe[tf]"
_OTHER_ROUTES = "try backends=['onnx2tf'] or ['tflite'], or check against onnxruntime only"
#: the exports worth trying when one fails to convert (the errors name them; ``check`` drops those tried)
_ROUTES: tuple[tuple[str, int | None], ...] = (("torchscript", 13), ("torchscript", 17), ("dynamo", None))
_ALTERNATIVES = _OTHER_ROUTES
#: weights above which a conversion ends with a garbage collection (see :func:`convert_file`)
COLLECT_BYTES = 64 * 2**20
_NOT_IMPLEMENTED = re.compile(r"(\w+)(?: version (\d+))? is not implemented")


def signature_feeds(onnx_model: onnx.ModelProto, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """Rename ``{onnx_input_name: array}`` to the keyword names of ``serving_default``."""
    names = signature_input_names(onnx_model)
    return {names.get(name, name): value for name, value in feeds.items()}


def _load_backend(model_name: str) -> Any:
    """Install the compatibility layer and return ``onnx_tf.backend``; BackendUnavailable if absent."""

    def importer() -> Any:
        import tensorflow  # noqa: F401

        from . import onnx_tf_compat

        onnx_tf_compat.install()  # fixes onnx.mapping etc., then imports onnx_tf
        import onnx_tf.backend

        return onnx_tf.backend

    return import_converter(importer, name="TensorFlow / onnx-tf", backend=BACKEND, model_name=model_name, hint=_INSTALL_HINT)


def converter_revision() -> str:
    """A short hash of this converter's own code (compat layer, lowering, this module).

    Put it in the cache key of converted SavedModels: a changed handler then rebuilds them.
    """
    from ...identity import source_revision

    here = pathlib.Path(__file__).resolve().parent
    return source_revision(here / "onnx_tf.py", here / "onnx_tf_compat", here / "lowering.py", here.parent / "onnx_weights.py")


def _opset_of(model: onnx.ModelProto, domain: str) -> int | None:
    for entry in model.opset_import:
        if entry.domain == domain or (domain == "" and entry.domain == "ai.onnx"):
            return int(entry.version)
    return None


def _since_version(op_type: str, domain: str, opset: int | None) -> int | None:
    """The op version in effect at ``opset`` (e.g. Unsqueeze at opset 17 -> 13)."""
    if opset is None:
        return None
    from onnx import defs

    try:
        return int(defs.get_schema(op_type, opset, domain).since_version)
    except Exception:  # noqa: BLE001 - unknown op / domain
        return None


def _find_node(model: onnx.ModelProto, op_type: str) -> tuple[str, str] | None:
    """(name, domain) of the first node of ``op_type``, subgraphs included."""
    from onnx import AttributeProto

    def walk(graph: Any) -> tuple[str, str] | None:
        for node in graph.node:
            if node.op_type == op_type:
                return node.name, node.domain
            for attr in node.attribute:
                subs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
                for sub in subs:
                    found = walk(sub)
                    if found:
                        return found
        return None

    return walk(model.graph)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _not_implemented(exc: BaseException, chain: list[BaseException]) -> bool:
    return _NOT_IMPLEMENTED.search(str(exc)) is not None or any(
        type(e).__name__ == "BackendIsNotSupposedToImplementIt" or isinstance(e, NotImplementedError) for e in chain
    )


def _autograph_may_help(exc: BaseException) -> bool:
    """Whether a failure traced without AutoGraph is worth tracing again with it: not when a
    handler or an optional module is missing, which AutoGraph cannot change."""
    from . import onnx_tf_compat

    chain = _chain(exc)
    return not _not_implemented(exc, chain) and not any(isinstance(e, onnx_tf_compat.MissingOptionalModule) for e in chain)


def _conversion_error(exc: BaseException, model: onnx.ModelProto, model_name: str) -> ConversionError:
    """A short ConversionError naming op, op version, model opset and node; traceback in details."""
    from . import onnx_tf_compat

    details = "".join(traceback.format_exception(exc))
    chain = _chain(exc)
    op_type = node_name = None
    domain = ""
    failed = onnx_tf_compat.last_failed_node()
    if failed is not None:
        op_type, node_name, domain = failed
    message = str(exc)
    match = _NOT_IMPLEMENTED.search(message)
    if op_type is None and match:
        op_type = match.group(1)
        found = _find_node(model, op_type)
        if found:
            node_name, domain = found
    opset = _opset_of(model, domain)
    version = _since_version(op_type, domain, opset) if op_type else None
    if version is None and match and match.group(2):
        version = int(match.group(2))

    missing = next((e for e in chain if isinstance(e, onnx_tf_compat.MissingOptionalModule)), None)
    not_implemented = _not_implemented(exc, chain)
    op_label = f"{op_type}-{version}" if op_type and version else (op_type or "an op")
    where = f"node '{node_name}', " if node_name else ""
    opset_text = f"model opset {domain or 'ai.onnx'} {opset}" if opset is not None else "model opset unknown"
    if missing is not None:
        return onnx_tf_compat.MissingOptionalModule(
            missing.op_type or op_type or "?",
            str(missing.name),
            missing.distribution,
            op_version=version,
            node_name=node_name,
            model=model_name,
            details=details,
        )
    if not_implemented:
        summary = f"onnx-tf does not implement {op_label} ({where}{opset_text})"
        cause = _first_line(message)
        hint = _not_implemented_hint(op_type)
    else:
        summary = f"onnx-tf failed converting {op_label} ({where}{opset_text})"
        cause = f"{type(exc).__name__}: {_first_line(message)}"
        hint = _ALTERNATIVES
    routes = () if "at any opset" in hint else _ROUTES  # no other export helps an op without any handler
    return ConversionError.from_exception(
        exc, summary, op_type=op_type, op_version=version, node_name=node_name, model=model_name, backend=BACKEND, cause=cause, hint=hint,
        routes=routes,
    )


def _not_implemented_hint(op_type: str | None) -> str:
    """Point at an older op version when onnx-tf has one (the exports to try are the error's
    ``routes``), else at other backends."""
    if op_type:
        try:
            from onnx_tf.common.handler_helper import get_all_backend_handlers

            handler = get_all_backend_handlers({"": LAST_SUPPORTED_OPSET})[""].get(op_type)
        except Exception:  # noqa: BLE001 - only improves the hint
            handler = None
        versions = sorted(handler.get_versions()) if handler is not None else []
        if not versions:
            return f"{op_type} has no onnx-tf handler at any opset: avoid it in the model, {_OTHER_ROUTES}"
        return f"onnx-tf has {op_type} versions {versions} (an export at another opset may use one); " + _ALTERNATIVES
    return _ALTERNATIVES


def _first_line(message: str) -> str:
    """The useful line of a (possibly AutoGraph-wrapped) error message, at most 300 characters."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    line = lines[-1] if lines[0].startswith("in user code") else lines[0]
    return line if len(line) <= 300 else line[:297] + "..."


def convert(onnx_model: onnx.ModelProto, out_dir: pathlib.Path, *, model_name: str) -> None:
    """Convert ``onnx_model`` to a TensorFlow SavedModel in ``out_dir``.

    Large floating-point weights become the SavedModel's variables (see :func:`convert_file`).
    Raises BackendUnavailable when tensorflow / onnx-tf are not installed, ConversionError (op,
    op version, node, what to try; full traceback in ``details``) when onnx-tf fails.
    """
    from ..onnx_weights import split_in_memory

    _convert_split(split_in_memory(onnx_model), out_dir, model_name)


def convert_file(path: pathlib.Path, out_dir: pathlib.Path, *, model_name: str, scratch: pathlib.Path) -> None:
    """Convert the ONNX model at ``path`` (and its external data) to a SavedModel in ``out_dir``.

    Its large floating-point weights are read from their files one at a time, each into a
    ``tf.Variable``: the SavedModel keeps them in ``variables/``, outside the GraphDef, so
    protobuf's 2 GiB limit applies only to what stays a graph constant (checked first:
    TooLargeError), and the ONNX protobuf is never held with its weights while they are
    converted. Weights inline in the .onnx are written to a file under ``scratch`` first.
    """
    import tempfile

    from ..onnx_weights import split_weights

    _load_backend(model_name)  # a missing TensorFlow is a skip before any work
    with tempfile.TemporaryDirectory(prefix="xframe-weights-", dir=scratch) as weights_dir:
        split = split_weights(path, pathlib.Path(weights_dir))
        refuse_graph_constants(split.model, model_name)
        _convert_split(split, out_dir, model_name)
    if split.weight_bytes >= COLLECT_BYTES:
        import gc

        gc.collect()  # onnx-tf's module and traced call form cycles: free their variables before the SavedModel is loaded


def refuse_graph_constants(model: onnx.ModelProto, model_name: str) -> None:
    """TooLargeError when the tensors that stay graph constants pass protobuf's limit (the
    SavedModel's GraphDef is one message)."""
    from ...errors import shown_bytes
    from ..conversion import PROTOBUF_LIMIT, refuse_over
    from ..onnx_weights import VARIABLE_BYTES, inline_constant_bytes

    refuse_over(
        inline_constant_bytes(model), PROTOBUF_LIMIT, what="graph constants", converter="onnx-tf", backend=BACKEND,
        model_name=model_name, limit_name="protobuf's limit on the SavedModel's GraphDef",
        cause=f"onnx-tf keeps integer tensors, Constant nodes and floating-point tensors under {shown_bytes(VARIABLE_BYTES)} "
        "in the graph (larger floating-point weights become variables, outside it)",
    )


def _variable(weight: Any) -> Any:
    """A non-trainable ``tf.Variable`` holding ``weight`` (``StoredTensor`` / ``HeldTensor``)."""
    import tensorflow as tf

    return tf.Variable(weight.read(), trainable=False, name=re.sub(r"[^A-Za-z0-9_.]", "_", weight.name) or "w")


def _convert_split(split: Any, out_dir: pathlib.Path, model_name: str) -> None:
    """onnx-tf on the graph of ``split`` (lowered first), its weights added as variables."""
    _load_backend(model_name)
    from . import onnx_tf_compat

    try:
        model = lower_for_onnx_tf(split.model, held_apart=split.weight_inputs())
    except Exception as exc:
        raise ConversionError.from_exception(
            exc,
            "could not prepare the ONNX model for onnx-tf",
            model=model_name,
            backend=BACKEND,
            cause=f"{type(exc).__name__}: {_first_line(str(exc))}",
            hint=_ALTERNATIVES,
            routes=_ROUTES,
        ) from exc

    def export() -> None:
        rep = onnx_tf_compat.prepare_unchecked(model)
        # largest first: each is held twice while it is copied in (the array, then the
        # variable), and the space a large one frees is reused by the smaller ones after it
        largest_first = sorted(split.weights, key=lambda w: -w.length)
        onnx_tf_compat.hold_as_variables(rep, ((weight.name, _variable(weight)) for weight in largest_first))
        rep.export_graph(str(out_dir))

    onnx_tf_compat.reset_failed_node()
    try:
        try:
            export()
        except Exception as exc:
            if not _autograph_may_help(exc):
                raise
            onnx_tf_compat.reset_failed_node()
            with onnx_tf_compat.with_autograph():  # e.g. NonMaxSuppression's loop over a tensor
                export()
    except Exception as exc:
        raise _conversion_error(exc, model, model_name) from exc
    finally:
        onnx_tf_compat.reset_failed_node()
