"""Peak memory of a check whose output is large: how many copies of the output the check holds.

A model with a tiny input and an output of ``--elements`` float32 values (an outer product of
the input with a fixed vector) is checked against ONNX Runtime in a pytest session of its own
(one fresh process per size, ``--xframe-no-cache``, ``max_examples`` examples). The process's peak
resident set (``ru_maxrss`` of the child) is compared with the output's size and with the peak of
the same check of the same model with a 10,000-element output (the floor: interpreter,
frameworks, exporter, plugin), so ``(check - floor) / output`` counts the copies of the output the
check holds at its peak.

    python benchmarks/bench_big_output.py                          # 1e7 and 2.5e7 elements
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_big_output.py   # another version of the plugin
    python benchmarks/bench_big_output.py --elements 1e8           # the size of the issue (~0.4 GB output)
    python benchmarks/bench_big_output.py --examples 5

Columns: ``output MB``; ``floor MB`` and ``check MB`` (peak RSS); ``check / output`` (peak RSS over
the output's bytes, the figure the issue quoted); ``(check - floor) / output`` (the copies the check
itself adds, in outputs). Linux and macOS (``resource``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn

    ELEMENTS = {elements}
    SIDE = 1000

    class Outer(nn.Module):
        # (n,) -> (n, ELEMENTS // n): the input times a fixed vector, a big output from a small input
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.linspace(-1, 1, ELEMENTS // SIDE))

        def forward(self, x):
            return x[:, None] * self.w[None, :]
    """
)

CHECK = MODEL + textwrap.dedent(
    """
    from pytest_xframe import TensorSpec

    def test_big(xframe):
        xframe.check(Outer().eval(), [TensorSpec((SIDE,))], backends=["onnxruntime"], max_examples={examples})
    """
)

#: the floor's output: small enough that its copies do not show in the peak
FLOOR_ELEMENTS = 10_000

#: runs pytest as its only child and prints that child's peak RSS (``ru_maxrss``: KiB on Linux, bytes on macOS)
WRAPPER = (
    "import resource, subprocess, sys; "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
    "print(peak * (1 if sys.platform == 'darwin' else 1024)); sys.exit(rc)"
)


def peak_of(test: str, workdir: Path) -> int:
    """Peak RSS in bytes of a fresh pytest process running ``test`` (a file's text)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "test_it.py").write_text(test)
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--xframe-no-cache", "test_it.py"]
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *pytest], cwd=workdir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the benchmark's test failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return int(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=float, nargs="+", default=[1e7, 2.5e7])
    parser.add_argument("--examples", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-big-output-") as tmp:
        floor = peak_of(CHECK.format(elements=FLOOR_ELEMENTS, examples=args.examples), Path(tmp) / "floor")
        for elements in sorted(int(e) for e in args.elements):
            check = peak_of(CHECK.format(elements=elements, examples=args.examples), Path(tmp) / f"check-{elements}")
            rows.append((elements, elements * 4, floor, check))
    mb = 2**20
    print(f"{'elements':>12}  {'output MB':>9}  {'floor MB':>8}  {'check MB':>8}  {'check / output':>14}  {'(check - floor) / output':>24}")
    for elements, size, floor, check in rows:
        print(f"{elements:>12.3g}  {size / mb:>9.0f}  {floor / mb:>8.0f}  {check / mb:>8.0f}  {check / size:>14.1f}  {(check - floor) / size:>24.1f}")


if __name__ == "__main__":
    main()
