"""torch's work under the marker: one marked test with 1, 3 and 5 backends, before and after shared draws.

``@pytest.mark.xframe_parity`` checks each backend in a test item of its own. Before, each item ran its
own hypothesis search, so torch ran on nearly every input once per backend; now the items of one test
share a draw of inputs (torch runs once on it) and each searches on its own for a few more
(``pytest_xframe/check/search.py``). This script writes a throw-away project with one marked test of
ResNet-18 (``bench_models.py``), runs it in fresh ``pytest`` processes with the package of this checkout
("after") and with the package at ``--before REF`` ("before", extracted with ``git archive``), and prints
per backend count: wall seconds, torch forward calls (outside any export's tracing), the batch rows they ran and the seconds spent
in them, and the ratios, all measured in one run of this script.

The backends are the first N of ``--backends`` (default: onnxruntime, tensorflow, onnx2tf, tflite,
litert-torch). An untimed run first fills one conversion cache that every timed run reads, so the wall
times show the checks, not the conversions. ``--clones`` checks ONNX Runtime under five names instead
(``ort1`` ... ``ort5``, a session each): their identical errors steer identical searches, so "before"
shares almost every input too, and the figures show only the shared draw's own cost.

    python benchmarks/bench_marker.py [--counts 1,3,5] [--examples 20] [--side 224] [--before REF] [--backends LIST | --clones] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: the last commit whose marker items each ran their own search over all ``max_examples``
BEFORE = "c032cc4"
BACKENDS = "onnxruntime,tensorflow,onnx2tf,tflite,litert-torch"

TEST = textwrap.dedent(
    """
    import json, os, sys, time
    import pytest, torch
    sys.path.insert(0, BENCHMARKS)
    from bench_models import SPECS, TOLERANCES, build
    from pytest_xframe import Dim, TensorSpec

    CALLS = {"calls": 0, "seconds": 0.0, "rows": 0}

    @pytest.fixture(scope="module")
    def model():
        m, started = build("resnet18"), []

        def pre(module, args):
            started.append(time.perf_counter())

        def post(module, args, output):
            begun = started.pop()
            if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):  # an export's trace is not a reference run
                CALLS["calls"] += 1
                CALLS["rows"] += args[0].shape[0]  # the drawn batch: a call's cost grows with it
                CALLS["seconds"] += time.perf_counter() - begun

        m.register_forward_pre_hook(pre)
        m.register_forward_hook(post)
        yield m
        with open(os.environ["XF_BENCH_OUT"], "w") as out:
            json.dump(CALLS, out)

    ATOL, RTOL = TOLERANCES["resnet18"]

    @pytest.mark.xframe_parity(exporter="torchscript", opset=13, atol=ATOL, rtol=RTOL)
    def test_resnet18(xframe, model):
        xframe.check(model, inputs=[TensorSpec((Dim("batch", 1, 4), *SPECS["resnet18"]))])
    """
).replace("BENCHMARKS", repr(str(HERE)))

#: ONNX Runtime under other names: every clone loads a session of its own and runs every input
CLONES = textwrap.dedent(
    """
    from pytest_xframe.backends import Backend, get

    def pytest_xframe_register_backends(config):
        return [Backend(name=f"ort{i}", prepare=lambda a, ctx: get("onnxruntime").prepare(a, ctx), modules=("onnxruntime",)) for i in range(1, 6)]
    """
)


def package_at(ref: str, into: Path) -> Path:
    """``pytest_xframe`` as it was at ``ref``, extracted into ``into`` (for PYTHONPATH)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "pytest_xframe"], capture_output=True, check=False)
    if archive.returncode != 0:
        sys.exit(f"cannot extract pytest_xframe at {ref!r}: {archive.stderr.decode().strip()} (pass --before REF)")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run(project: Path, package_root: Path, backends: list[str], examples: int, side: int, cache: Path) -> dict[str, float]:
    """One fresh pytest process: wall seconds, torch's calls and seconds, examples judged per backend."""
    (project / "test_marked.py").write_text(TEST)
    (project / "conftest.py").write_text(CLONES)
    (project / "pytest.ini").write_text("[pytest]\n")
    out = project / "torch.json"
    env = {**os.environ, "PYTHONPATH": str(package_root), "XF_BENCH_OUT": str(out), "BENCH_RESNET_SIDE": str(side)}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--hypothesis-seed=0",
            f"--xframe-backends={','.join(backends)}", f"--xframe-max-examples={examples}", f"--xframe-cache-dir={cache}",
            "--xframe-report=report.json"]
    start = time.perf_counter()
    with open(project / "last.log", "w") as log:
        status = subprocess.run(args, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"pytest failed ({' '.join(args[3:])}):\n{(project / 'last.log').read_text()[-4000:]}")
    torch_figures = json.loads(out.read_text())
    checks = json.loads((project / "report.json").read_text())["checks"]
    prepare = sum(c["seconds"][step] for c in checks for step in ("import", "export", "convert", "load"))
    return {"wall": wall, **torch_figures, "examples": statistics.mean(c["examples"] for c in checks), "prepare": prepare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,3,5", help="backend counts to measure (at most 5)")
    parser.add_argument("--examples", type=int, default=20, help="max_examples per check (the default is 20)")
    parser.add_argument("--side", type=int, default=224, help="ResNet-18 input side")
    parser.add_argument("--before", default=BEFORE, help="git ref of the package without shared draws")
    parser.add_argument("--backends", default=BACKENDS, help=f"backends in order, the first N checked (default: {BACKENDS})")
    parser.add_argument("--clones", action="store_true", help="ONNX Runtime under five names instead of --backends")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved repetitions; medians are shown")
    options = parser.parse_args()
    counts = [int(c) for c in options.counts.split(",")]
    names = [f"ort{i}" for i in range(1, 6)] if options.clones else options.backends.split(",")
    subprocess.run([sys.executable, "-c", "import torch, onnx, onnxruntime, hypothesis"], check=True)  # a warm OS file cache for every run
    load_before = os.getloadavg()[0]
    figures: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"before": package_at(options.before, Path(tmp) / "before"), "after": REPO}
        cache = Path(tmp) / "cache"
        (Path(tmp) / "warm-up").mkdir()
        run(Path(tmp) / "warm-up", REPO, names[: max(counts)], 2, options.side, cache)  # every conversion, into the cache
        for rep in range(options.repeat):
            for count in counts:
                for label, root in roots.items():  # before and after alternate, so load drifts hit both
                    project = Path(tmp) / f"{label}-{count}-{rep}"
                    project.mkdir()
                    figures.setdefault((label, count), []).append(run(project, root, names[:count], options.examples, options.side, cache))
    print_table(figures, counts, options, load_before)


def print_table(figures: dict[tuple[str, int], list[dict[str, float]]], counts: list[int], options: argparse.Namespace, load_before: float) -> None:
    med = {k: {f: statistics.median(r[f] for r in runs) for f in runs[0]} for k, runs in figures.items()}
    kind = "ONNX Runtime clones" if options.clones else f"backends: first N of {options.backends}"
    print(f"one marked test of ResNet-18 at 3x{options.side}x{options.side}, batch 1-4, {options.examples} examples per backend, {kind}; "
          f"before = pytest_xframe at {options.before}, after = this checkout; {os.cpu_count()} CPUs; {options.repeat} run(s), medians")
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    one = med.get(("after", 1))
    print("| backends | wall s before | wall s after | after/before | torch calls before | torch calls after | after/before "
          "| torch s before | torch s after | after/before | after vs 1 backend: calls, batch rows, s | examples per backend before / after "
          "| import+export+convert+load s before / after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for count in counts:
        b, a = med[("before", count)], med[("after", count)]
        vs_one = f"{a['calls'] / one['calls']:.2f}x, {a['rows'] / one['rows']:.2f}x, {a['seconds'] / one['seconds']:.2f}x" if one else "-"
        print(f"| {count} | {b['wall']:.1f} | {a['wall']:.1f} | {a['wall'] / b['wall']:.2f} | {b['calls']:.0f} | {a['calls']:.0f} | "
              f"{a['calls'] / b['calls']:.2f} | {b['seconds']:.2f} | {a['seconds']:.2f} | {a['seconds'] / b['seconds']:.2f} | {vs_one} | "
              f"{b['examples']:.1f} / {a['examples']:.1f} | {b['prepare']:.1f} / {a['prepare']:.1f} |")
    if one:
        worst = max(med[("after", c)]["calls"] / one["calls"] for c in counts)
        print(f"torch calls per marked test, after, at most {worst:.2f}x those of one backend (target: <= 1.1x): {'PASS' if worst <= 1.1 else 'MISS'}")


if __name__ == "__main__":
    main()
