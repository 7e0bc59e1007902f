"""Measurement only: how long the heavy imports and the pytest phases take inside one route's process.

Imported first thing by ``handwritten.py`` and, through ``-p pytest_probe`` (this directory is on
PYTHONPATH), by the pytest routes; it changes nothing the plugin or the user code does.

* Imports: a ``sys.meta_path`` finder wraps the loader of a few top-level packages (torch,
  tensorflow, onnx_tf, onnx, onnxruntime, hypothesis, keras, numpy) and times their ``exec_module``, which
  includes everything imported underneath, as ``python -X importtime`` would (that flag cannot be
  used under pytest: pytest captures the stderr it writes to). Only the outermost timed import is
  counted, so nothing is counted twice.
* Garbage collections: generation, start and duration of each (``gc.callbacks``).
* Events: named wall-clock marks (``mark``), relative to the process start; ``pytest_probe`` marks
  the pytest phases.

Results go to the JSON file named by ``BENCH_PROBE_OUT``; ``BENCH_T0`` is the parent's
``time.time()`` just before it started this process.
"""

from __future__ import annotations

import gc
import importlib.abc
import json
import os
import sys
import time

T_IMPORTED = time.time()
TIMED = ("torch", "tensorflow", "onnx_tf", "onnx", "onnxruntime", "hypothesis", "keras", "numpy")

imports: dict[str, float] = {}
#: (package, wall-clock start, seconds) of every outermost timed import, to place it on the timeline
import_spans: list[tuple[str, float, float]] = []
_depth = [0]
events: list[tuple[str, float]] = [("probe loaded", T_IMPORTED)]


class _TimedLoader(importlib.abc.Loader):
    def __init__(self, name: str, loader) -> None:
        self._name, self._loader = name, loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        outermost = _depth[0] == 0
        _depth[0] += 1
        wall, start = time.time(), time.perf_counter()
        try:
            self._loader.exec_module(module)
        finally:
            _depth[0] -= 1
            if outermost:
                seconds = time.perf_counter() - start
                imports[self._name] = imports.get(self._name, 0.0) + seconds
                import_spans.append((self._name, wall, seconds))

    def __getattr__(self, name):  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in TIMED:
            return None
        sys.meta_path.remove(self)
        try:
            from importlib.util import find_spec

            spec = find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _TimedLoader(fullname, spec.loader)
        return spec


sys.meta_path.insert(0, _Finder())

#: garbage collections: (generation, wall-clock start, seconds); a full (generation 2) collection walks
#: every object torch and TensorFlow created, which takes a noticeable fraction of a second
gc_spans: list[tuple[int, float, float]] = []
_gc_start = [0.0, 0.0]


def _gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0], _gc_start[1] = time.time(), time.perf_counter()
    else:
        gc_spans.append((info["generation"], _gc_start[0], time.perf_counter() - _gc_start[1]))


gc.callbacks.append(_gc_callback)


def write(**extra) -> None:
    out = os.environ.get("BENCH_PROBE_OUT")
    if not out:
        return
    t0 = float(os.environ.get("BENCH_T0", T_IMPORTED))
    with open(out, "w") as f:
        json.dump({"t0": t0, "imports": imports, "import_spans": [(n, t - t0, d) for n, t, d in import_spans],
                   "gc_spans": [(g, t - t0, d) for g, t, d in gc_spans],
                   "events": [(name, t - t0) for name, t in events], **extra}, f)


def mark(name: str) -> None:
    events.append((name, time.time()))
