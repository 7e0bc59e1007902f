"""Cold and warm pytest runs of a transformer-sized model, with and without ``export_key``.

Writes a throwaway project whose one test checks a 4-layer BERT-like encoder (the coverage
suite's ``BertLike`` layout at d=256, 4 heads, ff=1024, vocab 8000: ~7M parameters) against ONNX
Runtime with the dynamo exporter, then runs ``pytest`` on it ``--runs`` times in fresh
processes sharing one cache directory: first with ``export_key="bert-v1"``, then without a key.
Prints each run's wall time and what its ``--xframe-report`` says about the export.

    python benchmarks/bench_export_key.py            # 3 runs each way
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TEST = textwrap.dedent(
    """
    import torch
    from torch import nn
    from pytest_xframe import TensorSpec, Dim

    KEY = {key}

    class Layer(nn.Module):
        def __init__(self, d, heads, ff):
            super().__init__()
            self.attn = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

        def forward(self, x):
            attended, _ = self.attn(x, x, x, need_weights=False)
            x = self.norm1(x + attended)
            return self.norm2(x + self.ff(x))

    class Bert(nn.Module):
        def __init__(self, vocab=8000, d=256, layers=4, max_len=64):
            super().__init__()
            torch.manual_seed(0)
            self.tokens, self.positions = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
            self.layers = nn.ModuleList(Layer(d, 4, 4 * d) for _ in range(layers))

        def forward(self, input_ids):
            x = self.tokens(input_ids) + self.positions(torch.arange(input_ids.shape[1]))
            for layer in self.layers:
                x = layer(x)
            return x

    def test_bert(xframe):
        options = dict(backends=["onnxruntime"], exporter="dynamo", max_examples=5, atol=1e-4, rtol=1e-3)
        if KEY:
            options["export_key"] = KEY
        xframe.check(Bert().eval(), [TensorSpec((1, Dim("seq", 2, 16)), "int64", low=0, high=7999)], **options)
    """
)


def run(project: Path, key: str | None) -> dict:
    (project / "test_bert.py").write_text(TEST.format(key=repr(key)))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--xframe-cache-dir=cache", "--xframe-report=report.json"],
        cwd=project, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-2000:])
    (check,) = json.loads((project / "report.json").read_text())["checks"]
    return {"wall": wall, "export": check["seconds"]["export"], "hit": check.get("export_cache_hit"), "verdict": check["verdict"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="bench-export-key-"))
    (project / "pytest.ini").write_text("[pytest]\n")
    print("| export_key | run | wall s | export s (report) | export from cache | verdict |")
    print("|---|---|---|---|---|---|")
    try:
        for key in ("bert-v1", None):
            for i in range(args.runs):
                r = run(project, key)
                print(f"| {key or '(none)'} | {i + 1} | {r['wall']:.1f} | {r['export']:.2f} | {r['hit']} | {r['verdict']} |", flush=True)
    finally:
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
