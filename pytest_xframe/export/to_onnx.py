"""torch -> ONNX export with either exporter, dynamic axes from ``Dim`` and stable names."""

from __future__ import annotations

import importlib.util
import time
import traceback
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import USER_CODE_FAILURES, ExportError, describe_with_cause, disk_full
from ..inputs.spec import Dim, InputSlot
from ..quiet import captured


@dataclass(frozen=True)
class OnnxArtifact:
    """An exported ONNX model on disk and how it was made."""

    path: Path
    exporter: str
    opset: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    seconds: float
    #: files beside ``path`` holding its weights (ONNX external data), by the names the model
    #: records; empty when the weights are inside the .onnx file
    external_data: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.exporter}, opset {self.opset}" + (", external data" if self.external_data else "")

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the model: the .onnx and its external data, which must stay beside it."""
        return (self.path, *(self.path.parent / name for name in self.external_data))


#: protobuf cannot serialize a message over 2 GiB, so an ONNX model whose weights come near it
#: keeps them in a file beside the .onnx (external data). Weights above this many bytes are
#: exported that way, well under the limit: the dynamo exporter then streams each tensor to the
#: file, where an inline model is built as one protobuf and serialized (two more copies of the
#: weights at once: 2.3x a 0.39 GiB model's weights measured), and converters read the weights
#: one tensor at a time. Module-level so tests can lower it and check the path on a tiny model.
EXTERNAL_DATA_BYTES = 2**28
#: the name of the single external data file; the .onnx records it relative to itself
EXTERNAL_DATA_NAME = "model.onnx.data"


def weight_bytes(model: Any) -> int:
    """Bytes of the model's parameters and buffers (each shared tensor once)."""
    seen: dict[int, int] = {}
    for t in (*model.parameters(), *model.buffers()):
        seen.setdefault(t.data_ptr(), t.numel() * t.element_size())
    return sum(seen.values())


def external_files(proto: Any) -> tuple[str, ...]:
    """The external data files a model (loaded without them) refers to, in order of first use."""
    from onnx import AttributeProto, TensorProto

    locations: dict[str, None] = {}

    def note(tensor: Any) -> None:
        if tensor.data_location == TensorProto.EXTERNAL:
            locations.setdefault(next(e.value for e in tensor.external_data if e.key == "location"), None)

    def walk(graph: Any) -> None:
        for tensor in graph.initializer:
            note(tensor)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    note(attr.t)
                for sub in [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs):
                    walk(sub)

    walk(proto.graph)
    return tuple(locations)


def _to_external_data(path: Path) -> None:
    """Move the weights of an inline export into ``EXTERNAL_DATA_NAME`` (the TorchScript exporter
    does so by itself only above protobuf's limit, one file per tensor)."""
    import onnx

    proto = onnx.load(str(path))
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=EXTERNAL_DATA_NAME, size_threshold=1024)


def example_feeds(slots: tuple[InputSlot, ...]) -> dict[str, np.ndarray]:
    """Concrete export inputs; distinct ``Dim``s get distinct sizes so no exporter equates them."""
    sizes: dict[str, int] = {}
    for slot in slots:
        for dim in slot.spec.dims if slot.spec else ():
            if dim.name in sizes:
                continue
            taken = set(sizes.values())
            start = max(dim.min, 2) if dim.max >= 2 else dim.min
            size = next((s for s in range(start, dim.max + 1) if s not in taken), min(start, dim.max))
            sizes[dim.name] = size
    feeds = {}
    for slot in slots:
        if slot.spec is None:
            feeds[slot.name] = slot.value
            continue
        shape = tuple(sizes[d.name] if isinstance(d, Dim) else d for d in slot.spec.shape)
        lo, hi = slot.spec.bounds
        rng = np.random.default_rng(0)
        if np.dtype(slot.spec.dtype).kind in "iub":
            feeds[slot.name] = rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(slot.spec.dtype)
        else:
            feeds[slot.name] = rng.uniform(lo, hi, size=shape).astype(slot.spec.dtype)
    return feeds


def model_device(model: Any) -> Any:
    """Where the model's weights live (CPU when it has none): inputs must go there too."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def torch_feeds(model: Any, feeds: Mapping[str, np.ndarray], names: Iterable[str]) -> dict[str, Any]:
    """``feeds[name]`` for each of ``names`` as a torch tensor on the model's device, each a copy of
    its own: a ``forward`` that writes its input in place (``x.mul_(2)``) must leave the drawn input
    as it was for the next run and every backend."""
    import torch

    device = model_device(model)
    return {n: torch.from_numpy(np.array(feeds[n], copy=True, order="C")).to(device) for n in names}


def dynamic_axes(slots: tuple[InputSlot, ...]) -> dict[str, dict[int, str]]:
    return {
        slot.name: {axis: d.name for axis, d in enumerate(slot.spec.shape) if isinstance(d, Dim)}
        for slot in slots
        if slot.spec is not None and slot.spec.dims
    }


def export(
    model: Any,
    slots: tuple[InputSlot, ...],
    output_names: tuple[str, ...],
    *,
    exporter: str,
    opset: int | None,
    out_dir: Path,
    model_name: str,
    positional: bool,
    example: Mapping[str, np.ndarray] | None = None,
) -> OnnxArtifact:
    """Export ``model`` to ``out_dir/model.onnx``; raise ``ExportError`` with a short cause.

    ``example``: the concrete inputs to trace with, where values drawn from the spec would not do
    (a loop's decode graph, whose cache and mask lengths must agree); default ``example_feeds``."""
    import torch

    _require_exporter(exporter, model_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    names = [s.name for s in slots]
    feeds = torch_feeds(model, example if example is not None else example_feeds(slots), names)
    call = {
        "args": tuple(feeds[n] for n in names) if positional else (),
        "kwargs": None if positional else {n: feeds[n] for n in names},
        "input_names": names,
        "output_names": list(output_names),
        "dynamic_axes": dynamic_axes(slots) or None,
        "opset_version": opset,
        "dynamo": exporter == "dynamo",
        "external_data": weight_bytes(model) > EXTERNAL_DATA_BYTES,
    }
    start = time.perf_counter()
    try:
        with captured() as printed:  # the exporters' graph dumps and logs: into the error, not the report
            proto = _run_exporter(torch, model, path, call)
    except USER_CODE_FAILURES as exc:  # the exporters (and forward, which they run) raise many unrelated types
        full = disk_full(exc, out_dir, weight_bytes(model), doing=f"exporting with the {exporter} exporter", model=model_name)
        if full is not None:
            raise full from exc
        raise ExportError(
            f"torch.onnx.export failed with the {exporter} exporter" + (f" at opset {opset}" if opset else ""),
            model=model_name,
            cause=describe_with_cause(exc),
            hint=_EXPORT_HINT,
            routes=((_other_exporter(exporter), None),),
            details=traceback.format_exc() + printed.section(),
        ) from exc
    seconds = time.perf_counter() - start
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset or 0)
    _require_opset(exporter, opset, opset_used, model_name)
    return OnnxArtifact(
        path=path,
        exporter=exporter,
        opset=opset_used,
        input_names=tuple(i.name for i in proto.graph.input),
        output_names=tuple(o.name for o in proto.graph.output),
        seconds=seconds,
        external_data=external_files(proto),
    )


def _require_exporter(exporter: str, model_name: str) -> None:
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise ExportError(
            "the dynamo exporter needs onnxscript, which is not installed",
            model=model_name,
            hint="pip install 'pytest-xframe[dynamo]'",
            routes=(("torchscript", None),),
        )


def _run_exporter(torch: Any, model: Any, path: Path, call: dict[str, Any]) -> Any:
    """torch.onnx.export, quietly; the ONNX graph without its weights (names and opset are all we
    read, so the weights stay on disk), with large weights moved to external data."""
    import onnx

    args = call.pop("args")
    with warnings.catch_warnings():  # what it prints goes where ``export``'s captured() sends it
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), verbose=False, **call)
    proto = onnx.load(str(path), load_external_data=False)
    if call["external_data"] and not external_files(proto):
        _to_external_data(path)
        proto = onnx.load(str(path), load_external_data=False)
    return proto


def _require_opset(exporter: str, opset: int | None, opset_used: int, model_name: str) -> None:
    if opset is not None and opset_used != opset:  # dynamo keeps its own opset when conversion fails
        raise ExportError(
            f"the {exporter} exporter produced opset {opset_used}, not the requested opset {opset}",
            model=model_name,
            cause="torch.onnx could not convert the model to the requested opset and kept its own",
            routes=((exporter, opset_used), (_other_exporter(exporter), opset)),
        )


_EXPORT_HINT = "make forward free of data-dependent Python control flow; or check the model with torch.onnx.export directly"


def _other_exporter(exporter: str) -> str:
    return "torchscript" if exporter == "dynamo" else "dynamo"
