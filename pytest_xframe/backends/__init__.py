"""Backends: one runner per framework behind one small protocol, and the registry of them.

A backend says which packages it needs (checked without importing them), which ONNX export it
prefers (its converter's coverage decides), and how to build a runner from an ONNX model. The
runner itself only maps named numpy inputs to named numpy outputs.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..imports import import_frameworks

if TYPE_CHECKING:
    from ..cache import ArtifactCache
    from ..calibration import Calibration
    from ..export import OnnxArtifact
    from ..spec import InputSlot


class Runner(Protocol):
    """Runs one prepared model; created once per model and reused for every example."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class TorchSource:
    """The torch side of a check, for a converter that starts from the module rather than ONNX."""

    model: Any
    slots: tuple[InputSlot, ...]
    #: True when ``forward`` takes the inputs positionally in ``slots`` order, else by keyword
    positional: bool


@dataclass(frozen=True)
class BuildContext:
    """What a backend may use while preparing a runner."""

    model_name: str
    workdir: Path
    cache: ArtifactCache
    torch: TorchSource | None = None
    #: CPU threads per framework pool, None for the framework's default (``pytest_xframe.threads``)
    threads: int | None = None
    #: samples to calibrate on, for a backend with ``calibrated=True`` (else None)
    calibration: Calibration | None = None
    #: int8 inputs and outputs where the target offers them (``CheckOptions.int8_io``)
    int8_io: bool = False


@dataclass(frozen=True)
class Prepared:
    runner: Runner
    #: seconds spent converting (0 when read from the cache) and loading
    convert_seconds: float
    load_seconds: float
    cache_hit: bool = False
    #: directory of the converted model (a SavedModel, a .tflite), kept for artifacts
    converted_path: Path | None = None
    #: what the runner runs, for reports, when it is not the ONNX model (a route from torch)
    route: str | None = None


@dataclass(frozen=True)
class Backend:
    name: str
    #: modules that must be importable, and the pip extra that brings them
    modules: tuple[str, ...]
    extra: str
    #: (exporter, opset) tried in order when the user does not choose; opset None = exporter default.
    #: Chosen from the coverage matrix (README): with our onnx-tf handlers the dynamo export converts
    #: every architecture there, while TorchScript freezes attention's sequence length; onnx2tf
    #: handles the TorchScript graphs better. The next entry is tried when export or conversion fails.
    exports: tuple[tuple[str, int | None], ...]
    #: "module:function" building a runner: fn(artifact, ctx) -> Prepared
    loader: str
    #: the framework imported first and timed on its own: it is not conversion or loading work
    framework: tuple[str, ...] = ()
    #: "onnx": converts the ONNX export; "torch": converts the module itself (``BuildContext.torch``),
    #: and the ONNX export only keys its cache entry and is never run on its route
    source: str = "onnx"
    #: what the target computes in: "fp32", "fp16" or "int8"; decides the default judging policy
    #: (fp32 keeps the dtype tolerances, reduced-precision targets are judged by metrics)
    precision: str = "fp32"
    #: True when preparing needs calibration samples (``BuildContext.calibration``); they and
    #: ``int8_io`` then key the prepared runner too
    calibrated: bool = False

    @property
    def install_hint(self) -> str:
        return f"pip install 'pytest-xframe[{self.extra}]'"

    def missing(self) -> str | None:
        """A one-line reason this backend cannot run here, or None. Imports nothing."""
        absent = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return f"{self.name} backend needs {', '.join(absent)}: {self.install_hint}"

    def import_framework(self) -> float:
        """Import the framework; seconds it took (0 once imported). See ``imports.import_frameworks``."""
        start = time.perf_counter()
        import_frameworks(self.framework)
        return time.perf_counter() - start

    def prepare(self, artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
        module_name, func = self.loader.split(":")
        return getattr(importlib.import_module(module_name), func)(artifact, ctx)

    def capability(self, name: str) -> Callable[..., Any] | None:
        """An optional function of the backend's module (``layer_report``, ...), or None."""
        return getattr(importlib.import_module(self.loader.split(":")[0]), name, None)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            name="onnxruntime",
            modules=("onnxruntime",),
            extra="onnxruntime",
            exports=(("dynamo", None), ("torchscript", 17)),
            loader="pytest_xframe.backends.onnxruntime_runner:prepare",
            framework=("onnxruntime",),
        ),
        Backend(
            name="tensorflow",
            modules=("tensorflow", "onnx_tf"),
            extra="tf",
            exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
            loader="pytest_xframe.backends.tensorflow_runner:prepare",
            framework=("tensorflow",),
        ),
        Backend(
            name="onnx2tf",
            # onnx2tf itself is installed with --no-deps (it pins old numpy/onnx/tensorflow)
            modules=("tensorflow", "onnx2tf", "tf_keras", "onnx_graphsurgeon", "sng4onnx", "psutil", "ai_edge_litert"),
            extra="onnx2tf",
            exports=(("torchscript", 17), ("dynamo", None), ("torchscript", 13)),
            loader="pytest_xframe.backends.onnx2tf_runner:prepare",
            framework=("tensorflow",),
        ),
        Backend(
            name="tflite",
            modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
            extra="tflite",
            exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
            loader="pytest_xframe.backends.tflite_runner:prepare",
            framework=("tensorflow",),
        ),
        Backend(
            name="litert-torch",
            # torch -> TFLite by litert-torch, no ONNX: the export only keys its cache entry
            modules=("litert_torch", "ai_edge_litert"),
            extra="litert-torch",
            exports=(("dynamo", None), ("torchscript", 17)),
            loader="pytest_xframe.backends.litert_torch_runner:prepare",
            framework=("litert_torch",),
            source="torch",
        ),
        # reduced precision and quantized TFLite, converted from the tflite backend's SavedModel
        Backend(
            name="tflite-fp16",
            modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
            extra="tflite-fp16",
            exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
            loader="pytest_xframe.backends.tflite_fp16:prepare",
            framework=("tensorflow",),
            precision="fp16",
        ),
        Backend(
            name="tflite-int8",
            modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
            extra="tflite-int8",
            exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
            loader="pytest_xframe.backends.tflite_int8:prepare",
            framework=("tensorflow",),
            precision="int8",
        ),
        Backend(
            name="tflite-int8-full",
            modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
            extra="tflite-int8-full",
            exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
            loader="pytest_xframe.backends.tflite_int8_full:prepare",
            framework=("tensorflow",),
            precision="int8",
            calibrated=True,
        ),
        Backend(
            name="onnxruntime-int8",
            modules=("onnxruntime", "onnx"),
            extra="onnxruntime-int8",
            exports=(("dynamo", None), ("torchscript", 17)),
            loader="pytest_xframe.backends.onnxruntime_int8:prepare",
            framework=("onnxruntime",),
            precision="int8",
            calibrated=True,
        ),
    )
}


def get(name: str) -> Backend:
    return BACKENDS[name]


def versions(*dists: str) -> dict[str, str]:
    """Installed versions by distribution name, read from metadata (nothing imported)."""
    from importlib import metadata

    out = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def conversion_key(artifact: OnnxArtifact, converter: str, revision: str, dists: tuple[str, ...]) -> dict[str, str]:
    """What decides a conversion: the ONNX bytes, the converter and its revision, the stack's versions."""
    return {"onnx_sha256": file_digest(artifact.path), "converter": converter, "revision": revision, **versions(*dists)}


def convert_and_load(
    ctx: BuildContext, kind: str, key: dict[str, str], build: Callable[[Path], None], load: Callable[[Path], Runner]
) -> Prepared:
    """Convert through the on-disk cache (``build`` writes into a directory), then load the result."""
    start = time.perf_counter()
    result = ctx.cache.get_or_build(kind, key, build)
    converted = time.perf_counter()
    runner = load(result.path)
    return Prepared(
        runner,
        convert_seconds=converted - start,
        load_seconds=time.perf_counter() - converted,
        cache_hit=result.hit,
        converted_path=result.path,
    )
