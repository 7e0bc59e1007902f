"""Stand-ins for ``tensorflow_addons`` / ``tensorflow_probability``, which onnx-tf imports at import
time and which have no release for current TensorFlow.

A stand-in goes into ``sys.modules`` only when the real package cannot be imported. Attribute
access on it works (onnx-tf does it at import time); calling anything raises
:class:`MissingOptionalModule`, naming the op that needed it, so a model using Hardmax or Bernoulli
fails loudly instead of converting wrongly.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import warnings
from typing import Any

from ....errors import ConversionError

__all__ = ["STAND_IN_MODULES", "MissingOptionalModule", "StandInModule", "ensure_stand_ins", "stand_in"]

# Optional modules onnx-tf imports at import time -> (ONNX op that needs it, pip distribution).
STAND_IN_MODULES: dict[str, tuple[str, str]] = {
    "tensorflow_addons": ("Hardmax", "tensorflow-addons"),
    "tensorflow_probability": ("Bernoulli", "tensorflow-probability"),
}


class MissingOptionalModule(ConversionError, ModuleNotFoundError):
    """An onnx-tf handler needed a module that is not installed (a stand-in was called).

    It is a ``ModuleNotFoundError`` too, so code that already guards optional imports still
    recognises it, and a :class:`ConversionError`, so pytest-xframe reports it as a failed
    conversion of that op.
    """

    def __init__(
        self,
        op_type: str,
        module: str,
        distribution: str,
        *,
        op_version: int | None = None,
        node_name: str | None = None,
        model: str | None = None,
        details: str | None = None,
    ) -> None:
        self.distribution = distribution
        node = f" (node '{node_name}')" if node_name else ""
        label = f"{op_type}-{op_version}" if op_version else op_type
        super().__init__(
            f"ONNX op {label}{node} needs the Python module '{module}', which is not installed",
            op_type=op_type,
            op_version=op_version,
            node_name=node_name,
            model=model,
            backend="tensorflow (onnx-tf)",
            cause=f"onnx-tf implements {op_type} with {module}, which is not importable here "
            "(it has no release for this TensorFlow version)",
            hint=f"avoid {op_type} in the exported model, use a TensorFlow stack that "
            f"'{distribution}' supports, or compare against onnxruntime only",
            details=details,
        )
        self.name = module  # what ModuleNotFoundError.name means


class _MissingAttr:
    """Any attribute of a stand-in module: attribute access works (onnx-tf does it at import
    time), calling it raises :class:`MissingOptionalModule`."""

    def __init__(self, module: str, path: str) -> None:
        self._module = module
        self._path = path
        self.__name__ = path.rsplit(".", 1)[-1]
        self.__qualname__ = self.__name__

    def __getattr__(self, name: str) -> _MissingAttr:
        if name.startswith("__"):
            raise AttributeError(name)
        return _MissingAttr(self._module, f"{self._path}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        op_type, dist = STAND_IN_MODULES[self._module]
        raise MissingOptionalModule(op_type, self._module, dist)

    def __repr__(self) -> str:
        return f"<missing {self._path}>"


class StandInModule(types.ModuleType):
    """Placeholder for an optional package that cannot be imported here."""

    def __getattr__(self, name: str) -> _MissingAttr:
        if name.startswith("__"):
            raise AttributeError(name)
        return _MissingAttr(self.__name__, f"{self.__name__}.{name}")


def _importable(name: str) -> bool:
    """Whether the real package imports; a failed attempt leaves nothing of it in sys.modules."""
    if name in sys.modules:
        return not isinstance(sys.modules[name], StandInModule)
    try:
        with warnings.catch_warnings():  # tfa warns about its end of life before failing to import
            warnings.simplefilter("ignore")
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - tfa/tfp raise all sorts of errors on a newer TF
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return False
    return True


def stand_in(name: str) -> StandInModule:
    """The stand-in module for ``name`` (one of ``STAND_IN_MODULES``), not yet in sys.modules."""
    mod = StandInModule(name, f"pytest_xframe stand-in: {name} is not importable")
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return mod


def ensure_stand_ins() -> None:
    """Install stand-ins only for optional modules that really cannot be imported."""
    for name in STAND_IN_MODULES:
        if not _importable(name):
            sys.modules[name] = stand_in(name)
