"""How much float32 rounding moves a check's error figures when nothing but the runtime's kernels
change: the noise the baseline's floors (pytest_xframe/judge/baseline.py) must absorb.

A small conv net is exported once and run in ONNX Runtime with its graph optimizations off and on
(fused kernels sum in another order) and with 1 and 2 threads, on the same 20 inputs; each row is
the max abs and max rel error against torch over those inputs. ``--scale`` multiplies the last
layer's weights, so the outputs grow and their rounding error with them.

    python benchmarks/drift_noise.py --scale 1 --scale 50 --scale 500
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def measure(scale: float, examples: int = 20) -> list[tuple[str, int, float, float, float]]:
    import numpy as np
    import onnxruntime as ort
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10),
    ).eval()
    with torch.no_grad():
        net[-1].weight.mul_(scale)
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32) for _ in range(examples)]
    with torch.no_grad():
        refs = [net(torch.from_numpy(a)).numpy() for a in xs]
    path = Path(tempfile.mkdtemp()) / "net.onnx"
    torch.onnx.export(net, (torch.from_numpy(xs[0]),), str(path), dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    rows = []
    for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL"):
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            diffs = [np.abs(session.run(None, {"x": a})[0] - r) for a, r in zip(xs, refs)]
            max_abs = max(float(d.max()) for d in diffs)
            max_rel = max(float((d / np.abs(r)).max()) for d, r in zip(diffs, refs))
            rows.append((level, threads, max_abs, max_rel, max(float(np.abs(r).max()) for r in refs)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="last layer's weight multiplier (repeatable; default 1 and 50)")
    args = parser.parse_args()
    print("| scale | max abs(ref) | graph optimizations | threads | max abs | max rel |")
    print("|---|---|---|---|---|---|")
    for scale in args.scale or [1.0, 50.0]:
        for level, threads, max_abs, max_rel, peak in measure(scale):
            print(f"| {scale:g} | {peak:.3g} | {level} | {threads} | {max_abs:.3g} | {max_rel:.3g} |")


if __name__ == "__main__":
    main()
