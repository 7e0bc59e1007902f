"""Backends: one package per target framework, each defining its :class:`Backend`, and the registry.

A backend is a :class:`Backend` object: which packages it needs (checked without importing them),
which ONNX exports it prefers (its converter's coverage decides), and ``prepare``, which builds a
:class:`Runner` from an ONNX model. The runner only maps named numpy inputs to named numpy
outputs. Code outside this package reaches a backend only through this interface, never by name.

Optional capabilities (None when a backend lacks them; callers test for them):

* ``load_case(case_dir, case) -> Runner``: rebuild the runner of a saved failing case from its
  directory (``model.onnx``, ``converted/``, ``case.json``); ``python -m pytest_xframe replay``
  uses it. Without it, replay says to rerun the test.
* ``run_intermediates(model, feeds, workdir, model_name) -> {onnx name: array}``: convert and run
  an ONNX model whose graph exposes extra outputs; the divergence search uses it to name the
  first ONNX node this backend's conversion got wrong.
* ``layer_report(prepared, artifact, feeds, workdir) -> str | None``: extra diagnosis text for
  a failing check (a quantized target's SNR per layer, say).
* ``quantization_count(prepared, artifact) -> QuantizationCount``: how many weight tensors the
  converted model stores quantized (``pytest_xframe.backends.quantization``); an int8 target that counts
  none warns, or fails under ``strict_quantization``.
* per-input converted model: a runner that converts per input shape has
  ``converted_path_for(feeds) -> Path``; :meth:`Prepared.converted_path_for` asks it, and a
  failing case keeps that model.

How to add a backend: write ``pytest_xframe/backends/<framework>/runner.py`` defining ``prepare``
(and any capability) with framework imports inside the functions, and ``BACKEND = Backend(...)``
(its converter and any compatibility code beside it, in the same package); then add one line to
:data:`BUILTIN`. A package outside this repository instead declares an entry point in the
``pytest_xframe.backends`` group naming its Backend object, and a ``conftest.py`` implements the
``pytest_xframe_register_backends(config)`` hook (:mod:`pytest_xframe.plugin.hookspecs`) returning
a list of Backend objects. Options, test ids, reports and replay then know it by name.
``docs/contributing/architecture.md`` walks through it step by step.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..imports import import_frameworks

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from ..cache import ArtifactCache
    from ..export.to_onnx import OnnxArtifact
    from ..inputs.calibration import Calibration
    from ..inputs.spec import InputSlot

#: the built-in backends, one line each: name -> "module:attribute" of its Backend, imported on first use
BUILTIN: dict[str, str] = {
    "onnxruntime": "pytest_xframe.backends.onnxruntime.runner:BACKEND",
    "tensorflow": "pytest_xframe.backends.tensorflow.runner:BACKEND",
    "onnx2tf": "pytest_xframe.backends.onnx2tf.runner:BACKEND",
    "tflite": "pytest_xframe.backends.tflite.runner:BACKEND",
    "litert-torch": "pytest_xframe.backends.litert_torch.runner:BACKEND",
    "tflite-fp16": "pytest_xframe.backends.tflite.fp16:BACKEND",
    "tflite-int8": "pytest_xframe.backends.tflite.int8:BACKEND",
    "tflite-int8-full": "pytest_xframe.backends.tflite.int8_full:BACKEND",
    "onnxruntime-int8": "pytest_xframe.backends.onnxruntime.int8:BACKEND",
}
#: the backends checked when no option names any
DEFAULT: tuple[str, ...] = ("onnxruntime", "tensorflow")
#: the entry-point group a package declares its backends in (each entry point loads to a Backend)
ENTRY_POINT_GROUP = "pytest_xframe.backends"


class Runner(Protocol):
    """Runs one prepared model; created once per model and reused for every example.

    A runner that converts per input shape also has ``converted_path_for(feeds) -> Path``; one that
    knows what its runtime's errors mean has ``explain(exc) -> str | None``: what to do, for the
    error's ``try:`` line.
    """

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
    #: False when a calibrated backend did not use the calibration samples after all (a dynamic
    #: quantization), so reports do not claim a calibration that was not used
    used_calibration: bool = True

    def converted_path_for(self, feeds: Mapping[str, np.ndarray]) -> Path | None:
        """The converted model that ran ``feeds``: the runner's own answer when it converts per
        input shape (``Runner.converted_path_for``), else ``converted_path``."""
        per_input = getattr(self.runner, "converted_path_for", None)
        return per_input(feeds) if per_input is not None else self.converted_path


@dataclass(frozen=True)
class Backend:
    """A target framework: required ``name`` and ``prepare``, optional capabilities (see the module
    docstring) None when absent."""

    name: str
    #: build the runner for an ONNX export: ``prepare(artifact, ctx) -> Prepared``
    prepare: Callable[[OnnxArtifact, BuildContext], Prepared]
    #: modules that must be importable, and the pip extra of pytest-xframe that brings them
    modules: tuple[str, ...] = ()
    extra: str | None = None
    #: (exporter, opset) tried in order when the user does not choose; opset None = exporter default.
    #: Chosen from the coverage matrix (docs/backends.md): with our onnx-tf handlers the dynamo export converts
    #: every architecture there, while TorchScript freezes attention's sequence length; onnx2tf
    #: handles the TorchScript graphs better. The next entry is tried when export or conversion fails.
    exports: tuple[tuple[str, int | None], ...] = (("dynamo", None), ("torchscript", 17))
    #: the framework imported first and timed on its own: it is not conversion or loading work
    framework: tuple[str, ...] = ()
    #: "onnx": converts the ONNX export; "torch": converts the module itself (``BuildContext.torch``),
    #: and the ONNX export only keys its cache entry and is never run on its route
    source: str = "onnx"
    #: what the target computes in: "fp32", "fp16" or "int8"; decides the default judging policy
    #: (fp32 keeps the dtype tolerances, reduced-precision targets are judged by metrics)
    precision: str = "fp32"
    #: optional: ``load_case(case_dir, case) -> Runner`` rebuilds a saved failing case's runner
    load_case: Callable[[Path, Mapping[str, Any]], Runner] | None = None
    #: optional: ``run_intermediates(model, feeds, workdir, model_name) -> {onnx name: array}``
    run_intermediates: Callable[[onnx.ModelProto, Mapping[str, np.ndarray], Path, str], dict[str, np.ndarray]] | None = None
    #: optional: ``layer_report(prepared, artifact, feeds, workdir) -> str | None``, diagnosis text
    layer_report: Callable[[Prepared, OnnxArtifact, Mapping[str, np.ndarray], Path], str | None] | None = None
    #: True when preparing needs calibration samples (``BuildContext.calibration``); they and
    #: ``int8_io`` then key the prepared runner too
    calibrated: bool = False
    #: the distributions (pip names) whose versions decide this backend's results: the reports'
    #: ``environment`` lists them for every backend a run checked
    distributions: tuple[str, ...] = ()
    #: optional: ``limit_threads(count)`` sizes the framework's process-wide thread pools, called
    #: once per process before the first ``prepare`` when a count is set (``--xframe-threads``);
    #: a framework that sizes per session reads ``BuildContext.threads`` instead
    limit_threads: Callable[[int], object] | None = None
    #: optional: ``quantization_count(prepared, artifact) -> backends.quantization.QuantizationCount``, the
    #: weight tensors the converted model really stores quantized (an int8 target's capability)
    quantization_count: Callable[[Prepared, OnnxArtifact], Any] | None = None

    @property
    def install_hint(self) -> str:
        return f"pip install 'pytest-xframe[{self.extra}]'" if self.extra else f"pip install {' '.join(self.modules)}"

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


@dataclass
class Target:
    """A backend ready to run: the backend, its runner and the ONNX model it came from."""

    backend: Backend
    artifact: OnnxArtifact
    prepared: Prepared

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def label(self) -> str:
        """What the backend ran: the ONNX model's exporter and opset, or its own route from torch."""
        return self.prepared.route or f"ONNX from {self.artifact.label}"


class Registry:
    """Backends by name. Built-ins and entry points are known by name without being imported and
    are loaded on first use; a plugin's ``pytest_xframe_register_backends`` hook adds objects."""

    def __init__(self, refs: Mapping[str, str | Backend]) -> None:
        self._refs: dict[str, str | Backend] = dict(refs)

    @classmethod
    def default(cls) -> Registry:
        """The built-ins and the backends of installed packages' entry points."""
        from importlib.metadata import entry_points

        registry = cls(BUILTIN)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            registry._add_ref(point.name, point.value, f"entry point {point.value!r}")
        return registry

    def _add_ref(self, name: str, ref: str | Backend, origin: str) -> None:
        if name in self._refs:
            raise ValueError(f"backend {name!r} from {origin} is already registered; choose another name")
        self._refs[name] = ref

    def add(self, backends: Iterable[Backend], origin: str) -> None:
        for backend in backends:
            if not isinstance(backend, Backend):
                raise TypeError(f"{origin} returned {backend!r}, not a pytest_xframe.backends.Backend")
            self._add_ref(backend.name, backend, origin)

    def names(self) -> tuple[str, ...]:
        return tuple(self._refs)

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def get(self, name: str) -> Backend:
        ref = self._refs[name]
        if isinstance(ref, str):
            from importlib.metadata import EntryPoint

            ref = EntryPoint(name=name, value=ref, group=ENTRY_POINT_GROUP).load()
            if not isinstance(ref, Backend) or ref.name != name:
                raise TypeError(f"{self._refs[name]!r} is {ref!r}, not a Backend named {name!r}")
            self._refs[name] = ref
        return ref


_default: Registry | None = None


def registry() -> Registry:
    """The built-ins and entry points (what replay and a plain script see; a pytest session adds
    the backends its plugins register)."""
    global _default
    if _default is None:
        _default = Registry.default()
    return _default


def get(name: str) -> Backend:
    return registry().get(name)


def conversion_key(artifact: OnnxArtifact, converter: str, revision: str, dists: tuple[str, ...]) -> dict[str, str]:
    """What decides a conversion: the ONNX bytes, the converter and its revision, the stack's versions."""
    from ..identity import export_sha256, versions

    return {"onnx_sha256": ":".join(export_sha256(path) for path in artifact.files), "converter": converter, "revision": revision, **versions(*dists)}


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
