"""Replay a saved failing case without pytest or torch: run the backend, compare, print.

``python -m pytest_xframe replay DIR`` exits 1 when the outputs still differ, 0 when they agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .artifacts import load_npz
from .compare import compare_output, format_comparison
from .strategies import describe_array


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
    raise SystemExit(f"replay: backend {backend!r} cannot be replayed from {case_dir}; rerun its test")


def replay(case_dir: Path) -> int:
    case_file = case_dir / "case.json"
    if not case_file.is_file():
        raise SystemExit(f"replay: {case_file} not found; pass the directory a failure message named")
    case = json.loads(case_file.read_text())
    inputs = load_npz(case_dir / "inputs.npz")
    reference = load_npz(case_dir / "reference.npz")
    tolerances = {c["name"]: (c["atol"], c["rtol"]) for c in case["comparisons"]}
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
        c = compare_output(name, ref, np.asarray(got[name]), atol, rtol, equal_nan)
        failed |= not c.ok
        print(format_comparison(c))
    print("verdict: " + ("MISMATCH" if failed else "match"))
    return 1 if failed else 0
