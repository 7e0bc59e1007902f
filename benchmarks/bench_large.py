"""Big models, route by route: time and peak memory of each step next to the weight bytes.

Builds a Llama-style causal LM from a ``transformers.LlamaConfig`` (no download, random weights,
``use_cache=False``, the logits as the one output), then, for each route, in a fresh process of
its own (so that one route's peak is not another's leftover):

1. build     the torch model (random init, eval mode)
2. export    ``pytest_xframe.export.to_onnx.export`` (the first exporter of the backend's plan that
             succeeds, as the plugin picks): .onnx, with external data above ``EXTERNAL_DATA_BYTES``
3. convert   the backend's conversion into an empty on-disk cache (none for onnxruntime)
4. load      the backend's runner on the converted model (ORT: the session)
5. run       one input (batch 1, ``--seq`` tokens) on the runner and on torch, compared

``backend.prepare`` converts and loads in one call: its own ``convert_seconds`` and
``load_seconds`` split the RSS samples between the two steps (onnxruntime converts nothing: "-").
RSS is sampled every 10 ms from ``/proc/self/status``; ``imports`` is the RSS before the model is
built (the plugin and the backend's framework; torch and transformers come with the build);
``process peak`` is ``ru_maxrss``, what ``/usr/bin/time`` reports. Linux only.

``--check`` times one whole check per route instead (``run_check`` through a fresh session memo, as a
pytest run makes it). A watchdog stops a route whose process passes ``--max-rss-gib`` (12).

    python benchmarks/bench_large.py --size 440M                 # every route, ~440M parameters
    python benchmarks/bench_large.py --size 600M --routes tensorflow,onnxruntime
    python benchmarks/bench_large.py --size 440M --check --routes tensorflow
    python benchmarks/bench_large.py --size 100M --routes tensorflow   # a quick look at the ratios
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GiB = 2**30
#: Llama-style configs: (layers, hidden, intermediate, heads, vocab)
SIZES = {
    "20M": (2, 256, 688, 4, 32000),
    "100M": (8, 768, 2048, 12, 32000),
    "440M": (12, 1536, 4096, 12, 32000),
    "500M": (15, 1536, 4096, 12, 32000),
    "600M": (18, 1536, 4096, 12, 32000),
}
ROUTES = ("onnxruntime", "tensorflow", "onnx2tf", "tflite", "litert-torch")
STEPS = ("build", "export", "convert", "load", "run")


def config_weights(size: str) -> int:
    """Float32 bytes of a config's parameters (embedding, untied LM head, blocks, norms), for the
    rows of routes that failed before building anything."""
    layers, hidden, intermediate, _, vocab = SIZES[size]
    return 4 * (2 * vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden) + hidden)


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """(time, RSS) every ``every`` seconds on a thread, for peaks over any interval afterwards."""

    def __init__(self, every: float = 0.01) -> None:
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), rss()))
            time.sleep(self.every)

    def peak(self, start: float, end: float) -> int:
        return max([r for t, r in self.samples if start <= t <= end] or [rss()])

    def stop(self) -> None:
        self._stop.set()


def llama(size: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    layers, hidden, intermediate, heads, vocab = SIZES[size]
    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, vocab_size=vocab, max_position_embeddings=256, use_cache=False,
    )

    class Logits(torch.nn.Module):
        """The causal LM's logits alone: one tensor output for every route."""

        def __init__(self) -> None:
            super().__init__()
            self.lm = LlamaForCausalLM(config)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.lm(input_ids=ids, use_cache=False).logits

    torch.manual_seed(0)
    return Logits().eval()


def first_export(backend: Any, model: Any, slots: Any, names: tuple[str, ...], work: Path) -> Any:
    """The first export of the backend's plan that succeeds, as the plugin picks it."""
    from pytest_xframe.errors import ExportError
    from pytest_xframe.export.to_onnx import export

    for exporter, opset in backend.exports:
        try:
            return export(model, slots, names, exporter=exporter, opset=opset, out_dir=work / exporter, model_name="Llama", positional=True)
        except ExportError as exc:
            print(f"  {backend.name}: {exporter} export failed ({exc.cause}); next", file=sys.stderr, flush=True)
    raise RuntimeError(f"no export of {backend.name}'s plan succeeded")


def one_route(route: str, size: str, seq: int, work: Path, external: bool) -> dict[str, Any]:
    """Every step of ``route`` in this process; per step seconds and peak RSS. ``external``:
    export with external data whatever the size (what a model over the threshold gets)."""
    import numpy as np

    from pytest_xframe.backends import BuildContext, TorchSource, registry
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.export import to_onnx as export_module
    from pytest_xframe.export.outputs import torch_outputs
    from pytest_xframe.export.to_onnx import example_feeds, weight_bytes
    from pytest_xframe.imports import import_frameworks
    from pytest_xframe.inputs.spec import TensorSpec, bind_inputs
    from pytest_xframe.judge.compare import compare_all

    if external:
        export_module.EXTERNAL_DATA_BYTES = 0
    backend = registry().get(route)
    import_frameworks(backend.framework)  # imported before the clock: not a step's work
    gc.collect()
    baseline = rss()  # torch, the framework and the plugin imported: what no step can avoid
    sampler = Sampler()
    steps: dict[str, dict[str, float]] = {}

    @contextmanager
    def step(name: str):
        gc.collect()
        start = time.perf_counter()
        yield
        end = time.perf_counter()
        steps[name] = {"seconds": end - start, "peak": sampler.peak(start, end)}
        print(f"  {route} {name}: {end - start:.1f} s, peak {steps[name]['peak'] / GiB:.2f} GiB", file=sys.stderr, flush=True)

    with step("build"):
        model = llama(size)
    weights = weight_bytes(model)
    slots = bind_inputs(model, [TensorSpec((1, seq), dtype="int64", low=0, high=model.lm.config.vocab_size - 1)], "Llama")
    feeds = example_feeds(slots)
    reference = torch_outputs(model, feeds, ["ids"], True)
    with step("export"):
        artifact = first_export(backend, model, slots, tuple(reference), work)
    exporter = artifact.exporter
    ctx = BuildContext(model_name="Llama", workdir=artifact.path.parent, cache=ArtifactCache(work / "cache"), torch=TorchSource(model, slots, True))
    gc.collect()
    start = time.perf_counter()
    prepared = backend.prepare(artifact, ctx)
    end = time.perf_counter()
    split = start + prepared.convert_seconds
    steps["convert"] = {"seconds": prepared.convert_seconds, "peak": sampler.peak(start, split) if prepared.convert_seconds else None}
    steps["load"] = {"seconds": prepared.load_seconds, "peak": sampler.peak(split, end)}
    with step("run"):
        got = prepared.runner.run(feeds)
    comparison = compare_all(reference, got, CheckOptions(atol=1e-3, rtol=1e-3).tolerance, False)
    sampler.stop()
    flatbuffers = [_flatbuffer(p) for p in sorted((work / "cache").rglob("*.tflite"))]
    return {
        "flatbuffers": flatbuffers,
        "route": route, "size": size, "exporter": exporter, "weights": weights,
        "params": sum(p.numel() for p in model.parameters()),
        "files": {p.name: p.stat().st_size for p in artifact.files},
        "max_abs": float(max(c.max_abs for c in comparison)), "ok": bool(all(c.ok for c in comparison)),
        "steps": steps, "baseline": baseline, "process_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "finite": bool(all(np.isfinite(v).all() for v in got.values())),
    }


def _flatbuffer(path: Path) -> dict[str, Any]:
    """A converted .tflite's size and whether its weights sit after the flatbuffer (the converter's
    buffer offsets write ``buffer_location`` metadata), read without loading the file."""
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return {"bytes": len(m), "buffer_offsets": m.find(b"buffer_location") >= 0}


def one_check(route: str, size: str, seq: int, work: Path, examples: int) -> dict[str, Any]:
    """What a pytest run of one check does, in this process: build, then ``run_check`` through a
    fresh session memo and an empty on-disk cache (export, convert, load, ``examples`` inputs)."""
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.check.run import ParityReport, run_check
    from pytest_xframe.export.to_onnx import weight_bytes
    from pytest_xframe.inputs.spec import TensorSpec

    start = time.perf_counter()
    model = llama(size)
    built = time.perf_counter() - start
    inputs = [TensorSpec((1, seq), dtype="int64", low=0, high=model.lm.config.vocab_size - 1)]
    options = CheckOptions(backends=(route,), max_examples=examples, atol=1e-3, rtol=1e-3)
    report = ParityReport(test_id=f"check[{route}]", options=options)
    run_check(SessionMemo(work / "run", ArtifactCache(work / "cache"), rootdir=work), model, inputs, options, report=report, artifacts_root=work / "kept")
    r = report.backends[route]
    return {
        "route": route, "size": size, "check": True, "weights": weight_bytes(model), "params": sum(p.numel() for p in model.parameters()),
        "verdict": r.verdict, "onnx": r.onnx, "seconds": time.perf_counter() - start, "build": built,
        "export": r.export_seconds, "convert": r.convert_seconds, "load": r.load_seconds, "examples": r.examples,
        "process_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def child(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"bench-large-{args.one}-", dir=args.workdir))
    try:
        if args.check:
            result = one_check(args.one, args.size, args.seq, work, args.examples)
        else:
            result = one_route(args.one, args.size, args.seq, work, args.external_data)
    except Exception as exc:  # noqa: BLE001 - a route that fails is a row, not the end of the table
        result = {"route": args.one, "size": args.size, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                  "process_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + json.dumps(result), flush=True)


def watched(command: list[str], limit: int) -> dict[str, Any]:
    """Run one route's process; kill it if its RSS passes ``limit`` bytes (a shared machine)."""
    out = tempfile.TemporaryFile(mode="w+")  # not a pipe: a child printing much would block on a full one
    proc = subprocess.Popen(command, stdout=out, text=True)
    highest = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                now = next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS:")), 0)
        except OSError:
            now = 0
        highest = max(highest, now)
        if now > limit:
            proc.kill()
            proc.wait()
            return {"route": command[command.index("--one") + 1], "error": f"stopped: RSS passed {limit / GiB:.1f} GiB", "process_peak": highest}
        time.sleep(0.2)
    out.seek(0)
    found = [ln for ln in out.read().splitlines() if ln.startswith("RESULT ")]
    return json.loads(found[-1][7:]) if found else {"route": command[command.index("--one") + 1], "error": f"exit {proc.returncode}", "process_peak": highest}


def _ratio(r: dict[str, Any], weights: int) -> str:
    return f"{r['process_peak'] / GiB:.2f} | {r['process_peak'] / max(weights, 1):.1f}x"


def table(results: list[dict[str, Any]], weights: int) -> str:
    """Markdown: one row per route, each step's seconds and peak RSS."""
    if any(r.get("check") for r in results):
        lines = ["| route (check) | verdict | total s | build s | export s | convert s | load s | examples | process peak GiB | peak / weights |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results:
            if "error" in r:
                lines.append(f"| {r['route']} | {r['error']} | | | | | | | {_ratio(r, weights)} |")
            else:
                lines.append(f"| {r['route']} ({r['onnx']}) | {r['verdict']} | {r['seconds']:.0f} | {r['build']:.0f} | {r['export']:.0f} | "
                             f"{r['convert']:.0f} | {r['load']:.0f} | {r['examples']} | {_ratio(r, weights)} |")
        return "\n".join(lines)
    lines = ["| route | " + " | ".join(f"{s}: s / peak GiB" for s in STEPS) + " | imports GiB | process peak GiB | peak / weights | parity |",
             "|---|" + "---|" * (len(STEPS) + 4)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['route']} | {r['error']} |" + " |" * len(STEPS) + f" {_ratio(r, weights)} | |")
            continue
        cells = [f"{r['steps'][s]['seconds']:.1f} / {r['steps'][s]['peak'] / GiB:.2f}" if r["steps"][s]["peak"] else "-" for s in STEPS]
        parity = f"max abs {r['max_abs']:.1e}" + ("" if r["ok"] else " (over 1e-3)")
        for fb in r.get("flatbuffers", []):
            parity += f"; .tflite {fb['bytes'] / GiB:.2f} GiB" + (", weights after the flatbuffer" if fb["buffer_offsets"] else "")
        lines.append(f"| {r['route']} ({r['exporter']}) | " + " | ".join(cells) + f" | {r['baseline'] / GiB:.2f} | {_ratio(r, weights)} | {parity} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="440M")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated backends, each run in its own process")
    parser.add_argument("--seq", type=int, default=8)
    parser.add_argument("--workdir", default=None, help="where exports and conversions go (default: the system temp dir)")
    parser.add_argument("--external-data", action="store_true", help="export with external data at any size (small models then take the path big ones take)")
    parser.add_argument("--check", action="store_true", help="time one whole check per route (run_check: what a pytest run does) instead of each step")
    parser.add_argument("--examples", type=int, default=2, help="inputs drawn by --check")
    parser.add_argument("--max-rss-gib", type=float, default=12.0, help="stop a route whose process passes this RSS (default 12)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return child(args)
    layers, hidden, intermediate, heads, vocab = SIZES[args.size]
    print(f"bench_large: Llama {layers} layers x {hidden} hidden, MLP {intermediate}, vocab {vocab}, seq {args.seq}; "
          f"{os.cpu_count()} CPUs", flush=True)
    results = []
    for route in args.routes.split(","):
        command = [sys.executable, __file__, "--one", route, "--size", args.size, "--seq", str(args.seq), "--examples", str(args.examples)]
        command += ["--external-data"] * args.external_data + ["--check"] * args.check + (["--workdir", args.workdir] if args.workdir else [])
        results.append(watched(command, int(args.max_rss_gib * GiB)))
    weights = config_weights(args.size)
    print(f"\n{weights / 4e6:.0f}M parameters, {weights / GiB:.2f} GiB of float32 weights")
    print(table(results, weights))


if __name__ == "__main__":
    main()
