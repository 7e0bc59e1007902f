"""Benchmark: what a generation check costs against the decode loops it compares.

    python benchmarks/bench_generation.py [--models gpt2,t5,gpt2-small] [--backends onnxruntime] [--cases 6] [--new-tokens 16]

For each model, in one process: its graphs exported once (dynamo) and prepared per backend as the
check prepares them, then the same fixed cases (a batch of 2, left padding, prompts of 6 and 4
tokens, ``--new-tokens`` greedy tokens each) run four ways, each timed over every case (the
fastest of ``--repeat`` rounds, the four interleaved in each round):

  torch 1 thread / torch N threads   the loop on torch alone, at 1 thread and at torch's default
  <backend> own                      the loop on the backend alone: its runners and an argmax, no check
  check                              what the check does per case: torch's trace (the check's own
                                     tracer, at the thread count it picks, kept in the session's
                                     memo) and every backend judged run by run against it; not
                                     hypothesis's drawing

Columns: tokens/s of each loop (new tokens x batch / wall seconds), the check's seconds over
(torch's at the thread count the check picks + every backend's own) seconds (target <= 1.5), and
the check's overhead per step: (check - torch - backends) / steps, in ms; each as wall time and,
in brackets, this process's CPU time, which other jobs on a shared machine do not inflate (the
header prints the load average).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
TARGET_RATIO = 1.5


def build(name: str):
    """A tiny trained test model, or ``gpt2-small``: 4 layers, hidden 256, vocabulary 2048 (random weights)."""
    from generation_models import trained

    if name == "gpt2-small":
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(vocab_size=2048, n_positions=256, n_embd=256, n_layer=4, n_head=4, bos_token_id=0, eos_token_id=0)).eval()
    return trained(name, Path(tempfile.gettempdir()) / "xframe-bench-generation-weights")


def cases(model, new_tokens: int, count: int) -> list:
    from pytest_xframe.loops.prompts import PromptCase, Seq2SeqCase, left_padded

    rng = np.random.default_rng(0)
    vocab = int(model.get_input_embeddings().weight.shape[0])
    out = []
    for _ in range(count):
        ids, mask = left_padded([rng.integers(3, vocab, 6).tolist(), rng.integers(3, vocab, 4).tolist()], 0)
        seq2seq = model.config.is_encoder_decoder
        out.append(Seq2SeqCase(ids, mask, np.zeros((2, 0), np.int64), new_tokens) if seq2seq else PromptCase(ids, mask, ids.shape[1], new_tokens))
    return out


def prepare(loop, backend_name: str, workdir: Path, name: str) -> dict:
    """Each graph exported with dynamo and prepared by the backend, as the check does."""
    from pytest_xframe.backends import BuildContext, Target, get
    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.forward import Forward
    from pytest_xframe.export.to_onnx import export

    backend = get(backend_name)
    backend.import_framework()
    names = {g.name: tuple(Forward(g.module, g.slots, g.positional, name).outputs(g.example)) for g in loop.graphs}
    targets = {}
    for graph in loop.graphs:
        artifact = export(graph.module, graph.slots, names[graph.name], exporter="dynamo", opset=None, out_dir=workdir / backend_name / graph.name,
                          model_name=name, positional=True, example=graph.example)
        ctx = BuildContext(model_name=name, workdir=artifact.path.parent, cache=ArtifactCache(workdir / "cache"))
        targets[graph.name] = Target(backend, artifact, backend.prepare(artifact, ctx))
    return targets


class BareSide:
    """A backend's loop with nothing checked: its runners and an argmax."""

    def __init__(self, targets: dict) -> None:
        self.targets = targets

    def run(self, graph: str, label: str, feeds) -> dict:
        return self.targets[graph].prepared.runner.run(feeds)

    def greedy(self, output: str, logits: np.ndarray) -> np.ndarray:
        return np.argmax(logits, axis=-1)


def timed(works: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float]]:
    """Each work's fastest (wall, CPU) seconds over ``repeat`` rounds, the works interleaved in
    every round so that load from other processes falls on all of them alike. CPU seconds are this
    process's (every thread's): what another job cannot inflate."""
    best = {name: (float("inf"), float("inf")) for name in works}
    for _ in range(repeat):
        for name, work in works.items():
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def measure(name: str, backends: list[str], count: int, new_tokens: int, repeat: int, workdir: Path) -> dict:
    import torch

    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.judge.results import BackendResult
    from pytest_xframe.judge.verdict import policy_for
    from pytest_xframe.loops.judging import StepJudge
    from pytest_xframe.loops.sides import BackendSide
    from pytest_xframe.loops.threads import fastest_torch_threads, torch_threads
    from pytest_xframe.loops.transformers import generation_loop, torch_trace

    model = build(name)
    loop = generation_loop(model, name)
    todo = cases(model, new_tokens, count)
    targets = {b: prepare(loop, b, workdir, name) for b in backends}
    from pytest_xframe.check.forward import Forward

    forwards = {g.name: Forward(g.module, g.slots, g.positional, name) for g in loop.graphs}
    last = loop.graphs[-1]
    chosen = fastest_torch_threads(lambda: forwards[last.name].outputs(last.example))

    def torch_loop(threads: int | None) -> Callable[[], object]:
        def work() -> None:
            with torch_threads(threads):
                for case in todo:
                    torch_trace(loop.graphs, loop.drive, case, name)
        return work

    def bare(b: str) -> Callable[[], object]:
        return lambda: [loop.drive(case, BareSide(targets[b])) for case in todo]

    from itertools import count

    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check.memo import SessionMemo
    from pytest_xframe.loops.run import _torch_tracer

    memo, runs = SessionMemo(workdir / "memo", ArtifactCache(workdir / "memo-cache")), count()

    def check() -> None:
        # the check's own torch tracer (its trace kept in the session's memo, under a new key each pass)
        trace_of = _torch_tracer(memo, loop, forwards, ("bench", next(runs)), chosen)
        for case in todo:
            trace = trace_of(case)
            for b in backends:
                result = BackendResult(b)
                judge = StepJudge(policy_for(CheckOptions(), b, "fp32"), True, False, result, loop.compared)
                loop.drive(case, BackendSide(lambda g, f, b=b: targets[b][g].prepared.runner.run(f), trace, judge))

    tokens = sum(c.ids.shape[0] * c.new_tokens for c in todo)
    steps = sum(len(torch_trace(loop.graphs, loop.drive, c, name).runs) for c in todo)
    default = f"torch {torch.get_num_threads()} threads"
    works = {"torch 1 thread": torch_loop(1), default: torch_loop(None), **{f"{b} own": bare(b) for b in backends}, "check": check}
    figures = timed(works, repeat)
    chosen_torch = "torch 1 thread" if chosen == 1 else default
    own = [figures[chosen_torch][i] + sum(figures[f"{b} own"][i] for b in backends) for i in (0, 1)]
    return {"model": name, "tokens": tokens, "steps": steps, "figures": figures, "chosen": chosen or torch.get_num_threads(), "own": own,
            "ratio": [figures["check"][i] / own[i] for i in (0, 1)], "overhead_ms": [1000 * (figures["check"][i] - own[i]) / steps for i in (0, 1)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2,t5,gpt2-small")
    parser.add_argument("--backends", default="onnxruntime")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    backends = args.backends.split(",")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(m, backends, args.cases, args.new_tokens, args.repeat, Path(tmp)) for m in args.models.split(",")]
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    header = list(rows[0]["figures"])
    columns = [f"{h} tok/s" for h in header[:-1]] + ["check s (CPU s)", "own s (CPU s)", "check / own, wall (CPU)", "overhead ms/step, wall (CPU)"]
    print("\n| model | steps | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for r in rows:
        f = r["figures"]
        speeds = " | ".join(f"{r['tokens'] / f[h][0]:.0f}" for h in header[:-1])
        verdict = "ok" if min(r["ratio"]) <= TARGET_RATIO else f"over {TARGET_RATIO}"
        print(f"| {r['model']} | {r['steps']} | {speeds} | {f['check'][0]:.2f} ({f['check'][1]:.2f}) | {r['own'][0]:.2f} ({r['own'][1]:.2f}), torch at "
              f"{r['chosen']} thread(s) | {r['ratio'][0]:.2f} ({r['ratio'][1]:.2f}) {verdict} | {r['overhead_ms'][0]:.2f} ({r['overhead_ms'][1]:.2f}) |")


if __name__ == "__main__":
    main()
