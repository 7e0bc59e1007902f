"""Importing what the plugin needs cheaply: the frameworks once, hypothesis past pytest's rewriting.

torch and TensorFlow together leave about 800,000 long-lived Python objects (modules, functions,
op registries). Every full collection walks all of them: 0.34 s each, measured here. pytest runs
two at the end of a session (to surface unraisable exceptions) and the interpreter one more at
exit: about 2 s of a run that imported both, and the same again in every pytest-xdist worker, on
top of the collections during conversion. ``gc.freeze()`` right after the import moves these
objects to the permanent generation, as CPython intends for long-lived start-up state, so later
collections walk only what tests create.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterable


def import_frameworks(names: Iterable[str]) -> None:
    """Import ``names`` with the collector paused, then freeze what exists; nothing at all once
    they are imported (a freeze then would keep whatever the tests since left behind).

    Paused: importing TensorFlow creates millions of objects and each collection it triggers walks
    everything already loaded (after torch: 2.8 s with collections, 2.1 s without).
    Frozen: everything alive at the end, which is mostly the new modules. The few thousand cyclic
    garbage objects an import leaves (10,000 for torch + TensorFlow, a few MB) stay in memory, and
    so does a cycle that was alive then and dies later (at most once per framework per process);
    neither is worth a full collection's 0.3 s.
    """
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            importlib.import_module(name)
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()


def import_hypothesis(module: str = "hypothesis.extra.numpy") -> None:
    """Import hypothesis, the first time, past pytest's assertion rewriting.

    pytest rewrites every module of a package that registers a pytest plugin, hypothesis included
    (about 80 modules). Where bytecode is not written (``PYTHONDONTWRITEBYTECODE``, common in CI
    images) it cannot cache the result and parses and compiles them again in every run: 0.8 s
    measured, against 0.07 s for a plain import. Hypothesis's asserts are its own invariants, where
    pytest's introspection adds nothing. A project that imports hypothesis itself keeps pytest's way.
    """
    if "hypothesis" in sys.modules:
        return
    hooks = [(i, h) for i, h in enumerate(sys.meta_path) if type(h).__module__ == "_pytest.assertion.rewrite"]
    for _, hook in hooks:
        sys.meta_path.remove(hook)
    try:
        importlib.import_module(module)
    finally:
        for i, hook in hooks:
            sys.meta_path.insert(i, hook)
