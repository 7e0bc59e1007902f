"""What a check owes the user's model: a snapshot of everything a module's state includes,
restored after the check whatever its outcome, and the list of what ``forward`` (or an exporter)
changed: a model that writes its own state makes parity ill-defined.

The snapshot covers every module of the tree (``state_parts``): each parameter's and buffer's
object, dtype, device, shape, requires_grad and values; the parameter, buffer and submodule
registries (entries added, removed or replaced); every hook dictionary, per module and global;
the module's own attributes (plain values, containers, unregistered tensors) and its mode.
A TorchScript module keeps its state in C++: its tensors and modes are snapshotted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelStateWarning
from .state_parts import BOOKKEEPING, HOOK_DICTS, REGISTRIES, AttrPart, DictPart, TensorPart, copy_of, global_hooks

#: parameters are copied for the restore only up to this many bytes in all (buffers always): a
#: large model's weights are not doubled; beyond it, a parameter forward writes is reported, not restored
PARAMETER_SNAPSHOT_BYTES = 256 * 2**20


@dataclass
class ModelState:
    """Everything ``forward`` or an exporter could change on a module tree, as it was."""

    #: (module, dotted name, training) for every place a module appears
    modes: list[tuple[Any, str, bool]] = field(default_factory=list)
    #: (module, dotted name, class): ``torch.nn.utils.parametrize`` swaps a module's class
    classes: list[tuple[Any, str, type]] = field(default_factory=list)
    tensors: list[TensorPart] = field(default_factory=list)
    dicts: list[DictPart] = field(default_factory=list)
    attrs: list[AttrPart] = field(default_factory=list)

    @classmethod
    def of(cls, model: Any) -> ModelState:
        """Snapshot ``model``: a copy of its buffers, and of its parameters while they fit in
        ``PARAMETER_SNAPSHOT_BYTES``; every other part by identity and metadata."""
        import torch

        state = cls(dicts=global_hooks())
        copy_parameters = sum(p.numel() * p.element_size() for p in model.parameters()) <= PARAMETER_SNAPSHOT_BYTES
        copies: dict[int, Any] = {}
        seen: set[int] = set()
        with torch.no_grad():
            for prefix, module in model.named_modules(remove_duplicate=False):
                state.modes.append((module, prefix, module.training))
                if id(module) not in seen:
                    seen.add(id(module))
                    state.classes.append((module, prefix, type(module)))
                    state._add(prefix, module, copy_parameters, copies)
        return state

    def _add(self, prefix: str, module: Any, copy_parameters: bool, copies: dict[int, Any]) -> None:
        """One module's own parts (its children come as modules of their own)."""
        import torch

        scripted = isinstance(module, torch.jit.ScriptModule)  # registries and attributes live in C++; no hooks
        for word, name, t in _own_tensors(module, scripted):
            saved = copy_of(t, copies) if word == "buffer" or copy_parameters else None
            self.tensors.append(TensorPart.of(word, f"{prefix}.{name}" if prefix else name, t, saved))
        if scripted:
            return
        own = vars(module)
        self.dicts.extend(DictPart.of(word, own[key], prefix) for key, word in REGISTRIES.items() if key in own)
        self.dicts.extend(DictPart.of(f"{label} of {prefix}" if prefix else label, own[key]) for key, label in HOOK_DICTS.items() if key in own)
        self.dicts.extend(DictPart.of(None, own[key]) for key in BOOKKEEPING if isinstance(own.get(key), (dict, set)))
        self.attrs.append(AttrPart.of(prefix, module, copies))

    def changes(self) -> list[str]:
        """What differs from the snapshot, in words ("buffer n", "parameter lin.weight (dtype
        float32 -> float64)", "forward hooks of lin (8 added)", "attribute calls")."""
        found = [c for part in self.tensors for c in part.changes()]
        found += [c for part in self.dicts for c in part.changes()]
        found += [c for part in self.attrs for c in part.changes()]
        found += [f"training mode of {prefix or 'the model'} ({mode} -> {m.training})" for m, prefix, mode in self.modes if m.training != mode]
        found += [f"class of {prefix or 'the model'} ({cls.__name__} -> {type(m).__name__})" for m, prefix, cls in self.classes if type(m) is not cls]
        return list(dict.fromkeys(found))

    def restore(self) -> list[str]:
        """Put back every registry and hook dictionary, tensor object and value, attribute and
        mode; returns what could not be (parameters over ``PARAMETER_SNAPSHOT_BYTES`` written in place)."""
        import torch

        for module, _, cls in self.classes:
            if type(module) is not cls:
                module.__class__ = cls
        with torch.no_grad():
            for part in self.dicts:
                part.restore()
            lost = [part.restore() for part in self.tensors]
            for attrs in self.attrs:
                attrs.restore()
        for module, _, mode in self.modes:
            if module.training != mode:
                module.training = mode
        return [name for name in dict.fromkeys(lost) if name]


def _own_tensors(module: Any, scripted: bool) -> list[tuple[str, str, Any]]:
    """("parameter" | "buffer", name, tensor) registered on ``module`` itself, every name of a
    tensor registered twice included (a TorchScript module's through its accessors)."""
    if scripted:
        return [("parameter", n, t) for n, t in module.named_parameters(recurse=False)] + [
            ("buffer", n, t) for n, t in module.named_buffers(recurse=False)
        ]
    return [(word, n, t) for key, word in (("_parameters", "parameter"), ("_buffers", "buffer")) for n, t in vars(module)[key].items() if t is not None]


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
