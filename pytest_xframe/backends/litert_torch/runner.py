"""TFLite straight from the torch module: torch.export -> litert-torch -> LiteRT interpreter.

No ONNX on this route: ``litert_torch.convert`` exports the module with ``torch.export`` and
lowers it to a TFLite flatbuffer, which is written into the conversion cache and loaded back from
disk by ``ai_edge_litert.interpreter.Interpreter`` (the tflite backend's :class:`TfliteRunner`), as
a deployment would. The ONNX export a backend is handed only keys the cache entry: its bytes stand
for the module's graph and weights.

What litert-torch 0.10 does, measured:

* names: positional inputs become ``args_0``, ``args_1``, ...; keyword inputs keep their names.
  Outputs are named after the returned structure: a tensor or a tuple gives ``output_0``, ...,
  a dict its keys, nested levels joined with ``_`` (``{"a": (x, {"q": y})}`` -> ``a_0``,
  ``a_1_q``). The signature lists them sorted by name (``output_10`` before ``output_2``), and
  names can collide (``{"b_c": x, "b": {"c": y}}`` names both ``b_c``; the signature keeps one).
  The subgraph's outputs follow the order torch flattens the structure in, so outputs are matched
  by position, through the signature's tensor indices; a name collision is a ConversionError.
* dtypes: int64 and float64 tensors, inputs and outputs included, are narrowed to int32 and
  float32 (``enable_x64=False``, its default and what on-device runtimes support). Feeds are cast
  to the dtype the flatbuffer declares (ids that do not fit raise) and outputs back to torch's.
* dynamic dims: each ``Dim`` becomes one ``torch.export.Dim(name, min=, max=)`` (torch 2.13
  accepts min 0 and 1, provided the example size is >= 2: ``example_feeds`` picks such sizes).
  Most aten ops are lowered through a JAX bridge that needs static shapes, so such a conversion
  fails at the first of them (the bias add of ``nn.Linear``, a reshape, ...; convolutions,
  matmuls and tanh do convert with a dynamic batch), and torch.export itself refuses a ``Dim``
  the module specializes (an LSTM's sequence length). Then, and when a ``Dim`` cannot be dynamic
  (no size >= 2 in its range), the module is converted at static shapes: in ``prepare`` at the
  smallest shape (each ``Dim`` at its smallest size above 0), every other input shape the first
  time it is fed, each its own cache entry, so a later run reads it back. The report's route
  says which happened and why.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConversionError, first_line
from ...export.to_onnx import OnnxArtifact, example_feeds, torch_feeds
from ...identity import source_revision
from ...inputs.spec import Dim, InputSlot
from .. import Backend, BuildContext, Prepared, TorchSource, conversion_key, convert_and_load
from ..tflite.runner import FLATBUFFER_NAME, TfliteRunner, open_signature

NAME = "litert-torch"
KIND = "litert-torch"
META_NAME = "litert-torch.json"
#: distributions whose versions decide a conversion
DISTS = ("torch", "litert-torch", "litert-converter", "ai-edge-litert", "jax", "numpy")
_HINT = "try the tflite backend (it converts the ONNX export through onnx-tf), or replace the op in the module"

ShapeKey = tuple[tuple[int, ...], ...]


def _revision() -> str:
    return source_revision(Path(__file__))


def _inputs_key(slots: tuple[InputSlot, ...], positional: bool) -> str:
    """The slots' specs as they decide a conversion: names, dtypes, shapes and Dim ranges."""

    def entry(slot: InputSlot) -> list:
        if slot.spec is None:
            return [slot.name, str(slot.value.dtype), list(slot.value.shape)]
        shape = [[d.name, d.min, d.max] if isinstance(d, Dim) else d for d in slot.spec.shape]
        return [slot.name, str(np.dtype(slot.spec.dtype)), shape]

    return json.dumps({"positional": positional, "inputs": [entry(s) for s in slots]}, sort_keys=True)


def _smallest(slots: tuple[InputSlot, ...]) -> tuple[InputSlot, ...]:
    """The slots with each ``Dim`` pinned to its smallest size above 0: the quickest shape to
    convert, and hypothesis's simplest input (the first it tries), so that conversion is used."""

    def pin(d: Dim) -> Dim:
        size = min(max(d.min, 1), d.max)
        return Dim(d.name, size, size)

    return tuple(
        replace(s, spec=replace(s.spec, shape=tuple(pin(d) if isinstance(d, Dim) else d for d in s.spec.shape))) if s.spec is not None else s
        for s in slots
    )


def _shape_key(feeds: Mapping[str, np.ndarray], names: tuple[str, ...]) -> ShapeKey:
    """The inputs' shapes, in ``names`` order."""
    return tuple(tuple(int(n) for n in np.shape(feeds[name])) for name in names)


def _dynamic_dims(slots: tuple[InputSlot, ...]) -> tuple[dict[str, dict[int, Any]], str | None]:
    """torch.export dims by input name and axis from the slots' ``Dim``s (one object per name),
    or why the module must be converted at static shapes: a ``Dim`` that cannot be dynamic."""
    import torch

    made: dict[str, Any] = {}
    out: dict[str, dict[int, Any]] = {}
    for slot in slots:
        for axis, d in enumerate(slot.spec.shape if slot.spec is not None else ()):
            if not isinstance(d, Dim) or d.min == d.max:  # one size only: static
                continue
            if d.max < 2:
                return {}, f"Dim {d.name!r} ranges over [{d.min}, {d.max}], sizes torch.export specializes"
            made.setdefault(d.name, torch.export.Dim(d.name, min=d.min, max=d.max))
            out.setdefault(slot.name, {})[axis] = made[d.name]
    return out, None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """litert-torch prints progress bars on stdout, torch.export deprecation warnings."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _failing_op(text: str) -> str | None:
    """The aten op litert-torch was lowering when it failed, if it says."""
    found = re.search(r"Lowering not found: ([\w.]+)", text) or re.search(r"target=torch\.ops\.([\w.]+)", text)
    return found.group(1) if found else None


def _what_failed(text: str, limit: int = 250) -> str:
    """The line of a litert-torch or torch.export error that says what is wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or ["(no message)"]
    line = lines[0]
    for candidate in lines:
        if candidate.startswith("- "):  # torch.export: "Constraints violated (seq)!" then the why
            line = candidate[2:].split(". ")[0]
            break
        if candidate.startswith("error:"):  # MLIR verification: error: "<location>"(...): <what>
            line = candidate.rsplit("): ", 1)[-1]
            break
    return first_line(line, limit)


def _conversion_error(exc: BaseException, model_name: str, shapes: Mapping[str, list[int]]) -> ConversionError:
    text = str(exc)
    op = _failing_op(text)
    where = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
    if "Lowering not found" in text and op:
        summary = f"litert-torch has no lowering for {op}"
    else:
        summary = "litert-torch could not convert the module" + (f" (while lowering {op})" if op else "")
    return ConversionError.from_exception(
        exc,
        summary,
        op_type=op,
        model=model_name,
        backend=NAME,
        cause=f"{type(exc).__name__}: {_what_failed(text)} (converting at input shapes {where})",
        hint=_HINT,
    )


@dataclass
class _Converter:
    """Converts one module with litert-torch at given input values, into a cache entry."""

    source: TorchSource
    model_name: str

    def convert(self, feeds: Mapping[str, np.ndarray], dynamic: Mapping[str, dict[int, Any]] | None) -> Any:
        """``litert_torch.convert`` at ``feeds`` (their values are the sample, their shapes the
        static ones); quiet, and leaving the module's modes as they were."""
        import litert_torch

        names = [s.name for s in self.source.slots]
        tensors = self._tensors(feeds)
        args = tuple(tensors[n] for n in names) if self.source.positional else None
        kwargs = None if self.source.positional else tensors
        shapes: Any = None
        if dynamic:
            shapes = tuple(dynamic.get(n) for n in names) if self.source.positional else {n: dynamic.get(n) for n in names}
        modes = [(m, m.training) for m in self.source.model.modules()]
        try:
            with _quiet():
                return litert_torch.convert(self.source.model, args, kwargs, dynamic_shapes=shapes)
        finally:
            for module, mode in modes:
                module.training = mode

    def _tensors(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return torch_feeds(self.source.model, feeds, [s.name for s in self.source.slots])

    def outputs(self, feeds: Mapping[str, np.ndarray]) -> list[list[str]]:
        """torch's flattened output names and dtypes, in order (the pipeline's names)."""
        from ...export.outputs import torch_outputs

        names = [s.name for s in self.source.slots]
        return [[name, value.dtype.str] for name, value in torch_outputs(self.source.model, feeds, names, self.source.positional).items()]

    def build(self, out: Path, static: Mapping[str, np.ndarray], dynamic: Mapping[str, np.ndarray] | None = None) -> None:
        """Convert into ``out``: with the slots' ``Dim``s dynamic, at the ``dynamic`` sample, when one
        is given and the ``Dim``s allow; else, or when that fails, at the shapes of ``static``."""
        dims, why_static = _dynamic_dims(self.source.slots) if dynamic is not None else ({}, None)
        meta: dict[str, Any] = {"mode": "static", "why_static": why_static}
        edge = None
        if dims and dynamic is not None:
            try:
                edge, feeds = self.convert(dynamic, dims), dynamic
                meta.update(mode="dynamic", dims=list(dict.fromkeys(d.__name__ for axes in dims.values() for d in axes.values())))
            except Exception as exc:  # noqa: BLE001 - then at static shapes, which says whether it converts at all
                op = _failing_op(str(exc))
                meta["why_static"] = f"dynamic dims failed at {op}" if op else f"dynamic dims failed: {_what_failed(str(exc), 90)}"
        if edge is None:
            feeds = static
            if meta["why_static"]:
                meta["mode"] = "per-shape"
            try:
                edge = self.convert(static, None)
            except Exception as exc:  # litert-torch and torch.export raise many types
                raise _conversion_error(exc, self.model_name, {n: list(np.shape(v)) for n, v in static.items()}) from exc
        meta.update(shapes={s.name: list(np.shape(feeds[s.name])) for s in self.source.slots}, outputs=self.outputs(feeds))
        with _quiet():
            edge.export(str(out / FLATBUFFER_NAME))
        (out / META_NAME).write_text(json.dumps(meta, indent=1))


def load(
    path: Path, slots: tuple[InputSlot, ...], positional: bool, model_name: str | None = None, threads: int | None = None
) -> tuple[TfliteRunner, dict]:
    """The runner on a converted entry, inputs and outputs mapped to the pipeline's names, and the
    entry's metadata."""
    meta = json.loads((path / META_NAME).read_text())
    interpreter, signature = open_signature(path / FLATBUFFER_NAME, threads)
    input_details = signature.get_input_details()
    keys = {s.name: f"args_{i}" if positional else s.name for i, s in enumerate(slots)}
    inputs = {name: (key, np.dtype(input_details[key]["dtype"])) for name, key in keys.items() if key in input_details}
    # outputs by position: the subgraph keeps torch's order; the signature sorts and may drop names
    key_of = {d["index"]: key for key, d in signature.get_output_details().items()}
    indices = [d["index"] for d in interpreter.get_output_details()]
    torch_outputs = meta["outputs"]
    problem = None
    if set(input_details) - {key for key, _ in inputs.values()}:
        problem = f"signature inputs {sorted(input_details)}, module inputs {list(keys)}"
    elif len(indices) != len(torch_outputs):
        problem = f"{len(indices)} flatbuffer outputs for torch's {len(torch_outputs)} ({', '.join(n for n, _ in torch_outputs)})"
    elif any(i not in key_of for i in indices):
        problem = (
            f"outputs {', '.join(n for (n, _), i in zip(torch_outputs, indices) if i not in key_of)} have no signature name: "
            f"litert-torch's names collide ({', '.join(sorted(key_of.values()))})"
        )
    if problem:
        raise ConversionError(
            "the litert-torch flatbuffer's signature does not match the module's inputs and outputs",
            model=model_name,
            backend=NAME,
            cause=problem,
            hint="outputs: keep names distinct once nested keys are joined with '_'; or try the tflite backend",
        )
    outputs = {key_of[i]: (name, np.dtype(dtype)) for i, (name, dtype) in zip(indices, torch_outputs)}
    return TfliteRunner(interpreter, signature, inputs, outputs), meta


@dataclass
class PerShapeRunner:
    """One static-shape flatbuffer per set of input shapes, converted the first time it is fed."""

    names: tuple[str, ...]
    #: shapes -> (runner, its cache entry directory)
    runners: dict[ShapeKey, tuple[TfliteRunner, Path]]
    convert: Callable[[Mapping[str, np.ndarray]], tuple[TfliteRunner, Path]]

    def _entry(self, feeds: Mapping[str, np.ndarray]) -> tuple[TfliteRunner, Path]:
        shape = _shape_key(feeds, self.names)
        if shape not in self.runners:
            self.runners[shape] = self.convert(feeds)
        return self.runners[shape]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._entry(feeds)[0].run(feeds)

    def converted_path_for(self, feeds: Mapping[str, np.ndarray]) -> Path:
        """The flatbuffer that ran these inputs: what a failing case keeps."""
        return self._entry(feeds)[1]


def _route(meta: dict) -> str:
    if meta["mode"] == "dynamic":
        return f"torch.export (dynamic {', '.join(meta['dims'])}) -> litert-torch"
    if meta["mode"] == "per-shape":
        return f"torch.export per input shape -> litert-torch ({meta['why_static']})"
    return "torch.export -> litert-torch"


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    # no size limit to check: over 2 GB, litert-torch's converter places the weights after the
    # flatbuffer (buffer offsets) by itself (measured: a 2.14 GiB embedding converted and ran)
    from ..conversion import import_converter

    if ctx.torch is None:
        raise ConversionError(
            "the litert-torch backend converts the torch module, and none was passed",
            model=ctx.model_name,
            backend=NAME,
            hint="run it through xframe.check, which passes the module",
        )
    import_converter(
        lambda: importlib.import_module("litert_torch"), name="litert-torch", backend=NAME, model_name=ctx.model_name, hint=BACKEND.install_hint
    )
    source = ctx.torch
    converter = _Converter(source, ctx.model_name)
    key = {**conversion_key(artifact, "litert-torch", _revision(), DISTS), "inputs": _inputs_key(source.slots, source.positional)}
    names = tuple(s.name for s in source.slots)

    def at_shape(drawn: Mapping[str, np.ndarray]) -> tuple[TfliteRunner, Path]:
        shape_key = {**key, "shapes": json.dumps(_shape_key(drawn, names))}
        entry = ctx.cache.get_or_build(KIND, shape_key, lambda out: converter.build(out, drawn))
        return load(entry.path, source.slots, source.positional, ctx.model_name, ctx.threads)[0], entry.path

    def load_entry(path: Path) -> TfliteRunner | PerShapeRunner:
        runner, meta = load(path, source.slots, source.positional, ctx.model_name, ctx.threads)
        if meta["mode"] != "per-shape":
            return runner
        return PerShapeRunner(names, {tuple(tuple(meta["shapes"][n]) for n in names): (runner, path)}, at_shape)

    # dynamic at the export's example (sizes >= 2); failing that, static at the smallest shape
    build = partial(converter.build, static=example_feeds(_smallest(source.slots)), dynamic=example_feeds(source.slots))
    prepared = convert_and_load(ctx, KIND, key, build, load_entry)
    assert prepared.converted_path is not None
    return replace(prepared, route=_route(json.loads((prepared.converted_path / META_NAME).read_text())))


BACKEND = Backend(
    name=NAME,
    prepare=prepare,
    # torch -> TFLite by litert-torch, no ONNX: the export only keys its cache entry; no load_case:
    # a case directory does not hold the torch module, so a failure is replayed by rerunning its test
    modules=("litert_torch", "ai_edge_litert"),
    extra="litert-torch",
    exports=(("dynamo", None), ("torchscript", 17)),
    framework=("litert_torch",),
    source="torch",
    distributions=DISTS,
)
