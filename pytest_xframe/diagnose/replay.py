"""Replay a saved failing case without pytest or torch: run the backend, compare, print.

``python -m pytest_xframe replay DIR`` exits 0 when the outputs agree, 1 when they still differ and
2 when the case cannot be replayed (a damaged or incomplete directory, a backend that will not load
it): then one line on stderr says what is wrong.
The backend rebuilds its runner from the case directory through its ``load_case`` capability.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import describe_exception
from ..formatting import describe_array
from ..judge.compare import compare_output, format_comparison
from .artifacts import READABLE_CASE_VERSIONS, altered_files, load_npz

#: exit statuses of ``replay``
MATCH, MISMATCH, UNUSABLE = 0, 1, 2


class BadCase(Exception):
    """A case directory that cannot be replayed; the message is the one line to print."""


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
    from .. import backends

    name = case["backend"]
    known = backends.registry()
    if name in known:
        load_case = known.get(name).load_case
    else:
        load_case = _import_function(case["load_case"]) if case.get("load_case") else None
    if load_case is None:
        raise BadCase(f"backend {name!r} cannot load a saved case (it has no load_case); rerun its test instead of replaying {case_dir}")
    return load_case(case_dir, case)


def _judged(name: str, ref: np.ndarray, got: np.ndarray, policy: dict, equal_nan: bool) -> bool:
    """Judge one output by the policy the check used and print its figures; True when it passes."""
    from ..judge.policy import Thresholds
    from ..judge.verdict import describe_figures, format_judged, judge_example

    thresholds = Thresholds.from_dict(policy)
    j = judge_example({name: ref}, {name: got}, lambda _name, _dtype: thresholds, equal_nan)[0]
    if j.comparison.ok:
        f = j.figures
        counts = (j.comparison.mismatches, j.comparison.total)
        figures = "" if f is None else "\n    metrics: " + describe_figures(f.mismatch, f.cosine, f.snr_db, f.topk, thresholds, counts)
        print(format_comparison(j.comparison) + figures)
    else:
        print(format_judged(j))
    return j.comparison.ok and _over_data(name, ref, got, thresholds)


def _over_data(name: str, ref: np.ndarray, got: np.ndarray, thresholds: Any) -> bool:
    """A case kept for failing thresholds over a data set (its worst sample): those thresholds
    judge this sample as a data set of one, whose every statistic is the sample's own figure."""
    if not thresholds.data or ref.shape != got.shape:
        return True
    from ..judge.aggregate import OverData

    over = OverData(thresholds.data)
    over.add(0, ref, got)
    failed = over.failures()
    print(f"output {name!r} judged over the data, this sample alone: " + ("; ".join(failed) if failed else "ok"))
    return not failed


def replay(case_dir: Path) -> int:
    """Replay ``case_dir``: the comparison on stdout and MATCH/MISMATCH, or UNUSABLE with one line on stderr."""
    try:
        case, inputs, reference, tolerances = load_case(case_dir)
        try:
            got = load_runner(case_dir, case).run(inputs)
        except BadCase:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged model file fails inside any framework
            raise BadCase(f"the {case['backend']} model in {case_dir} could not be loaded or run ({describe_exception(exc, 600)})") from None
    except BadCase as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return UNUSABLE
    policies = case.get("policies") or {}  # cases kept before policies existed: atol/rtol only
    equal_nan = bool(case.get("options", {}).get("equal_nan", False))
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
    return MISMATCH if failed else MATCH


def _check_version(case: Any, case_file: Path) -> None:
    """A case.json of a version this replay does not read is refused (never replayed as if it were known)."""
    version = case.get("version") if isinstance(case, dict) else None
    if version not in READABLE_CASE_VERSIONS or isinstance(version, bool):
        raise BadCase(
            f"{case_file} has version {version!r}, which this pytest-xframe does not read "
            f"({', '.join(map(str, READABLE_CASE_VERSIONS))}); replay it with the pytest-xframe that kept it, or rerun the test"
        )


def load_case(case_dir: Path) -> tuple[dict[str, Any], dict, dict, dict]:
    """case.json, the inputs, torch's outputs and the tolerances; BadCase names what is missing or damaged."""
    case_file = case_dir / "case.json"
    if not case_file.is_file():
        raise BadCase(f"{case_file} not found; pass the directory a failure message named")
    try:
        case = json.loads(case_file.read_text())
        _check_version(case, case_file)
        tolerances = {c["name"]: (float(c["atol"]), float(c["rtol"])) for c in case["comparisons"]}
        for key in ("backend", "test_id", "model", "onnx"):
            case[key]
        from ..judge.policy import Thresholds

        for policy in (case.get("policies") or {}).values():
            Thresholds.from_dict(policy)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadCase(f"{case_file} is damaged ({describe_exception(exc, 200)})") from None
    altered = altered_files(case_dir, case.get("sha256") or {})
    if altered:
        raise BadCase(
            f"{', '.join(altered[:3])} in {case_dir} {'is' if len(altered) == 1 else 'are'} not what the case kept (missing, replaced or edited "
            "since: the sha256 differs); replaying it would blame the wrong model. Rerun the test to keep a fresh case"
        )
    arrays = []
    for file in ("inputs.npz", "reference.npz"):
        try:
            arrays.append(load_npz(case_dir / file))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BadCase(f"{case_dir / file} is missing or damaged ({describe_exception(exc, 200)})") from None
    return case, arrays[0], arrays[1], tolerances
