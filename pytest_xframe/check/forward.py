"""torch's run of the user's model, the reference every backend is judged against: call ``forward``
only in ways whose failures are named, and never blame a backend for torch's own randomness.

- ``Forward``: torch's run of the model on one input; a failing ``forward``, a non-tensor output and
  an out-of-memory become one-screen ``SpecError`` / ``ResourceError``s.
- ``confirm_deterministic``: two torch runs on one input that differ are a ``NondeterminismError``.
- ``bounded``: a MemoryError while drawing or converting fails the check alone.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NondeterminismError, ResourceError, SpecError, describe_exception, first_line

if TYPE_CHECKING:
    from ..inputs.spec import InputSlot
    from .model_state import ModelState


@dataclass
class Forward:
    """torch's run of the user's model, failures named: the spec's mistakes are the user's to fix."""

    model: Any
    slots: tuple[InputSlot, ...]
    positional: bool
    model_name: str

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    def raw(self, feeds: Mapping[str, np.ndarray]) -> Any:
        from ..export.outputs import call_forward

        try:
            return call_forward(self.model, feeds, self.names, self.positional)
        except MemoryError:
            raise out_of_memory(self.model_name, "torch's forward", feeds) from None
        except Exception as exc:  # noqa: BLE001 - forward's own code raises anything; KeyboardInterrupt passes
            if is_out_of_memory(exc):
                raise out_of_memory(self.model_name, "torch's forward", feeds, exc) from None
            raise self._spec_error(feeds, exc) from None

    def outputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Numpy outputs by export name, after checking every leaf is a tensor."""
        from ..export.outputs import as_numpy

        out = self.raw(feeds)
        check_outputs(out, self.model_name)
        return as_numpy(out)

    def _spec_error(self, feeds: Mapping[str, np.ndarray], exc: BaseException) -> SpecError:
        from ..formatting import describe_array

        specs = "; ".join(f"{s.name}={s.describe()}" for s in self.slots)
        drawn = "; ".join(f"{k}={describe_array(np.asarray(v))}" for k, v in feeds.items())
        return SpecError(
            "forward failed on an input drawn from the spec",
            model=self.model_name,
            cause=f"{describe_exception(exc)}\n  spec:  {specs}\n  input: {drawn}",
            hint="make the spec match what forward accepts (shape, dtype, value range), or fix forward",
            details="".join(traceback.format_exception(exc)),
        )


def check_outputs(out: Any, model_name: str, path: str = "output") -> None:
    """Every leaf a tensor, every dict key a string: name the first one that is not."""
    import torch

    if isinstance(out, torch.Tensor):
        return
    if isinstance(out, Mapping):
        for key, value in out.items():
            if not isinstance(key, str):
                raise SpecError(
                    f"forward's output {path} is a dict with a non-string key {key!r}", model=model_name,
                    hint="use string keys: they become the ONNX output names",
                )
            check_outputs(value, model_name, f"{path}[{key!r}]")
    elif isinstance(out, (list, tuple)):
        for i, value in enumerate(out):
            check_outputs(value, model_name, f"{path}[{i}]")
    else:
        raise SpecError(
            f"forward's output {path} is {type(out).__name__}, not a tensor" + (f" ({first_line(repr(out), 60)})" if out is not None else ""),
            model=model_name,
            hint="return tensors only (in tuples, lists or dicts with string keys); drop or wrap the other values",
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's ``OutOfMemoryError`` (CUDA, MPS) and the allocators' messages, TensorFlow's ResourceExhausted."""
    return type(exc).__name__ in ("OutOfMemoryError", "ResourceExhaustedError") or "out of memory" in str(exc).lower()


def out_of_memory(model_name: str, where: str, feeds: Mapping[str, np.ndarray] | None = None, exc: BaseException | None = None) -> ResourceError:
    from ..formatting import describe_array

    size = sum(np.asarray(v).nbytes for v in feeds.values()) if feeds else 0
    return ResourceError(
        f"out of memory in {where}; this check fails, the session goes on",
        model=model_name,
        cause=(describe_exception(exc) + "\n  " if exc else "")
        + (f"input: {', '.join(f'{k}={describe_array(np.asarray(v))}' for k, v in feeds.items())} ({size} bytes)" if feeds else "while drawing or converting"),
        hint="lower the Dim maxima or max_input_bytes, or run this test alone",
    )


def confirm_deterministic(
    forward: Forward, feeds: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray] | None, state: ModelState | None
) -> dict[str, np.ndarray]:
    """Run torch twice on ``feeds`` (and compare with ``reference``, an earlier run): any difference
    is a NondeterminismError naming the output and how far apart the runs are. Returns the first run."""
    runs = [forward.outputs(feeds), forward.outputs(feeds)]
    pairs = [(runs[0], runs[1])] + ([(dict(reference), runs[0])] if reference is not None else [])
    for first, second in pairs:
        differing = [_difference(name, first.get(name), second.get(name)) for name in dict.fromkeys([*first, *second])]
        differing = [d for d in differing if d]
        if differing:
            changed = state.changes() if state is not None else []
            raise NondeterminismError(
                f"{forward.model_name} is not deterministic: two torch runs on the same input differ, so no backend can match it",
                model=forward.model_name,
                cause="\n  ".join(differing[:5])
                + (f"\n  forward changes the model's own state: {', '.join(changed[:5])}" if changed else ""),
                hint="remove the randomness or state from forward (torch.rand*, dropout with training=True, counters), "
                "or make it a fixed input",
            )
    return runs[0]


def _difference(name: str, a: np.ndarray | None, b: np.ndarray | None) -> str | None:
    """None when two runs agree exactly (NaN equal to NaN), else a line of figures."""
    if a is None or b is None:
        return f"output {name!r}: present in one run only"
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"output {name!r}: {a.dtype}{list(a.shape)} in one run, {b.dtype}{list(b.shape)} in the other"
    equal = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else (a == b)
    if bool(np.all(equal)):
        return None
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff[equal] = 0
    worst = np.unravel_index(int(np.nanargmax(diff)), diff.shape) if diff.size else ()
    return (
        f"output {name!r} {a.dtype}{list(a.shape)}: {int((~equal).sum())} / {a.size} elements differ between the runs, "
        f"max abs difference {float(np.nanmax(diff)):.3g} at {list(map(int, worst))} ({a[worst].item():.6g} vs {b[worst].item():.6g})"
    )


def bounded(run: Any, model_name: str) -> None:
    """``run()``, with a MemoryError (drawing an input, a framework's allocation) failing this
    check alone: the traceback's frames, which hold the big arrays, are dropped."""
    try:
        run()
    except MemoryError:
        raise out_of_memory(model_name, "the check") from None


