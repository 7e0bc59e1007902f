"""Per-example cost of the plugin's own work against the frameworks' inference, in one process.

    python benchmarks/per_example.py MODEL --examples N [--json OUT]

Runs the production loop itself: ``pytest_xframe.check.run.run_check`` on a session memo, as
``xframe.check`` does (TorchScript, opset 13, onnxruntime and tensorflow). A first check with one
example exports, converts and traces (untimed); the timed checks then find the export and the
runners in the memo, so what they spend is the loop over examples. Timers wrap the pieces of that
loop without changing them:

* inference: torch's forward (``export.outputs.call_forward``, every torch run of the loop) and
  each backend's runner (the runner ``SessionMemo.prepare`` hands the check, wrapped);
* compare: ``judge_example`` (comparison, metrics and the policy's verdict for every output);
* draw + engine: the rest of the hypothesis run (``check.forward.bounded``, which runs it): drawing
  ``Feeds`` from the strategy, hypothesis's bookkeeping, the feeds digest, the memo lookup, the
  vacuity tracker, ``record_judged`` and ``hypothesis.target``; the garbage collections in there
  are reported apart too (``gc outside body``).

Layout "one check" is ``xframe.check`` without the marker (both backends in one hypothesis run);
"marked" is what ``@pytest.mark.xframe_parity`` does: one check per backend with the same test key
and its place among the backends (``Sharing``), so both judge one shared draw, on which the second reuses
torch's outputs (``SessionMemo.reference``, ``reused``), and each adds its own search.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BACKENDS = ("onnxruntime", "tensorflow")


class Timers:
    """Seconds per piece of the loop, counted only while the hypothesis run is going."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.in_loop = False
        self.inside = 0  # > 0 while a timed piece runs: a collection then is not "outside body"
        self.gc_outside = 0.0
        self._gc_start = 0.0
        #: the batch size of every example drawn (the first input's leading dim)
        self.batches: list[int] = []

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.in_loop:
                return function(*args, **kwargs)
            self.inside += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.inside -= 1
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return wrapper

    def on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self.in_loop and not self.inside:
            self.gc_outside += time.perf_counter() - self._gc_start


class _TimedRunner:
    def __init__(self, runner: Any, run: Callable[..., Any]) -> None:
        self._runner, self.run = runner, run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


@contextmanager
def timing(memo: Any, timers: Timers) -> Iterator[None]:
    """Wrap torch's forward, every runner the memo hands out, the judging and the hypothesis run;
    note each example's batch where the loop asks the memo for torch's outputs."""
    from pytest_xframe.check import run
    from pytest_xframe.export import outputs

    prepare, reference = memo.prepare, memo.reference
    call_forward, judge_example, bounded = outputs.call_forward, run.judge_example, run.bounded

    def noted_reference(key: Any, feeds: Any, *args: Any, **kwargs: Any) -> Any:
        timers.batches.append(int(next(iter(feeds.values())).shape[0]))
        return reference(key, feeds, *args, **kwargs)

    def timed_prepare(spec: Any, *args: Any, **kwargs: Any) -> Any:
        prepared, fresh, seconds = prepare(spec, *args, **kwargs)
        runner = _TimedRunner(prepared.runner, timers.timed(spec.name, prepared.runner.run))
        return replace(prepared, runner=runner), fresh, seconds

    def timed_bounded(test: Any, model_name: str) -> None:
        timers.in_loop = True
        start = time.perf_counter()
        try:
            bounded(test, model_name)
        finally:
            timers.seconds["total"] = timers.seconds.get("total", 0.0) + time.perf_counter() - start
            timers.in_loop = False

    memo.prepare, memo.reference = timed_prepare, noted_reference
    outputs.call_forward = timers.timed("torch", call_forward)
    run.judge_example = timers.timed("compare", judge_example)
    run.bounded = timed_bounded
    gc.callbacks.append(timers.on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(timers.on_gc)
        del memo.prepare, memo.reference
        outputs.call_forward, run.judge_example, run.bounded = call_forward, judge_example, bounded


def measure(memo: Any, model: Any, inputs: Any, options: Any, test_key: tuple, work: Path, sharing: Any = None) -> dict:
    """One ``run_check`` with its loop timed: the figures bench_parity.py reads."""
    from pytest_xframe.check.run import run_check
    from pytest_xframe.judge.results import ParityReport

    timers = Timers()
    report = ParityReport(test_id="::".join(test_key), options=options)
    with timing(memo, timers):
        run_check(memo, model, inputs, options, report=report, artifacts_root=work / "artifacts", test_key=test_key, sharing=sharing)
    s = timers.seconds
    examples = max(r.examples for r in report.backends.values())
    inference = s.get("torch", 0.0) + sum(s.get(b, 0.0) for b in options.backends)
    t = {"torch": s.get("torch", 0.0), **{b: s.get(b, 0.0) for b in BACKENDS}, "compare": s.get("compare", 0.0), "total": s["total"]}
    t["draw+engine"] = s["total"] - inference - t["compare"]
    t["gc outside body"] = timers.gc_outside
    t["examples"] = examples
    t["reused"] = examples - timers.calls.get("torch", 0)
    t["mean batch"] = sum(timers.batches) / len(timers.batches) if timers.batches else float("nan")
    t["max_abs"] = {b: r.max_abs for b, r in report.backends.items()}
    return t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import bench_models

    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.check.search import Sharing
    from pytest_xframe.inputs.spec import Dim, TensorSpec

    model = bench_models.build(args.model)
    atol, rtol = bench_models.TOLERANCES[args.model]
    inputs = [TensorSpec((Dim("batch", bench_models.BATCH_MIN, bench_models.BATCH_MAX), *bench_models.SPECS[args.model]))]
    options = CheckOptions(atol=atol, rtol=rtol, max_examples=args.examples, exporter="torchscript", opset=13, backends=BACKENDS)
    work = Path(tempfile.mkdtemp(prefix="bench-per-example-"))
    memo = SessionMemo(work / "run", ArtifactCache(work / "cache"), rootdir=work)
    try:
        # export, conversion, first calls (TF tracing): once, untimed, as a session's first check
        measure(memo, model, inputs, replace(options, max_examples=1), ("warm",), work)
        one = measure(memo, model, inputs, options, ("one check",), work)
        marked = [measure(memo, model, inputs, replace(options, backends=(b,)), ("marked",), work, Sharing(len(BACKENDS), i)) for i, b in enumerate(BACKENDS)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"model": args.model, "one_check": one, "marked": marked}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
