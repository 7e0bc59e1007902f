"""One session over many distinct models: resident memory after each, and the session memo's bounds.

Runs ``xframe.check``'s session memo (as one pytest session would) on ``--models`` different small
models in turn: MLPs, CNNs and transformer encoders of growing width, each a new architecture
with its own weights, checked on ``--backends``. After each model it prints the process's RSS and
the sizes of the session memo's bounds (``SessionMemo.memo_sizes``). ``--unbounded`` lifts the bounds on the
memos (every prepared runner kept, as before they were bounded) for comparison.

    python benchmarks/bench_many_models.py                                # 20 models, onnxruntime
    python benchmarks/bench_many_models.py --backends onnxruntime,tensorflow
    python benchmarks/bench_many_models.py --unbounded
    python benchmarks/bench_many_models.py --width 256       # up to ~110 MB of weights per model
    python benchmarks/bench_many_models.py --fixed --width 768   # 20 encoders of 27 MB each
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import tempfile
from pathlib import Path

import torch
from torch import nn

MiB = 2**20


def rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


class Encoder(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


KINDS = ("mlp", "cnn", "encoder")


def model(i: int, base: int = 64, fixed: bool = False) -> tuple[nn.Module, list]:
    """The i-th model: a different architecture or size each time (width ``base * (1 + i // 3)``),
    or with ``fixed`` a transformer encoder layer of width ``base`` with the i-th seed's weights."""
    from pytest_xframe import Dim, TensorSpec

    torch.manual_seed(i)
    kind, width = (2, base) if fixed else (i % 3, base * (1 + i // 3))
    if kind == 0:
        return nn.Sequential(nn.Linear(32, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 8)).eval(), [
            TensorSpec((Dim("batch", 1, 4), 32))
        ]
    if kind == 1:
        c = width // 8
        return nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(), [
            TensorSpec((Dim("batch", 1, 2), 3, 16, 16))
        ]
    return Encoder(width).eval(), [TensorSpec((1, 6, width))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--backends", default="onnxruntime")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--width", type=int, default=64, help="base width: the i-th model is width * (1 + i // 3) wide")
    parser.add_argument("--fixed", action="store_true", help="every model an encoder layer of --width (distinct weights)")
    parser.add_argument("--trim", action="store_true", help="glibc malloc_trim(0) before each RSS reading: memory freed but kept by the allocator is returned")
    parser.add_argument("--unbounded", action="store_true", help="keep every prepared runner (no memo bounds)")
    args = parser.parse_args()

    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.check import memo as memos
    from pytest_xframe.check.options import CheckOptions
    from pytest_xframe.check.run import ParityReport, run_check
    from pytest_xframe.errors import XframeError
    from pytest_xframe.export.to_onnx import weight_bytes

    if args.unbounded:
        memos.PREPARED_MEMO = memos.EXPORT_MEMO = memos.OUTPUT_NAMES_MEMO = 10**9
        memos.PREPARED_MEMO_BYTES = 2**62
    work = Path(tempfile.mkdtemp(prefix="bench-many-"))
    memo = memos.SessionMemo(work / "run", ArtifactCache(work / "cache"), rootdir=work)
    options = CheckOptions(backends=tuple(args.backends.split(",")), exporter="torchscript", max_examples=args.examples, atol=1e-4, rtol=1e-3)
    print(f"bench_many_models: {args.models} models (base width {args.width}), backends {args.backends}, memos {'unbounded' if args.unbounded else 'bounded'}")
    print(f"start: RSS {rss() / MiB:.0f} MiB")
    print("| model | kind | weights (MiB) | verdicts | RSS after (MiB) | prepared runners | exports memo |")
    print("|---|---|---|---|---|---|---|")
    for i in range(args.models):
        net, inputs = model(i, args.width, args.fixed)
        kind, size = KINDS[2 if args.fixed else i % 3], weight_bytes(net)
        report = ParityReport(test_id=f"model-{i}", options=options)
        try:
            run_check(memo, net, inputs, options, report=report, artifacts_root=work / "artifacts")
        except XframeError as exc:  # a failing model is reported, the session goes on
            print(f"  model {i}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        del net
        gc.collect()
        if args.trim:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        sizes = memo.memo_sizes()
        verdicts = ",".join(r.verdict for r in report.backends.values())
        print(f"| {i} | {kind} | {size / MiB:.2f} | {verdicts} | {rss() / MiB:.0f} | {sizes['prepared']} | {sizes['exports']} |", flush=True)


if __name__ == "__main__":
    main()
