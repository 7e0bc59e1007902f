"""A model over protobuf's 2 GiB limit, step by step: time and peak memory next to the weights.

Builds a GPT-like stack from a config (no download: token embedding, ``--layers`` pre-norm
blocks of causal self-attention and a 4x MLP, a final LayerNorm; the defaults make ~620M
parameters, ~2.5 GB of float32 weights), then measures, each in this one process:

1. build          the torch model (random init, eval mode)
2. digest         the weights digest the plugin keys exports with (hashed in place)
3. export         ``pytest_xframe.export.export``: .onnx + external data file
4. ort load       ``onnxruntime.InferenceSession`` on the path (it reads the .data beside it)
5. one run        ONNX Runtime on one input (batch 1, ``--seq`` tokens), torch on the same, compared
6. check (cold)   ``xframe.check``'s session memo, ``backends=["onnxruntime"]``, ``export_key`` set, an
                  empty cache: exports again, stores the export, loads ORT, runs the examples
7. check (warm)   the same in a new session memo (as a new pytest run would be): the export comes from
                  the cache, verified and hard-linked

Peak memory per step is the highest resident set size sampled every 10 ms while the step runs
(``/proc/self/status``), printed next to the RSS before the step. Linux only.

    python benchmarks/bench_large.py                     # ~620M params, torchscript exporter
    python benchmarks/bench_large.py --exporter dynamo   # the dynamo exporter instead
    python benchmarks/bench_large.py --layers 2 --width 256   # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import gc
import math
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

GiB = 2**30


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """Highest RSS seen since the last ``reset``, sampled on a thread."""

    def __init__(self, every: float = 0.01) -> None:
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.every)

    def reset(self) -> None:
        self.peak = rss()

    def stop(self) -> None:
        self._stop.set()


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.ln(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--seq", type=int, default=8)
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    parser.add_argument("--examples", type=int, default=2, help="hypothesis examples in the check steps")
    args = parser.parse_args()

    from pytest_xframe.backends.onnxruntime.runner import make_session
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.check.run import ParityReport, run_check
    from pytest_xframe.export.outputs import torch_outputs
    from pytest_xframe.export.to_onnx import example_feeds, export, weight_bytes
    from pytest_xframe.identity import weights_digest
    from pytest_xframe.inputs.spec import TensorSpec, bind_inputs
    from pytest_xframe.judge.compare import compare_all

    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    sampler = Sampler()
    rows: list[tuple[str, float, int, int, str]] = []

    @contextmanager
    def step(name: str, note: str = ""):
        gc.collect()
        before = rss()
        sampler.reset()
        start = time.perf_counter()
        extra: dict[str, str] = {"note": note}
        yield extra
        rows.append((name, time.perf_counter() - start, before, max(sampler.peak, rss()), extra["note"]))
        print(f"  {name}: {rows[-1][1]:.1f} s, peak {rows[-1][3] / GiB:.2f} GiB {extra['note']}", flush=True)

    print(f"bench_large: {args.layers} layers x {args.width} wide, vocab {args.vocab}, {args.exporter} exporter, seq {args.seq}", flush=True)
    try:
        with step("build"):
            torch.manual_seed(0)
            model = GPT(args.vocab, args.width, args.layers, args.heads, max_len=64).eval()
        params = sum(p.numel() for p in model.parameters())
        weights = weight_bytes(model)
        print(f"  {params / 1e6:.0f}M parameters, {weights / GiB:.2f} GiB of weights", flush=True)
        inputs = [TensorSpec((1, args.seq), dtype="int64", low=0, high=args.vocab - 1)]
        slots = bind_inputs(model, inputs, "GPT")
        names = tuple(torch_outputs(model, example_feeds(slots), ["ids"], True))
        with step("digest"):
            weights_digest(model)
        with step("export") as info:
            artifact = export(model, slots, names, exporter=args.exporter, opset=None, out_dir=work / "export", model_name="GPT", positional=True)
            sizes = [f.stat().st_size for f in artifact.files]
            info["note"] = f"{len(sizes)} files: model.onnx {sizes[0] / GiB:.3f} GiB, external data {sum(sizes[1:]) / GiB:.2f} GiB"
        with step("ort load"):
            session = make_session(str(artifact.path))
        with step("one run") as info:
            feeds = example_feeds(slots)
            got = session.run(feeds)
            ref = torch_outputs(model, feeds, ["ids"], True)
            comparison = compare_all(ref, got, CheckOptions(atol=1e-3, rtol=1e-3).tolerance, False)
            info["note"] = f"max abs {max(c.max_abs for c in comparison):.2g}, ok={all(c.ok for c in comparison)}"
        del session, got
        shutil.rmtree(work / "export")
        options = CheckOptions(backends=("onnxruntime",), exporter=args.exporter, max_examples=args.examples, atol=1e-3, rtol=1e-3, export_key="bench-large-1")
        cache = ArtifactCache(work / "cache")
        for label in ("check (cold)", "check (warm)"):
            memo = SessionMemo(work / label.split()[1][1:-1], cache, rootdir=work)
            with step(label) as info:
                report = run_check(memo, model, inputs, options, report=ParityReport(test_id=label, options=options), artifacts_root=work / "artifacts")
                r = report.backends["onnxruntime"]
                info["note"] = (
                    f"{r.verdict}, export {r.export_seconds:.1f} s (from cache: {r.export_cache_hit}), "
                    f"ORT load {r.load_seconds:.1f} s, {r.examples} examples"
                )
            del memo, report
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nweights: {weights / GiB:.2f} GiB ({params / 1e6:.0f}M float32 parameters); exporter {args.exporter}")
    print("| step | seconds | RSS before (GiB) | peak RSS (GiB) | peak / weights | note |")
    print("|---|---|---|---|---|---|")
    for name, seconds, before, peak, note in rows:
        print(f"| {name} | {seconds:.1f} | {before / GiB:.2f} | {peak / GiB:.2f} | {peak / weights:.1f}x | {note} |")
    assert math.isfinite(weights)


if __name__ == "__main__":
    main()
