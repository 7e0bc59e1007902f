"""Calibration samples for quantized targets: drawn from the input spec, or given by the user.

Full-integer quantization (TFLite's representative dataset, ONNX Runtime's static quantization)
fixes each activation's int8 range from a few inputs. Drawn from the spec, the samples come from
a seed of their own (``calibration_seed``, default 0), not the check's hypothesis seed: the same
spec gives the same samples in every run, so the quantized model is a stable cache entry. A
user's samples (``calibration=``) are checked against the spec once, here, with a ``SpecError``
that names the sample and the input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from .spec import Dim, InputSlot


@dataclass(frozen=True)
class Calibration:
    """Samples a quantizer calibrates on, and where they came from (for reports and cache keys)."""

    samples: tuple[dict[str, np.ndarray], ...]
    #: "spec" (drawn from the TensorSpecs), "user" (``calibration=``) or "data" (samples of ``data=``)
    source: str
    #: the seed the samples were drawn from; None for the user's
    seed: int | None
    #: sha256 of every sample's names, dtypes, shapes and bytes: part of the conversion's cache key
    digest: str
    #: for samples of ``data=``: which ones, and of what ("20 of 200 samples of 'tests/data'")
    origin: str | None = None

    def describe(self) -> dict[str, Any]:
        described = {"source": self.source, "samples": len(self.samples), "seed": self.seed, "digest": self.digest[:16]}
        return described if self.origin is None else {**described, "data": self.origin}


def digest(samples: tuple[dict[str, np.ndarray], ...]) -> str:
    h = hashlib.sha256()
    for sample in samples:
        for name in sorted(sample):
            a = np.ascontiguousarray(sample[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
            h.update(a.tobytes())
        h.update(b"|")
    return h.hexdigest()


def from_spec(slots: tuple[InputSlot, ...], count: int, seed: int) -> Calibration:
    """``count`` samples at the spec's largest shape (each ``Dim`` at its max), values uniform in
    each spec's range; fixed inputs keep their value.

    The largest shape because activation ranges grow with it (a sum over a sequence), and int8
    ranges calibrated on short sequences clip on long ones; one shape because TFLite's calibrator
    sizes the model's inputs once, from the first sample."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for slot in slots:
            if slot.spec is None:
                sample[slot.name] = np.asarray(slot.value)
                continue
            shape = tuple(d.max if isinstance(d, Dim) else d for d in slot.spec.shape)
            dtype, (lo, hi) = np.dtype(slot.spec.dtype), slot.spec.bounds
            if dtype.kind in "iub":
                sample[slot.name] = rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)
            else:
                sample[slot.name] = rng.uniform(lo, hi, size=shape).astype(dtype)
        samples.append(sample)
    frozen = tuple(samples)
    return Calibration(frozen, "spec", seed, digest(frozen))


def as_array(value: Any) -> Any:
    """A torch tensor, list or number as a numpy array; anything else as it is."""
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value) if isinstance(value, (np.ndarray, list, float, int, np.generic)) else value


def bind_sample(sample: Any, where: str, slots: tuple[InputSlot, ...], model_name: str) -> dict[str, Any]:
    """One sample as name -> value: a dict by input name, or a tuple / single array in input order.
    ``where`` names the sample in messages ("calibration sample 3")."""
    names = [s.name for s in slots]
    if isinstance(sample, Mapping):
        unknown = sorted(set(sample) - set(names))
        if unknown:
            raise SpecError(
                f"{where} names input(s) {', '.join(map(repr, unknown))} the model does not take",
                model=model_name, hint=f"the model's inputs: {', '.join(names)}",
            )
        return dict(sample)
    values = list(sample) if isinstance(sample, (tuple, list)) else [sample]
    if len(values) != len(names):
        raise SpecError(
            f"{where} has {len(values)} value(s), the model takes {len(names)} input(s)",
            model=model_name, hint=f"give one array per input in order ({', '.join(names)}), or a dict by name",
        )
    return dict(zip(names, values))


def check_value(value: Any, slot: InputSlot, sample: str, model_name: str) -> np.ndarray:
    """One input's value against its spec (numeric, float or not as the input, shape within it),
    cast to the input's dtype; ``sample`` names the sample in messages."""
    array = as_array(value)
    where = f"{sample}, input {slot.name!r}"
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise SpecError(f"{where} is a {type(value).__name__}, not a numeric array", model=model_name,
                        hint="give numpy arrays or torch tensors")
    want = np.dtype(slot.spec.dtype) if slot.spec is not None else np.asarray(slot.value).dtype
    if (array.dtype.kind == "f") != (want.kind == "f"):
        raise SpecError(f"{where} has dtype {array.dtype}, the input is {want}", model=model_name,
                        hint=f"convert the sample with .astype({want.name!r})")
    shape = slot.spec.shape if slot.spec is not None else np.shape(slot.value)
    fits = array.ndim == len(shape) and all(
        (d.min <= n <= d.max) if isinstance(d, Dim) else n == d for n, d in zip(array.shape, shape)
    )
    if not fits:
        declared = slot.spec.describe() if slot.spec is not None else f"{want}{list(shape)} (fixed)"
        raise SpecError(f"{where} has shape {list(array.shape)}, the input is declared {declared}", model=model_name,
                        hint="calibration samples must fit the input spec (each Dim within its range)")
    return array.astype(want, copy=False)


def from_user(samples: Iterable[Any], slots: tuple[InputSlot, ...], model_name: str) -> Calibration:
    """The user's samples, each checked against the spec and cast to the input's dtype
    (float64 data for a float32 input, say; a float for an integer input is an error)."""
    checked = []
    for index, sample in enumerate(samples):
        where = f"calibration sample {index}"
        bound = bind_sample(sample, where, slots, model_name)
        missing = [s.name for s in slots if s.name not in bound and s.spec is not None]
        if missing:
            raise SpecError(f"{where} lacks input(s) {', '.join(map(repr, missing))}", model=model_name,
                            hint="give every input the model takes")
        checked.append({s.name: check_value(bound.get(s.name, s.value), s, where, model_name) for s in slots})
    if not checked:
        raise SpecError("calibration= holds no samples", model=model_name, hint="give at least one sample, or leave calibration unset")
    frozen = tuple(checked)
    return Calibration(frozen, "user", None, digest(frozen))
