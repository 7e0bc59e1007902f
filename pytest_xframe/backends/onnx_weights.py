"""An ONNX model's weights apart from its graph, read one tensor at a time from their files.

A converter that loads a whole ONNX model holds every weight in the protobuf, and each rewrite of
the graph (inlining, opset conversion, renaming) copies them again. :func:`split_weights` keeps
the large floating-point initializers out of the graph instead: the rewrites then copy a graph of
a few MiB, and the converter reads each weight from its file when it makes the framework's
variable, so at most one tensor is held twice. Weights inline in the .onnx are first written to
a file of their own in a scratch directory (one tensor at a time), so the model's protobuf can be
freed before the variables are made.

Pure onnx + numpy: no framework is imported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx

#: a floating-point initializer of at least this many bytes is kept out of the graph (a variable
#: on the TensorFlow side); smaller ones (scales, epsilons, shapes) stay constants, which
#: handlers may read as static values. Module-level so tests can move it.
VARIABLE_BYTES = 1024
#: the file :func:`split_weights` writes inline weights to, in its scratch directory
INLINE_WEIGHTS_NAME = "weights.bin"


@dataclass(frozen=True)
class StoredTensor:
    """One initializer's bytes in a file: where, and how to read them back."""

    name: str
    elem_type: int
    dims: tuple[int, ...]
    file: Path
    offset: int
    length: int

    def read(self) -> np.ndarray:
        """The tensor, read from its file into a fresh array."""
        import numpy as np
        import onnx.helper

        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(self.elem_type))
        count = self.length // dtype.itemsize
        return np.fromfile(self.file, dtype=dtype, count=count, offset=self.offset).reshape(self.dims)


@dataclass(frozen=True)
class HeldTensor:
    """One initializer already in memory (a model handed over as a protobuf)."""

    name: str
    elem_type: int
    value: np.ndarray

    @property
    def length(self) -> int:
        return int(self.value.nbytes)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    def read(self) -> np.ndarray:
        return self.value


@dataclass
class SplitModel:
    """A model's graph without its large weights, and those weights (on disk, or in memory)."""

    model: onnx.ModelProto
    weights: list[StoredTensor] | list[HeldTensor]

    @property
    def weight_bytes(self) -> int:
        return sum(w.length for w in self.weights)

    def weight_inputs(self) -> list[onnx.ValueInfoProto]:
        """The weights as graph-input declarations (name, type, shape)."""
        from onnx import helper

        return [helper.make_tensor_value_info(w.name, w.elem_type, list(w.dims)) for w in self.weights]


def _is_large_float(tensor: Any, min_bytes: int) -> bool:
    from onnx import TensorProto

    floats = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)
    return tensor.data_type in floats and tensor_bytes(tensor) >= min_bytes


def tensor_bytes(tensor: Any) -> int:
    """Bytes of a TensorProto's values, whether inline or external (without reading them)."""
    import math

    import numpy as np
    import onnx.helper

    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):  # strings and undefined types: no fixed size
        return len(tensor.raw_data) + sum(len(s) for s in tensor.string_data)
    return math.prod(tensor.dims) * itemsize


def _external(tensor: Any, base: Path) -> StoredTensor:
    """Where an external initializer's bytes are (offset and length default to the whole file)."""
    info = {e.key: e.value for e in tensor.external_data}
    file = base / info["location"]
    offset = int(info.get("offset", 0))
    length = int(info["length"]) if "length" in info else file.stat().st_size - offset
    return StoredTensor(tensor.name, tensor.data_type, tuple(tensor.dims), file, offset, length)


def _write_inline(tensors: list[Any], scratch: Path) -> list[StoredTensor]:
    """Append each inline tensor's bytes to ``scratch/weights.bin`` (one tensor in memory at a
    time) and clear it from the protobuf."""
    from onnx import numpy_helper

    if not tensors:
        return []
    scratch.mkdir(parents=True, exist_ok=True)
    file = scratch / INLINE_WEIGHTS_NAME
    stored = []
    with open(file, "ab") as out:
        for tensor in tensors:
            offset = out.tell()
            numpy_helper.to_array(tensor).tofile(out)
            stored.append(StoredTensor(tensor.name, tensor.data_type, tuple(tensor.dims), file, offset, out.tell() - offset))
            tensor.ClearField("raw_data")
    return stored


def split_weights(path: Path, scratch: Path, min_bytes: int | None = None) -> SplitModel:
    """The model at ``path`` with its large floating-point initializers taken out of the main
    graph, each as a :class:`StoredTensor` (external data stays where it is; inline data goes to
    ``scratch``). Other external tensors (subgraphs, small ones) are loaded into the graph."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    min_bytes = VARIABLE_BYTES if min_bytes is None else min_bytes
    full = onnx.load(str(path), load_external_data=False)
    base = Path(path).parent
    large = [t for t in full.graph.initializer if _is_large_float(t, min_bytes)]
    weights = [_external(t, base) for t in large if uses_external_data(t)]
    weights += _write_inline([t for t in large if not uses_external_data(t)], scratch)
    model = onnx_copy_without(full, {w.name for w in weights})
    del full, large  # frees the protobuf that held the inline weights
    load_external_data_for_model(model, str(base))
    return SplitModel(model, weights)


def split_in_memory(full: onnx.ModelProto, min_bytes: int | None = None) -> SplitModel:
    """:func:`split_weights` for a model already in memory: the large floating-point initializers
    as arrays beside a copy of the graph without them (``full`` is not changed)."""
    from onnx import numpy_helper

    min_bytes = VARIABLE_BYTES if min_bytes is None else min_bytes
    held = [HeldTensor(t.name, t.data_type, numpy_helper.to_array(t)) for t in full.graph.initializer if _is_large_float(t, min_bytes)]
    model = onnx_copy_without(full, {h.name for h in held})
    return SplitModel(model, held)


def onnx_copy_without(full: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """A copy of ``full`` without the initializers (and graph inputs) called ``names``. A copy, so
    that the protobuf which held the (cleared) inline weights can be freed whole."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(full)
    for field in (model.graph.initializer, model.graph.input):
        for i in reversed(range(len(field))):
            if field[i].name in names:
                del field[i]
    return model


def onnx_structure(path: Path) -> onnx.ModelProto:
    """The model at ``path`` without its initializers' values: names, inputs, outputs and nodes,
    for mapping a converted model's signature (a copy of a few MiB, not of the weights)."""
    import onnx

    full = onnx.load(str(path), load_external_data=False)
    for tensor in full.graph.initializer:
        tensor.ClearField("raw_data")
    model = onnx.ModelProto()
    model.CopyFrom(full)
    return model


def inline_constant_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the tensors a model holds in its graph (initializers and Constant values, in
    every subgraph): what a converter that keeps them as graph constants must serialize."""
    from onnx import AttributeProto

    def walk(graph: Any) -> int:
        total = sum(tensor_bytes(t) for t in graph.initializer)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    total += tensor_bytes(attr.t)
                for sub in [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs):
                    total += walk(sub)
        return total

    return walk(model.graph)


def file_bytes(paths: tuple[Path, ...]) -> int:
    """Total size of files on disk."""
    return sum(os.stat(p).st_size for p in paths)
