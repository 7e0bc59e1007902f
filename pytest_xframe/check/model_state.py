"""What a check owes the user's model: a snapshot of parameters, buffers, plain attributes and
every module's mode, restored after the check whatever its outcome, and the list of what
``forward`` changed (a model that writes its own state makes parity ill-defined).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelStateWarning

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
