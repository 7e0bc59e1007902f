"""Module paths from before the package layout, kept importable with a DeprecationWarning.

The public names (``pytest_xframe.TensorSpec``, ``Dim``, the errors, ``pytest_xframe.backends``
with ``Backend``, ``BuildContext``, ``Prepared``, ``Runner``, the backend hook and entry-point
group, ``python -m pytest_xframe replay``) never moved. The modules below are the ones a user or a
backend plugin could reasonably have imported (a conftest backend reusing ``make_session``, a
script parsing input specs); each old name stands for its new module. Everything else that moved
(``engine``, ``guard``, ``settings``, ``session``, ``results``, ...) was internal and is gone.

An old name imports as a stand-in module that forwards attribute reads to the new one (so
``from pytest_xframe.spec_text import parse_inputs`` works) and warns once. Its ``__path__`` is
empty: an old submodule name (``pytest_xframe.convert.onnx_tf_compat.handlers``) comes through
this finder too, never as a second copy of the file under another name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

#: old module -> new module; a submodule of an old package moves with it
MOVED: dict[str, str] = {
    "pytest_xframe.spec": "pytest_xframe.inputs.spec",
    "pytest_xframe.spec_text": "pytest_xframe.inputs.spec_text",
    "pytest_xframe.strategies": "pytest_xframe.inputs.strategies",
    "pytest_xframe.calibration": "pytest_xframe.inputs.calibration",
    "pytest_xframe.outputs": "pytest_xframe.export.outputs",
    "pytest_xframe.compare": "pytest_xframe.judge.compare",
    "pytest_xframe.metrics": "pytest_xframe.judge.metrics",
    "pytest_xframe.policy": "pytest_xframe.judge.policy",
    "pytest_xframe.baseline": "pytest_xframe.judge.baseline",
    "pytest_xframe.artifacts": "pytest_xframe.diagnose.artifacts",
    "pytest_xframe.replay": "pytest_xframe.diagnose.replay",
    "pytest_xframe.divergence": "pytest_xframe.diagnose.divergence",
    "pytest_xframe.divergence.graph": "pytest_xframe.export.onnx_graph",
    "pytest_xframe.provenance": "pytest_xframe.identity",
    "pytest_xframe.hypothesis_compat": "pytest_xframe.check.hypothesis_compat",
    "pytest_xframe.hooks": "pytest_xframe.plugin.hookspecs",
    "pytest_xframe.convert": "pytest_xframe.backends.conversion",
    "pytest_xframe.convert.onnx_tf": "pytest_xframe.backends.tensorflow.onnx_tf",
    "pytest_xframe.convert.lowering": "pytest_xframe.backends.tensorflow.lowering",
    "pytest_xframe.convert.onnx_tf_compat": "pytest_xframe.backends.tensorflow.onnx_tf_compat",
    "pytest_xframe.convert.onnx2tf": "pytest_xframe.backends.onnx2tf.convert",
    "pytest_xframe.backends.onnxruntime_runner": "pytest_xframe.backends.onnxruntime.runner",
    "pytest_xframe.backends.onnxruntime_int8": "pytest_xframe.backends.onnxruntime.int8",
    "pytest_xframe.backends.tensorflow_runner": "pytest_xframe.backends.tensorflow.runner",
    "pytest_xframe.backends.onnx2tf_runner": "pytest_xframe.backends.onnx2tf.runner",
    "pytest_xframe.backends.tflite_runner": "pytest_xframe.backends.tflite.runner",
    "pytest_xframe.backends.tflite_fp16": "pytest_xframe.backends.tflite.fp16",
    "pytest_xframe.backends.tflite_int8": "pytest_xframe.backends.tflite.int8",
    "pytest_xframe.backends.tflite_int8_full": "pytest_xframe.backends.tflite.int8_full",
    "pytest_xframe.backends.tflite_layers": "pytest_xframe.backends.tflite.layers",
    "pytest_xframe.backends.litert_torch_runner": "pytest_xframe.backends.litert_torch.runner",
}


#: the old names, longest first (the longest old prefix of a name wins)
_PREFIXES = sorted(MOVED, key=len, reverse=True)


def new_name(old: str) -> str | None:
    """The module an old name stands for, None if it never moved."""
    if not old.startswith("pytest_xframe."):
        return None
    for prefix in _PREFIXES:
        if old == prefix or old.startswith(prefix + "."):
            return MOVED[prefix] + old[len(prefix):]
    return None


class _StandIn(types.ModuleType):
    """An old module name: attribute reads go to the new module."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old, f"moved to {new}")
        self.__path__: list[str] = []
        self._xframe_new = new

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._xframe_new), attr)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self._xframe_new))


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = new_name(spec.name)
        assert new is not None
        importlib.import_module(new)  # an ImportError names the new module
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        return _StandIn(spec.name, new)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


_FINDER = _Finder()


def install() -> None:
    """Answer the old names first: an editable install's finder could otherwise find a stale file."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
