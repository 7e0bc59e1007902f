"""What a check owes the user's model and session: leave the model as it was, call ``forward``
only in ways whose failures are named, and never blame a backend for torch's own randomness.

- ``ModelState``: a snapshot of parameters, buffers, plain attributes and every module's mode,
  restored after the check whatever its outcome, and the list of what ``forward`` changed.
- ``Forward``: torch's run of the model on one input; a failing ``forward``, a non-tensor output and
  an out-of-memory become one-screen ``SpecError`` / ``ResourceError``s.
- ``confirm_deterministic``: two torch runs on one input that differ are a ``NondeterminismError``.
- ``settle``: every backend of a check ends with a verdict and a message in the report.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import (
    BackendUnavailable,
    ModelStateWarning,
    NondeterminismError,
    ResourceError,
    SpecError,
    XframeError,
    describe_exception,
    first_line,
)

if TYPE_CHECKING:
    from .results import ParityReport
    from .spec import InputSlot

#: parameters are copied for the restore only up to this many bytes in all (buffers always): a
#: large model's weights are not doubled; beyond it, a parameter forward writes is reported, not restored
PARAMETER_SNAPSHOT_BYTES = 256 * 2**20

#: attribute values a forward may count or flag with (``self.calls += 1``), restored like buffers
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


@dataclass
class ModelState:
    """Everything ``forward`` or an exporter could change on a module tree, as it was."""

    modes: list[tuple[Any, bool]] = field(default_factory=list)
    #: (module, "_parameters" | "_buffers", name, the tensor object, its version, a copy of its values)
    tensors: list[tuple[Any, str, str, Any, int, Any]] = field(default_factory=list)
    attrs: list[tuple[Any, str, Any]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, model: Any) -> ModelState:
        """Snapshot ``model``: a copy of its buffers, and of its parameters while they fit in
        ``PARAMETER_SNAPSHOT_BYTES``; every tensor's identity and write count."""
        import torch

        state = cls()
        copy_parameters = sum(p.numel() * p.element_size() for p in model.parameters()) <= PARAMETER_SNAPSHOT_BYTES
        #: one copy per tensor: a shared submodule or tied weights appear under several modules
        copies: dict[int, Any] = {}
        with torch.no_grad():
            for prefix, module in model.named_modules(remove_duplicate=False):
                state.names[id(module)] = prefix
                state.modes.append((module, module.training))
                for kind in ("_parameters", "_buffers"):
                    for name, t in module.__dict__.get(kind, {}).items():
                        saved = None
                        if t is not None and (kind != "_parameters" or copy_parameters):
                            if id(t) not in copies:
                                copies[id(t)] = t.detach().clone()
                            saved = copies[id(t)]
                        state.tensors.append((module, kind, name, t, _version(t), saved))
                state.attrs.extend((module, k, v) for k, v in vars(module).items() if k != "training" and isinstance(v, _PLAIN))
        return state

    def changes(self) -> list[str]:
        """What differs from the snapshot, by dotted name ("buffer n", "attribute calls"); modes aside."""
        found = []
        for module, kind, name, obj, version, _ in self.tensors:
            now = module.__dict__.get(kind, {}).get(name)
            if now is not obj or (obj is not None and _version(obj) != version):
                found.append(f"{kind[1:-1]} {self._dotted(module, name)}")
        for module, name, value in self.attrs:
            if vars(module).get(name, _MISSING) is not value and vars(module).get(name, _MISSING) != value:
                found.append(f"attribute {self._dotted(module, name)}")
        return found

    def restore(self) -> list[str]:
        """Put back every tensor object and value, attribute and mode; returns the tensors whose
        values were written but not copied (parameters over ``PARAMETER_SNAPSHOT_BYTES``)."""
        import torch

        lost = []
        with torch.no_grad():
            for module, kind, name, obj, version, saved in self.tensors:
                getattr(module, kind)[name] = obj
                if obj is not None and _version(obj) != version:
                    if saved is None:
                        lost.append(f"{kind[1:-1]} {self._dotted(module, name)}")
                    elif obj.shape == saved.shape and obj.dtype == saved.dtype:
                        obj.copy_(saved)
                    else:
                        obj.data = saved
        for module, name, value in self.attrs:
            setattr(module, name, value)
        for module, mode in self.modes:
            module.training = mode
        return lost

    def _dotted(self, module: Any, name: str) -> str:
        prefix = self.names.get(id(module), "")
        return f"{prefix}.{name}" if prefix else name


_MISSING = object()


def _version(tensor: Any) -> int:
    """How often ``tensor`` was written in place. Private API (``Tensor._version``), torch 2.13."""
    return -1 if tensor is None else int(getattr(tensor, "_version", 0))


def restore_and_warn(state: ModelState, model_name: str) -> None:
    """Put the model back; ``forward`` changing its own state makes parity ill-defined (the export
    captures one state), so a warning names what it changed and anything that could not be restored."""
    changed = state.changes()
    lost = state.restore()
    if changed:
        restored = (
            f"xframe could not restore {', '.join(lost[:5])} (parameters over {PARAMETER_SNAPSHOT_BYTES} bytes are not copied)"
            if lost else "xframe restored it after the check"
        )
        warnings.warn(
            ModelStateWarning(
                f"{model_name}.forward changes the model's own state ({', '.join(changed[:5])}"
                + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                + f"); {restored}, but parity is ill-defined for such a model: the export fixes one state, torch moves on from it"
            ),
            stacklevel=3,
        )


def note_state(failure: Any, state: ModelState) -> None:
    """A mismatch of a model that writes its own state says so: the export captured one state."""
    changed = state.changes()
    if changed:
        failure.report_text += f"\nnote: forward changes the model's own state ({', '.join(changed[:5])}): the export fixed one state"


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
        from .outputs import call_forward

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
        from .outputs import as_numpy

        out = self.raw(feeds)
        check_outputs(out, self.model_name)
        return as_numpy(out)

    def _spec_error(self, feeds: Mapping[str, np.ndarray], exc: BaseException) -> SpecError:
        from .formatting import describe_array

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
    from .formatting import describe_array

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


def settle(report: ParityReport, exc: BaseException | None) -> None:
    """Every backend the check was asked for ends passed, failed, error or skipped, with a message;
    one the check never reached gets the error that stopped it."""
    import pytest

    from .results import BackendResult

    skipped = isinstance(exc, (BackendUnavailable, pytest.skip.Exception))
    for name in report.options.backends:
        report.backends.setdefault(name, BackendResult(name))
    for result in report.backends.values():
        if result.verdict == "pending":
            result.verdict = "passed" if exc is None else "skipped" if skipped else "error"
            if exc is not None and not result.message:
                result.message = first_line(str(exc)) if isinstance(exc, XframeError) else describe_exception(exc)


def bounded(run: Any, model_name: str) -> None:
    """``run()``, with a MemoryError (drawing an input, a framework's allocation) failing this
    check alone: the traceback's frames, which hold the big arrays, are dropped."""
    try:
        run()
    except MemoryError:
        raise out_of_memory(model_name, "the check") from None


def safe_repr(model: Any) -> str:
    """``repr(model)``, or its module structure when a ``__repr__`` raises (the user's code)."""
    try:
        return repr(model)
    except Exception:  # noqa: BLE001 - the user's __repr__ may raise anything
        return " ".join(f"{n}:{type(m).__module__}.{type(m).__qualname__}" for n, m in model.named_modules())
