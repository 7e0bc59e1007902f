"""Memory and time of reading ``data=`` from one stacked ``.npz``, against loading it whole.

    python benchmarks/data_stream.py                  # a 256 MiB array, plain and compressed
    python benchmarks/data_stream.py --mib 1024

For each file: ``numpy.load`` of the whole array (what a data set larger than memory cannot do),
one row read by index (``NpzStack.read``: hypothesis's exploration, calibration) and every row in
order (``NpzStack.records``: the run over the samples). Peak memory is what ``tracemalloc`` sees
(numpy's allocations included); times are wall seconds on this machine, measured in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def measured(run) -> tuple[float, float]:
    """(seconds, peak MiB) of ``run()``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        run()
        return time.perf_counter() - start, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    from pytest_xframe.inputs.data.sources import NpzStack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="size of the array (float32, rows of 32 KiB)")
    args = parser.parse_args()
    rows = args.mib * 32  # 8192 float32 per row: 32 KiB
    array = np.random.default_rng(0).standard_normal((rows, 8192)).astype(np.float32)
    print(f"array: {rows} rows x 8192 float32 = {array.nbytes / 2**20:.0f} MiB\n")
    print("| file | read | seconds | peak MiB |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="xframe-data-") as tmp:
        for name, save in (("plain", np.savez), ("compressed", np.savez_compressed)):
            path = Path(tmp) / f"{name}.npz"
            save(path, x=array)
            stack = NpzStack(path, "bench")
            cases = {
                "numpy.load, whole array": lambda p=path: np.load(p)["x"].sum(),
                "one row, by index (the last)": lambda s=stack: s.read(rows - 1),
                "every row, in order": lambda s=stack: sum(float(r["x"][0]) for r in s.records(rows)),
            }
            for label, run in cases.items():
                seconds, peak = measured(run)
                print(f"| {name} ({path.stat().st_size / 2**20:.0f} MiB) | {label} | {seconds:.2f} | {peak:.1f} |")


if __name__ == "__main__":
    main()
