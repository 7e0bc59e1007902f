"""Replay a saved failing case without pytest or torch: run the backend, compare, print.

``python -m pytest_xframe replay DIR`` exits 0 when the outputs agree, 1 when they still differ and
2 when the case cannot be replayed (a damaged or incomplete directory, a backend that will not load
it): then one line on stderr says what is wrong.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import load_npz
from .compare import compare_output, format_comparison
from .errors import describe_exception
from .strategies import describe_array

#: exit statuses of ``replay``
MATCH, MISMATCH, UNUSABLE = 0, 1, 2


class BadCase(Exception):
    """A case directory that cannot be replayed; the message is the one line to print."""


def load_runner(case_dir: Path, case: dict):
    backend = case["backend"]
    if backend == "onnxruntime":
        from .backends.onnxruntime_runner import make_session

        return make_session(str(case_dir / "model.onnx"))
    if backend == "tensorflow":
        from .backends.tensorflow_runner import load_saved_model

        return load_saved_model(case_dir / "converted", tuple(case["input_names"]), tuple(case["output_names"]))
    if backend == "onnx2tf":
        from .backends.onnx2tf_runner import load_saved_model as load_onnx2tf

        return load_onnx2tf(case_dir / "converted")
    if backend == "tflite":
        import onnx

        from .backends.tflite_runner import FLATBUFFER_NAME, load_flatbuffer

        return load_flatbuffer(case_dir / "converted" / FLATBUFFER_NAME, onnx.load(str(case_dir / "model.onnx")))
    # litert-torch converts the torch module, which a case directory does not hold
    raise BadCase(f"backend {backend!r} cannot be replayed from {case_dir}; rerun its test")


def replay(case_dir: Path) -> int:
    """Replay ``case_dir``: the comparison on stdout and MATCH/MISMATCH, or UNUSABLE with one line on stderr."""
    try:
        case, inputs, reference, tolerances = load_case(case_dir)
        try:
            got = load_runner(case_dir, case).run(inputs)
        except BadCase:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged model file fails inside any framework
            raise BadCase(f"the {case['backend']} model in {case_dir} could not be loaded or run ({describe_exception(exc, 200)})") from None
    except BadCase as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return UNUSABLE
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
        c = compare_output(name, ref, np.asarray(got[name]), atol, rtol, equal_nan)
        failed |= not c.ok
        print(format_comparison(c))
    print("verdict: " + ("MISMATCH" if failed else "match"))
    return MISMATCH if failed else MATCH


def load_case(case_dir: Path) -> tuple[dict[str, Any], dict, dict, dict]:
    """case.json, the inputs, torch's outputs and the tolerances; BadCase names what is missing or damaged."""
    case_file = case_dir / "case.json"
    if not case_file.is_file():
        raise BadCase(f"{case_file} not found; pass the directory a failure message named")
    try:
        case = json.loads(case_file.read_text())
        tolerances = {c["name"]: (float(c["atol"]), float(c["rtol"])) for c in case["comparisons"]}
        for key in ("backend", "test_id", "model", "onnx", "input_names", "output_names"):
            case[key]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BadCase(f"{case_file} is damaged ({describe_exception(exc, 200)})") from None
    arrays = []
    for file in ("inputs.npz", "reference.npz"):
        try:
            arrays.append(load_npz(case_dir / file))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BadCase(f"{case_dir / file} is missing or damaged ({describe_exception(exc, 200)})") from None
    return case, arrays[0], arrays[1], tolerances
