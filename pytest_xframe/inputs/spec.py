"""Input specifications: what a model's ``forward`` takes, declared once, drawn many times.

``TensorSpec`` and ``Dim`` validate themselves when built, so a bad spec fails at the line that
wrote it rather than deep inside an export.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SpecError

if TYPE_CHECKING:
    import numpy as np

_INT_KINDS = "iu"
#: default value range for float inputs drawn without explicit bounds
DEFAULT_FLOAT_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class Dim:
    """A dynamic dimension: exported as a dynamic axis named ``name``, drawn in ``[min, max]``."""

    name: str
    min: int = 1
    max: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(f"Dim name must be an identifier, got {self.name!r}")
        low, high = _as_int(self.min), _as_int(self.max)
        if low is None or high is None:
            raise SpecError(f"Dim({self.name!r}) bounds must be ints, got min={self.min!r}, max={self.max!r}")
        object.__setattr__(self, "min", low)  # numpy integers become plain ints (hashing, JSON)
        object.__setattr__(self, "max", high)
        if self.min < 0:
            raise SpecError(f"Dim({self.name!r}) min must be >= 0, got {self.min}")
        if self.min > self.max:
            raise SpecError(
                f"Dim({self.name!r}) has min > max ({self.min} > {self.max})",
                hint=f"swap them: Dim({self.name!r}, {self.max}, {self.min})",
            )


ShapeEntry = int | Dim


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and value range of one input tensor."""

    shape: tuple[ShapeEntry, ...]
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None

    def __init__(self, shape: Sequence[ShapeEntry], dtype: Any = "float32", low: float | None = None, high: float | None = None) -> None:
        try:
            shape_t = tuple(shape)
        except TypeError:
            raise SpecError(f"TensorSpec shape must be a sequence of ints and Dims, got {shape!r}") from None
        shape_t = tuple(e if isinstance(e, Dim) else _as_int(e) for e in shape_t)
        for entry, given in zip(shape_t, shape):
            if entry is None or (isinstance(entry, int) and entry < 0):
                raise SpecError(f"TensorSpec shape entries must be non-negative ints or Dim, got {given!r} in {tuple(shape)}")
        if len(shape_t) > MAX_RANK:
            raise SpecError(f"TensorSpec has rank {len(shape_t)}; at most {MAX_RANK} dimensions are supported (numpy's limit)")
        import numpy as np

        dtype_name = _dtype_name(dtype)
        kind = np.dtype(dtype_name).kind
        for label, bound in (("low", low), ("high", high)):
            if bound is not None and (isinstance(bound, bool) or not _finite_number(bound)):
                raise SpecError(f"TensorSpec{shape_t} {label} must be a finite number, got {bound!r}")
        if kind in _INT_KINDS and (low is None or high is None):
            raise SpecError(
                f"integer TensorSpec{shape_t} ({dtype_name}) needs low and high",
                hint=f"for token ids: TensorSpec({shape_t}, {dtype_name!r}, low=0, high=vocab_size - 1)",
            )
        _check_representable(shape_t, np.dtype(dtype_name), low, high)
        if low is not None and high is not None and low > high:
            raise SpecError(f"TensorSpec{shape_t} has low > high ({low} > {high})")
        object.__setattr__(self, "shape", shape_t)
        object.__setattr__(self, "dtype", dtype_name)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def bounds(self) -> tuple[float, float]:
        """Inclusive value range used when drawing (bool is always [0, 1])."""
        if self.dtype == "bool":
            return (0, 1)
        lo_default, hi_default = DEFAULT_FLOAT_RANGE
        return (
            lo_default if self.low is None else self.low,
            hi_default if self.high is None else self.high,
        )

    @property
    def dims(self) -> tuple[Dim, ...]:
        return tuple(d for d in self.shape if isinstance(d, Dim))

    def example_shape(self) -> tuple[int, ...]:
        """Concrete shape used for export: each Dim at a size that does not pin it.

        Sizes 0 and 1 are special-cased by exporters (broadcasting, specialisation), so the
        example takes the smallest size >= 2 in range.
        """
        return tuple(d if isinstance(d, int) else _example_size(d) for d in self.shape)

    def describe(self) -> str:
        dims = ", ".join(str(d) if isinstance(d, int) else f"{d.name}[{d.min}..{d.max}]" for d in self.shape)
        return f"{self.dtype}[{dims}]"


#: numpy arrays have at most 64 dimensions; hypothesis and the frameworks are safe well below
MAX_RANK = 32


def _as_int(value: Any) -> int | None:
    """Any integer type (Python's, numpy's, a 0-d integer tensor) as an int; None for others and bools."""
    import operator

    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _finite_number(value: Any) -> bool:
    import math

    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _check_representable(shape: tuple, dtype: np.dtype, low: Any, high: Any) -> None:
    """Bounds the dtype can hold: hypothesis would refuse them later, in its own words."""
    import numpy as np

    if dtype.kind == "b":
        return
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    for label, bound in (("low", low), ("high", high)):
        if bound is not None and not (float(info.min) <= float(bound) <= float(info.max)):
            raise SpecError(f"TensorSpec{shape} {label}={bound!r} is outside what {dtype.name} holds ([{info.min}, {info.max}])")


def _example_size(dim: Dim) -> int:
    return min(max(dim.min, 2), dim.max)


def _dtype_name(dtype: Any) -> str:
    """Accept numpy dtypes, strings and torch dtypes ("torch.float32") alike."""
    import numpy as np

    text = str(dtype)
    if text.startswith("torch."):
        text = text[len("torch.") :]
    try:
        found = np.dtype(text)
    except TypeError:
        raise SpecError(f"unknown dtype {dtype!r}", hint="use a numpy dtype name such as 'float32' or 'int64'") from None
    if found.kind not in "biuf":
        raise SpecError(
            f"TensorSpec dtype {dtype!r} ({found.name}) is not supported: inputs are bool, integer or float tensors",
            hint="use e.g. 'float32', 'int64' or 'bool'",
        )
    return found.name


@dataclass(frozen=True)
class InputSlot:
    """One input of ``forward``: its parameter name and either a spec or a fixed array."""

    name: str
    spec: TensorSpec | None = None
    value: np.ndarray | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.spec is not None:
            return self.spec.describe()
        assert self.value is not None
        return f"{self.value.dtype}{list(self.value.shape)} (fixed)"


def forward_parameters(model: Any) -> list[inspect.Parameter]:
    """Positional-or-keyword parameters of ``model.forward`` (no ``*args``/``**kwargs``)."""
    sig = inspect.signature(model.forward)
    return [
        p
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def bind_inputs(model: Any, inputs: Any, model_name: str) -> tuple[InputSlot, ...]:
    """Match ``inputs`` (sequence or mapping) to ``forward``'s parameters, naming every mismatch."""
    params = forward_parameters(model)
    _refuse_variadic(model, inputs, params, model_name)
    names = [p.name for p in params]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    import numpy as np

    if isinstance(inputs, (TensorSpec, np.ndarray)) or _is_torch_tensor(inputs):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in names]
        missing = [n for n in required if n not in inputs]
        if unknown or missing:
            raise SpecError(
                f"inputs do not match {model_name}.forward({', '.join(names)})",
                model=model_name,
                cause="; ".join(
                    part
                    for part in (
                        f"unknown parameter(s): {', '.join(unknown)}" if unknown else "",
                        f"missing required parameter(s): {', '.join(missing)}" if missing else "",
                    )
                    if part
                ),
                hint="pass inputs as a list in forward's order or as a dict keyed by parameter name",
            )
        pairs = [(n, inputs[n]) for n in names if n in inputs]
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        if len(inputs) > len(names) or len(inputs) < len(required):
            raise SpecError(
                f"{len(inputs)} input(s) given, {model_name}.forward({', '.join(names)}) takes "
                + (f"{len(required)}" if len(required) == len(names) else f"{len(required)} to {len(names)}"),
                model=model_name,
                hint="pass one TensorSpec/tensor per forward parameter, or a dict keyed by parameter name",
            )
        pairs = list(zip(names, inputs))
    else:
        raise SpecError(
            f"inputs must be a list or dict of TensorSpec / torch.Tensor / numpy.ndarray, got {type(inputs).__name__}",
            model=model_name,
        )
    return tuple(_slot(name, value, model_name) for name, value in pairs)


def _refuse_variadic(model: Any, inputs: Any, params: list[inspect.Parameter], model_name: str) -> None:
    """``*args`` / ``**kwargs`` of ``forward`` cannot be given inputs: say so, not "takes N"."""
    variadic = {p.kind: p.name for p in inspect.signature(model.forward).parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    star = variadic.get(inspect.Parameter.VAR_POSITIONAL)
    stars = variadic.get(inspect.Parameter.VAR_KEYWORD)
    names = {p.name for p in params}
    if isinstance(inputs, Mapping):
        extra = [k for k in inputs if k not in names]
        given = f"**{stars}" if stars else None
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        extra = list(range(len(params), len(inputs)))
        given = f"*{star}" if star else None
    else:
        return
    if extra and given:
        raise SpecError(
            f"{model_name}.forward takes {given}, which xframe cannot feed: every input goes to a named parameter",
            model=model_name,
            cause=f"{len(extra)} input(s) beyond forward's named parameters ({', '.join(p.name for p in params) or 'none'})",
            hint="wrap the model in a module whose forward names each input, e.g. def forward(self, a, b): return self.inner(a, b)",
        )


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _slot(name: str, value: Any, model_name: str) -> InputSlot:
    import numpy as np

    if isinstance(value, TensorSpec):
        return InputSlot(name, spec=value)
    if _is_torch_tensor(value):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise SpecError(
                f"input {name!r} is an array of dtype {value.dtype}; inputs are bool, integer or float tensors",
                model=model_name,
            )
        return InputSlot(name, value=np.array(value, copy=True))
    raise SpecError(
        f"input {name!r} must be a TensorSpec, torch.Tensor or numpy.ndarray, got {type(value).__name__}",
        model=model_name,
    )


def calls_positionally(model: Any, slots: tuple[InputSlot, ...]) -> bool:
    """Whether ``forward`` can take the inputs positionally: they fill its leading positional
    parameters in order (a keyword-only parameter is given by name)."""
    params = forward_parameters(model)[: len(slots)]
    return [s.name for s in slots] == [p.name for p in params] and all(p.kind != p.KEYWORD_ONLY for p in params)
