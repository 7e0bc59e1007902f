"""Replay a saved failing case without pytest or torch: run the backend, compare, print.

``python -m pytest_xframe replay DIR`` exits 1 when the outputs still differ, 0 when they agree.
The backend rebuilds its runner from the case directory through its ``load_case`` capability.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import load_npz
from .compare import compare_output, format_comparison
from .formatting import describe_array


def _import_function(ref: dict[str, Any]) -> Callable[..., Any]:
    """A function recorded by module and qualified name: imported by module name, or from its file
    when the module is not importable outside pytest (a conftest)."""
    try:
        module = importlib.import_module(ref["module"])
    except ImportError:
        if not ref.get("file"):
            raise
        spec = importlib.util.spec_from_file_location(f"_xframe_replay_{ref['module']}", ref["file"])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    found: Any = module
    for part in ref["qualname"].split("."):
        found = getattr(found, part)
    return found


def load_runner(case_dir: Path, case: dict):
    """The case's runner: the named backend's ``load_case``, found in the registry (built-ins and
    entry points) or where the case recorded it (a backend a conftest registered)."""
    from . import backends

    name = case["backend"]
    known = backends.registry()
    if name in known:
        load_case = known.get(name).load_case
    else:
        load_case = _import_function(case["load_case"]) if case.get("load_case") else None
    if load_case is None:
        raise SystemExit(f"replay: backend {name!r} cannot load a saved case (it has no load_case); rerun its test instead of replaying {case_dir}")
    return load_case(case_dir, case)


def _judged(name: str, ref: np.ndarray, got: np.ndarray, policy: dict, equal_nan: bool) -> bool:
    """Judge one output by the policy the check used and print its figures; True when it passes."""
    from .judge import describe_figures, format_judged, judge_example
    from .policy import Thresholds

    thresholds = Thresholds.from_dict(policy)
    j = judge_example({name: ref}, {name: got}, lambda _name, _dtype: thresholds, equal_nan)[0]
    if j.comparison.ok:
        f = j.figures
        print(format_comparison(j.comparison) + ("" if f is None else "\n    metrics: " + describe_figures(f.mismatch, f.cosine, f.snr_db, f.topk, thresholds, (j.comparison.mismatches, j.comparison.total))))
    else:
        print(format_judged(j))
    return j.comparison.ok


def replay(case_dir: Path) -> int:
    case_file = case_dir / "case.json"
    if not case_file.is_file():
        raise SystemExit(f"replay: {case_file} not found; pass the directory a failure message named")
    case = json.loads(case_file.read_text())
    inputs = load_npz(case_dir / "inputs.npz")
    reference = load_npz(case_dir / "reference.npz")
    tolerances = {c["name"]: (c["atol"], c["rtol"]) for c in case["comparisons"]}
    policies = case.get("policies") or {}  # cases kept before policies existed: atol/rtol only
    equal_nan = bool(case.get("options", {}).get("equal_nan", False))
    got = load_runner(case_dir, case).run(inputs)
    print(f"replay {case['test_id']} [{case['backend']}], model {case['model']}, ONNX from {case['onnx']}")
    print("input: " + ", ".join(f"{k}={describe_array(v)}" for k, v in inputs.items()))
    failed = False
    for name, ref in reference.items():
        atol, rtol = tolerances.get(name, (0.0, 0.0))
        if name not in got:
            print(f"output {name!r}: missing from the backend's outputs")
            failed = True
            continue
        if name in policies:
            failed |= not _judged(name, ref, np.asarray(got[name]), policies[name], equal_nan)
            continue
        c = compare_output(name, ref, np.asarray(got[name]), atol, rtol, equal_nan)
        failed |= not c.ok
        print(format_comparison(c))
    print("verdict: " + ("MISMATCH" if failed else "match"))
    return 1 if failed else 0
