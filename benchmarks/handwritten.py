"""Route (a): the parity check a user writes by hand, without pytest-xframe.

    python benchmarks/handwritten.py MODEL --examples N --workdir DIR [--json OUT]

torch.onnx.export (TorchScript exporter, opset 13, dynamic batch axis), an onnxruntime
InferenceSession, onnx-tf ``prepare(model).export_graph(dir)``, ``tf.saved_model.load(dir)
.signatures["serving_default"]``, then N random inputs (batch drawn in [1, 4]) through torch,
onnxruntime and TensorFlow, compared with ``np.testing.assert_allclose``.

onnx-tf 1.10 does not import on today's onnx / TensorFlow without
``pytest_xframe.backends.tensorflow.onnx_tf_compat.install()``, so that one call is borrowed from the plugin
(it is what such a user would have to copy). Everything else is plain framework API.

Phase timings go to ``--json`` for the table; ``import_probe`` (benchmark instrumentation, not part
of what a user writes) times the heavy imports the same way it does in the pytest routes.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import import_probe  # noqa: E402  (benchmark instrumentation only: times the heavy imports)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - mark
        mark = now

    # --- imports -------------------------------------------------------------------------------
    import numpy as np
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import torch

    from pytest_xframe.backends.tensorflow import onnx_tf_compat

    onnx_tf_compat.install()
    import bench_models
    from onnx_tf.backend import prepare

    lap("import")

    # --- model ---------------------------------------------------------------------------------
    model = bench_models.build(args.model)
    shape = bench_models.SPECS[args.model]
    atol, rtol = bench_models.TOLERANCES[args.model]
    lap("build model")

    # --- torch -> ONNX -------------------------------------------------------------------------
    os.makedirs(args.workdir, exist_ok=True)
    onnx_path = os.path.join(args.workdir, "model.onnx")
    example = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, size=(2, *shape)).astype(np.float32))
    torch.onnx.export(
        model,
        (example,),
        onnx_path,
        input_names=["x"],
        output_names=["output"],
        dynamic_axes={"x": {0: "batch"}, "output": {0: "batch"}},
        opset_version=13,
        dynamo=False,
    )
    lap("export")

    # --- ONNX Runtime --------------------------------------------------------------------------
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    lap("ort session")

    # --- ONNX -> TensorFlow SavedModel -> load -------------------------------------------------
    saved_dir = os.path.join(args.workdir, "saved_model")
    prepare(onnx.load(onnx_path)).export_graph(saved_dir)
    lap("tf convert")
    serving = tf.saved_model.load(saved_dir).signatures["serving_default"]
    lap("tf load")

    # --- N inputs through the three frameworks, compared ----------------------------------------
    rng = np.random.default_rng(1)
    worst = {"onnxruntime": 0.0, "tensorflow": 0.0}
    batches = []
    run = {"torch": 0.0, "onnxruntime": 0.0, "tensorflow": 0.0, "compare": 0.0}
    for _ in range(args.examples):
        batch = int(rng.integers(bench_models.BATCH_MIN, bench_models.BATCH_MAX + 1))
        batches.append(batch)
        x = rng.uniform(-1, 1, size=(batch, *shape)).astype(np.float32)
        t = time.perf_counter()
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        t1 = time.perf_counter()
        got_ort = session.run(None, {"x": x})[0]
        t2 = time.perf_counter()
        got_tf = serving(x=tf.constant(x))["output"].numpy()
        t3 = time.perf_counter()
        np.testing.assert_allclose(got_ort, ref, atol=atol, rtol=rtol)
        np.testing.assert_allclose(got_tf, ref, atol=atol, rtol=rtol)
        worst["onnxruntime"] = max(worst["onnxruntime"], float(np.abs(got_ort - ref).max()))
        worst["tensorflow"] = max(worst["tensorflow"], float(np.abs(got_tf - ref).max()))
        t4 = time.perf_counter()
        run["torch"] += t1 - t
        run["onnxruntime"] += t2 - t1
        run["tensorflow"] += t3 - t2
        run["compare"] += t4 - t3
    lap("run + compare")
    phases["total in process"] = time.perf_counter() - T0

    startup = import_probe.T_IMPORTED - float(os.environ.get("BENCH_T0", import_probe.T_IMPORTED))
    result = {"model": args.model, "examples": args.examples, "startup": startup, "imports": import_probe.imports,
              "gc": [sum(d for _, _, d in import_probe.gc_spans), sum(g == 2 for g, _, _ in import_probe.gc_spans)],
              "phases": phases, "run": run, "max_abs": worst, "batches": batches}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
