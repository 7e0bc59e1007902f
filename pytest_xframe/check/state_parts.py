"""The parts of a module's state a check snapshots, compares and restores, one small class each.

- ``TensorPart``: one parameter or buffer object: its dtype, device, requires_grad and values.
- ``DictPart``: a dict or set torch keeps on a module (the parameter, buffer and submodule
  registries, every hook dictionary) or on ``torch.nn.modules.module`` (the global hooks): its
  entries by identity, restored in place so that hook handles keep pointing at it.
- ``AttrPart``: a module's own attributes: plain values, containers (by their items' identity)
  and unregistered tensors (by their values).

Each part says what changed in words (``parameter lin.weight (dtype float32 -> float64)``) and
puts itself back. ``ModelState`` (``model_state.py``) gathers them for a whole module tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the registries of torch.nn.Module (torch 2.13), by the word a message uses for their entries
REGISTRIES = {"_parameters": "parameter", "_buffers": "buffer", "_modules": "submodule"}

#: the hook dictionaries of torch.nn.Module (torch 2.13), by the words a message uses
HOOK_DICTS = {
    "_forward_hooks": "forward hooks",
    "_forward_pre_hooks": "forward pre-hooks",
    "_backward_hooks": "backward hooks",
    "_backward_pre_hooks": "backward pre-hooks",
    "_state_dict_hooks": "state_dict hooks",
    "_state_dict_pre_hooks": "state_dict pre-hooks",
    "_load_state_dict_pre_hooks": "load_state_dict pre-hooks",
    "_load_state_dict_post_hooks": "load_state_dict post-hooks",
}

#: torch.nn.Module's flag of the kind of backward hooks it has: restored, never named (the hooks are)
SILENT = frozenset({"_is_full_backward_hook"})

#: torch.nn.Module's bookkeeping beside its hook dictionaries (which hooks take kwargs, which run
#: always; whether backward hooks are full ones): restored with them, named through them
BOOKKEEPING = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs", "_non_persistent_buffers_set")

#: attributes torch.nn.Module owns (``training`` is restored as the module's mode); every other
#: attribute in a module's ``__dict__`` is the model's own
TORCH_OWNED = frozenset({*REGISTRIES, *HOOK_DICTS, *BOOKKEEPING, "training"})

#: module-level hook dictionaries of torch.nn.modules.module (private API, torch 2.13): hooks
#: ``register_module_forward_hook`` and its kind add to every module
GLOBAL_HOOK_DICTS = {
    "_global_forward_hooks": "global forward hooks",
    "_global_forward_pre_hooks": "global forward pre-hooks",
    "_global_backward_hooks": "global backward hooks",
    "_global_backward_pre_hooks": "global backward pre-hooks",
    "_global_forward_hooks_with_kwargs": None,
    "_global_forward_hooks_always_called": None,
    "_global_buffer_registration_hooks": "global buffer registration hooks",
    "_global_module_registration_hooks": "global module registration hooks",
    "_global_parameter_registration_hooks": "global parameter registration hooks",
}

#: attribute values compared by value, not identity (``self.calls += 1`` makes a new int)
PLAIN = (bool, int, float, complex, str, bytes, type(None))


def version(tensor: Any) -> int:
    """How often ``tensor`` was written in place. Private API (``Tensor._version``), torch 2.13."""
    return -1 if tensor is None else int(getattr(tensor, "_version", 0))


def copy_of(tensor: Any, copies: dict[int, Any]) -> Any:
    """One copy per tensor object, however many modules hold it (tied weights, a shared submodule)."""
    if id(tensor) not in copies:
        copies[id(tensor)] = tensor.detach().clone()
    return copies[id(tensor)]


def _widens(old: Any, new: Any) -> bool:
    """Whether every value of dtype ``old`` survives a trip through ``new`` (float32 -> float64)."""
    import torch

    return torch.promote_types(old, new) == new and new.itemsize >= old.itemsize


@dataclass
class TensorPart:
    """A parameter or buffer object as it was: what it holds and how."""

    kind: str
    where: str
    obj: Any
    version: int
    dtype: Any
    device: Any
    shape: tuple[int, ...]
    requires_grad: bool
    #: a copy of its values, or None (a parameter over the snapshot budget)
    saved: Any
    #: its ``.grad`` (a leaf's), by identity
    grad: Any = None
    #: where its values live: ``t.data = other`` swaps them without counting a write
    ptr: int = 0

    @classmethod
    def of(cls, kind: str, where: str, obj: Any, saved: Any) -> TensorPart:
        return cls(kind, where, obj, version(obj), obj.dtype, obj.device, tuple(obj.shape), obj.requires_grad, saved, _grad(obj), _ptr(obj))

    def _moved(self) -> str:
        """'dtype float32 -> float64', 'device ...', 'shape ...': how the object now differs, or ''."""
        t = self.obj
        parts = [
            f"{what} {_short(before)} -> {_short(now)}"
            for what, before, now in (("dtype", self.dtype, t.dtype), ("device", self.device, t.device), ("shape", list(self.shape), list(t.shape)))
            if before != now
        ]
        return ", ".join(parts)

    def changes(self) -> list[str]:
        moved, found = self._moved(), []
        if moved:
            found.append(f"{self.kind} {self.where} ({moved})")
        elif self._written() and not self._same_values():
            found.append(f"{self.kind} {self.where}")
        if self.obj.requires_grad != self.requires_grad:
            found.append(f"{self.kind} {self.where} (requires_grad {self.requires_grad} -> {self.obj.requires_grad})")
        if _grad(self.obj) is not self.grad:
            found.append(f"{self.kind} {self.where} (grad {'set' if self.grad is None else 'replaced'})")
        return found

    def _written(self) -> bool:
        """Written in place (its write count moved) or given other values (``.data = ...``)."""
        return version(self.obj) != self.version or _ptr(self.obj) != self.ptr

    def _same_values(self) -> bool:
        """Written in place but to the values it had (a converter that copies weights in and out
        bumps their write count): not a change. Unknown without a copy."""
        import torch

        if self.saved is None:
            return False
        now, saved = self.obj.detach(), self.saved
        return bool(torch.equal(now, saved) or (now.is_floating_point() and ((now == saved) | (now.isnan() & saved.isnan())).all()))

    def restore(self) -> str | None:
        """Put the object's values, dtype, device and requires_grad back; the name of what could
        not be (values written, narrowed or reshaped with no copy kept), else None."""
        t, lost = self.obj, None
        moved, written = bool(self._moved()), self._written()
        if self.saved is not None and moved:
            t.data = self.saved
        elif self.saved is not None and written:
            t.copy_(self.saved)
        elif moved or written:
            reshaped = tuple(t.shape) != self.shape
            if written or reshaped or not _widens(self.dtype, t.dtype):
                lost = f"{self.kind} {self.where}"
            if moved and not reshaped:
                t.data = t.data.to(device=self.device, dtype=self.dtype)
        if t.requires_grad != self.requires_grad and t.is_leaf:
            t.requires_grad_(self.requires_grad)
        if _grad(t) is not self.grad:
            t.grad = self.grad
        return lost


def _grad(tensor: Any) -> Any:
    """A leaf tensor's ``.grad`` (reading a non-leaf's warns; it has none to keep)."""
    return tensor.grad if tensor.is_leaf else None


def _ptr(tensor: Any) -> int:
    """The address of a tensor's values (0 where it has none to give: sparse, nested)."""
    try:
        return int(tensor.data_ptr())
    except RuntimeError:
        return 0


def _short(value: Any) -> str:
    return str(value).replace("torch.", "")


@dataclass
class DictPart:
    """A dict, list or set as it was, entry by entry; restored in place (its identity kept)."""

    #: how a message names one of its entries ("parameter", "submodule"), or the dict as a whole
    #: ("forward hooks of lin"); None: bookkeeping, restored but never named
    label: str | None
    obj: Any
    items: list[tuple[Any, Any]]
    #: the module's dotted prefix, for registries whose entries are named one by one
    prefix: str | None = None

    @classmethod
    def of(cls, label: str | None, obj: Any, prefix: str | None = None) -> DictPart:
        return cls(label, obj, _entries(obj), prefix)

    def changed(self) -> bool:
        return _differ(_entries(self.obj), self.items)

    def changes(self) -> list[str]:
        if self.label is None or not self.changed():
            return []
        if self.prefix is None:  # a hook dictionary: named as a whole
            return [f"{self.label} ({_counted(_entries(self.obj), self.items)})"]
        before, now = dict(self.items), dict(_entries(self.obj))
        found = [f"{self.label} {_join(self.prefix, k)} added" for k in now if k not in before]
        found += [f"{self.label} {_join(self.prefix, k)} removed" for k in before if k not in now]
        found += [f"{self.label} {_join(self.prefix, k)} replaced" for k in before if k in now and now[k] is not before[k]]
        return found

    def restore(self) -> None:
        if not self.changed():
            return
        if isinstance(self.obj, list):
            self.obj[:] = [v for _, v in self.items]
            return
        self.obj.clear()
        if isinstance(self.obj, dict):
            self.obj.update(self.items)
        else:
            self.obj.update(k for k, _ in self.items)


def _entries(obj: Any) -> list[tuple[Any, Any]]:
    """A dict's items, a list's or tuple's (index, item) pairs, a set's (item, item) pairs."""
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    return [(x, x) for x in obj]


def _differ(now: list[tuple[Any, Any]], before: list[tuple[Any, Any]]) -> bool:
    """Entries that differ: keys by equality, values by identity."""
    return len(now) != len(before) or any(a[0] != b[0] or a[1] is not b[1] for a, b in zip(now, before))


def _counted(now: list[tuple[Any, Any]], before: list[tuple[Any, Any]]) -> str:
    """'8 added', '1 removed', or both, by entry identity."""
    old, new = {k for k, _ in before}, {k for k, _ in now}
    parts = [f"{len(new - old)} added" if new - old else "", f"{len(old - new)} removed" if old - new else ""]
    return ", ".join(p for p in parts if p) or "replaced"


def _join(prefix: str, name: Any) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


@dataclass
class AttrPart:
    """A module's own attributes (its ``__dict__`` less what torch owns), as they were."""

    prefix: str
    module: Any
    values: dict[str, Any]
    #: shallow copies of list, dict and set attributes (``self.seen.append(x)`` is a change)
    containers: dict[str, DictPart] = field(default_factory=dict)
    #: unregistered tensor attributes: written in place is a change; a copy restores them
    tensors: dict[str, TensorPart] = field(default_factory=dict)

    @classmethod
    def of(cls, prefix: str, module: Any, copies: dict[int, Any]) -> AttrPart:
        import torch

        values = {k: v for k, v in vars(module).items() if k not in TORCH_OWNED}
        part = cls(prefix, module, values)
        for k, v in values.items():
            if isinstance(v, (list, dict, set)):
                part.containers[k] = DictPart.of(None, v)
            elif isinstance(v, torch.Tensor):
                part.tensors[k] = TensorPart.of("attribute", _join(prefix, k), v, copy_of(v, copies))
        return part

    def changes(self) -> list[str]:
        now = {k: v for k, v in vars(self.module).items() if k not in TORCH_OWNED}
        found = [f"attribute {_join(self.prefix, k)} added" for k in now if k not in self.values and k not in SILENT]
        for k, v in self.values.items():
            if k in SILENT:
                continue
            if k not in now:
                found.append(f"attribute {_join(self.prefix, k)} removed")
            elif not _same(now[k], v):
                found.append(f"attribute {_join(self.prefix, k)}")
            elif k in self.containers and self.containers[k].changed():
                found.append(f"attribute {_join(self.prefix, k)} (contents)")
            elif k in self.tensors:
                found.extend(self.tensors[k].changes())
        return found

    def restore(self) -> None:
        attrs = vars(self.module)
        for k in [k for k in attrs if k not in TORCH_OWNED and k not in self.values]:
            del attrs[k]
        attrs.update(self.values)
        for part in (*self.containers.values(), *self.tensors.values()):
            part.restore()


#: how deep ``_same`` compares nested tuples and containers; deeper, only the same object is the same
SAME_DEPTH = 8


def _same(now: Any, before: Any, depth: int = SAME_DEPTH) -> bool:
    """The same object, an equal plain value, or a tuple or container of the same items, nested
    (the dynamo exporter puts copies of list, tuple and dict attributes back after tracing: a
    ``Conv2d``'s ``kernel_size``, a ``LayerNorm``'s ``normalized_shape``, a transformers model's
    ``_pp_plan``, a dict of tuples of lists)."""
    if now is before:
        return True
    if type(now) is not type(before) or depth == 0:
        return False
    if isinstance(before, PLAIN):
        return bool(now == before)
    if isinstance(before, set):
        return bool(now == before)
    if not isinstance(before, (tuple, list, dict)):
        return False
    ours, theirs = _entries(now), _entries(before)
    return len(ours) == len(theirs) and all(a[0] == b[0] and _same(a[1], b[1], depth - 1) for a, b in zip(ours, theirs))


def global_hooks() -> list[DictPart]:
    """The hook dictionaries torch keeps for every module (private API of
    ``torch.nn.modules.module``, torch 2.13); a name torch no longer has is skipped."""
    from torch.nn.modules import module as torch_module

    return [
        DictPart.of(label, getattr(torch_module, name))
        for name, label in GLOBAL_HOOK_DICTS.items()
        if isinstance(getattr(torch_module, name, None), dict)
    ]
