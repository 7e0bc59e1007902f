"""Serial vs pytest-xdist on a suite of several models, cold and warm conversion cache.

Writes a throw-away project with one parity test per model, then times, each in a fresh process:
serial with an empty cache, ``-n 2`` with an empty cache, serial warm, ``-n 2`` warm. Prints a
table with the wall times and the speed-up of ``-n 2`` over serial.

    python benchmarks/bench_xdist.py [--examples 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SUITE = textwrap.dedent(
    '''
    import pytest, torch
    from torch import nn
    from pytest_xframe import Dim, TensorSpec

    B = Dim("batch", 1, 4)

    def mlp():
        return nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 1), nn.Sigmoid())

    def cnn():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def conv1d():
        return nn.Sequential(nn.Conv1d(4, 16, 5, padding=2), nn.ReLU(), nn.Conv1d(16, 8, 3), nn.Tanh())

    def ln_mlp():
        return nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 8), nn.Softmax(-1))

    def deep_cnn():
        layers = []
        for c_in, c_out in ((3, 16), (16, 32), (32, 32), (32, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def upsample():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 2, 1))

    MODELS = {
        "mlp": (mlp, (B, 20)), "cnn": (cnn, (B, 3, 32, 32)), "conv1d": (conv1d, (B, 4, 64)),
        "ln_mlp": (ln_mlp, (B, 16)), "deep_cnn": (deep_cnn, (B, 3, 32, 32)), "upsample": (upsample, (B, 3, 16, 16)),
    }

    @pytest.mark.parametrize("name", list(MODELS))
    @pytest.mark.xframe_parity(exporter="torchscript", opset=13, atol=1e-4, rtol=1e-3)
    def test_model(xframe, name):
        torch.manual_seed(0)
        make, shape = MODELS[name]
        xframe.check(make().eval(), inputs=[TensorSpec(shape)])
    '''
)


def run(project: Path, cache: Path, examples: int, workers: int) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
            f"--xframe-cache-dir={cache}", f"--xframe-max-examples={examples}"]
    if workers > 1:
        args += ["-n", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=project, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"pytest failed ({' '.join(args[3:])}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_suite.py").write_text(SUITE)
        rows = []
        for label, workers in (("serial", 1), (f"-n {options.workers}", options.workers)):
            cache = project / f"cache-{workers}"
            cold = run(project, cache, options.examples, workers)
            warm = run(project, cache, options.examples, workers)
            rows.append((label, cold, warm))
    print(f"6 models x 2 backends, {options.examples} examples each; wall seconds, each run a fresh process")
    print(f"{'run':<8} {'cold cache':>11} {'warm cache':>11}")
    for label, cold, warm in rows:
        print(f"{label:<8} {cold:>11.1f} {warm:>11.1f}")
    (_, s_cold, s_warm), (_, p_cold, p_warm) = rows
    print(f"speed-up of -n {options.workers} over serial: cold {s_cold / p_cold:.2f}x, warm {s_warm / p_warm:.2f}x")


if __name__ == "__main__":
    main()
