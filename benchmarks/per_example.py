"""Per-example cost of the plugin's own work against the frameworks' inference, in one process.

    python benchmarks/per_example.py MODEL --examples N [--json OUT]

The model is exported and converted once with the plugin's own functions (TorchScript, opset 13),
then hypothesis runs N examples with the settings ``pytest_xframe.check.run_check`` uses, drawing
from ``pytest_xframe.strategies.feeds_strategy``. Each example does what the plugin's example
runner does: torch reference, ONNX Runtime, TensorFlow, ``pytest_xframe.compare.compare_all`` per
backend, ``BackendResult.record`` and ``hypothesis.target``. Timed apart:

* inference: torch forward + ORT run + TF ``serving_default`` call (the plugin's runners, so
  numpy <-> tensor conversions are included, as in the hand-written route);
* compare: ``compare_all`` + ``record`` + ``target``, for both backends;
* draw + engine: everything hypothesis does between examples (drawing ``Feeds`` from the strategy,
  its bookkeeping, the first-call setup), i.e. the wall time of the ``@given`` call minus the time
  spent inside the test body; the garbage collections that happen there are reported apart too.

Layout "one check" is ``xframe.check`` without the marker (both backends in one hypothesis run);
"marked" is what ``@pytest.mark.xframe_parity`` does: one hypothesis run per backend, both from one
seed, so inputs are drawn twice and torch's outputs are reused for the inputs the first run drew
(hypothesis's targeting gives the second run some inputs of its own). Both are measured; in each,
an input drawn again reuses torch's outputs, as the plugin's ``Engine.reference`` does.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import bench_models
    import numpy as np
    import onnx
    from hypothesis import HealthCheck, given, settings, target
    from hypothesis.database import DirectoryBasedExampleDatabase

    from pytest_xframe.backends.onnxruntime_runner import make_session
    from pytest_xframe.backends.tensorflow_runner import load_saved_model
    from pytest_xframe.compare import compare_all
    from pytest_xframe.convert.onnx_tf import convert
    from pytest_xframe.engine import feeds_digest
    from pytest_xframe.export import export
    from pytest_xframe.outputs import torch_outputs
    from pytest_xframe.results import BackendResult
    from pytest_xframe.settings import CheckOptions
    from pytest_xframe.spec import Dim, TensorSpec, bind_inputs
    from pytest_xframe.strategies import feeds_strategy

    model = bench_models.build(args.model)
    atol, rtol = bench_models.TOLERANCES[args.model]
    options = CheckOptions(atol=atol, rtol=rtol, max_examples=args.examples, exporter="torchscript", opset=13)
    slots = bind_inputs(model, [TensorSpec((Dim("batch", bench_models.BATCH_MIN, bench_models.BATCH_MAX), *bench_models.SPECS[args.model]))], args.model)
    names = [s.name for s in slots]
    work = Path(tempfile.mkdtemp(prefix="bench-per-example-"))
    artifact = export(model, slots, ("output",), exporter="torchscript", opset=13, out_dir=work / "export", model_name=args.model, positional=True)
    ort_runner = make_session(str(artifact.path))
    (work / "tf").mkdir()
    convert(onnx.load(str(artifact.path)), work / "tf", model_name=args.model)
    tf_runner = load_saved_model(work / "tf", artifact.input_names, artifact.output_names)
    runners = {"onnxruntime": ort_runner, "tensorflow": tf_runner}
    gc.freeze()  # as the plugin does after importing each framework (pytest_xframe.imports)

    gc_log: list[tuple[bool, float]] = []  # (inside the test body, seconds) of every collection
    in_body = [False]
    gc_start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_log.append((in_body[0], time.perf_counter() - gc_start[0]))

    gc.callbacks.append(on_gc)

    def measure(backend_names: tuple[str, ...], references: dict, seed: int) -> dict:
        """One hypothesis run over ``backend_names``; torch's outputs are looked up in
        ``references`` first, as ``Engine.reference`` does."""
        t = {"torch": 0.0, "onnxruntime": 0.0, "tensorflow": 0.0, "compare": 0.0, "body": 0.0, "reused": 0}
        gc_log.clear()
        results = {b: BackendResult(b) for b in backend_names}
        batches: list[int] = []

        @settings(
            max_examples=args.examples,
            deadline=None,
            database=DirectoryBasedExampleDatabase(str(work / f"hypothesis-{'-'.join(backend_names)}")),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
            report_multiple_bugs=False,
        )
        @given(feeds_strategy(slots))
        def parity(feeds) -> None:
            in_body[0] = True
            entered = time.perf_counter()
            batches.append(int(next(iter(feeds.values())).shape[0]))
            key = feeds_digest(feeds)
            reference = references.get(key)
            if reference is None:
                reference = references[key] = torch_outputs(model, feeds, names, True)
            else:
                t["reused"] += 1
            t1 = time.perf_counter()
            t["torch"] += t1 - entered
            for b in backend_names:
                s = time.perf_counter()
                got = runners[b].run(feeds)
                c = time.perf_counter()
                comparisons = compare_all(reference, got, options.tolerance, options.equal_nan)
                results[b].record(comparisons)
                worst = max((x.tolerance_ratio for x in comparisons if not x.problem), default=0.0)
                target(min(worst, 1e12), label=f"tolerance ratio, {b}")
                assert all(x.ok for x in comparisons), comparisons
                e = time.perf_counter()
                t[b] += c - s
                t["compare"] += e - c
            t["body"] += time.perf_counter() - entered
            in_body[0] = False

        parity._hypothesis_internal_use_seed = seed  # as run_check does (Engine.example_seed)
        start = time.perf_counter()
        parity()
        t["total"] = time.perf_counter() - start
        t["draw+engine"] = t["total"] - t["body"]
        # garbage collections hypothesis' allocations triggered between examples (part of draw+engine)
        t["gc outside body"] = sum(d for inside, d in gc_log if not inside)
        t["examples"] = len(batches)
        t["mean batch"] = float(np.mean(batches)) if batches else 0.0
        t["max_abs"] = {b: r.max_abs for b, r in results.items()}
        return t

    # warm every runtime once (first calls allocate / trace), as the timed runs below should not
    # charge one-time initialisation to either side
    warm = {n: np.zeros((1, *bench_models.SPECS[args.model]), np.float32) for n in names}
    torch_outputs(model, warm, names, True)
    for r in runners.values():
        r.run(warm)

    try:
        seed = random.getrandbits(64)
        one = measure(("onnxruntime", "tensorflow"), {}, seed)
        shared: dict = {}  # the marker: one run per backend, same seed, torch outputs reused
        marked = [measure(("onnxruntime",), shared, seed), measure(("tensorflow",), shared, seed)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"model": args.model, "one_check": one, "marked": marked}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "one_check": one, "marked": marked}, f)


if __name__ == "__main__":
    main()
