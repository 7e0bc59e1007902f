"""The generation coverage matrix: every tiny test architecture on every backend.

    python benchmarks/generation_matrix.py [--archs gpt2,llama,qwen2,t5,bart] [--backends onnxruntime,tensorflow,...] [--examples 3]

Runs one pytest session (a generated project) whose tests call ``xframe.check_generation`` on the
trained tiny models of ``tests/generation_models.py`` (batch 1-2 with left padding, prompts of 1-4
tokens, 1-4 new tokens), one test per architecture x backend, and prints a Markdown table: ``ok``
with the largest logit error (and, for reduced-precision targets, the token agreement), or the
failure's reason per graph. Expect an hour on 2 busy cores with every backend (litert-torch converts
once per input shape, so once per cache length).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARCHS = ("gpt2", "llama", "qwen2", "t5", "bart")
BACKENDS = ("onnxruntime", "tensorflow", "onnx2tf", "tflite", "litert-torch", "tflite-fp16", "tflite-int8", "onnxruntime-int8")

TEST = '''
import json, sys
sys.path.insert(0, {tests!r})
import pytest
from generation_models import trained
from pytest_xframe import XframeError

CELLS = {cells!r}


@pytest.mark.parametrize("arch,backend", CELLS)
def test_cell(xframe, arch, backend):
    cell = {{"arch": arch, "backend": backend}}
    try:
        report = xframe.check_generation(trained(arch, {weights!r}), backends=[backend], max_examples={examples}, max_new_tokens=(1, 4),
                                         batch=(1, 2), prompt_length=(1, 4), export_key="generation-matrix")
        result = report[backend]
        cell.update(verdict="ok", max_abs=result.max_abs, message=result.message, onnx=result.onnx)
    except XframeError as exc:
        cell.update(verdict="fail", text=str(exc))
        raise
    finally:
        with open({out!r}, "a") as f:
            f.write(json.dumps(cell) + "\\n")
'''


def reason(text: str) -> str:
    """The failure in a cell: each failing graph's reason, or the first divergent step."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    graphs = [ln for ln in lines if ln.startswith("graph '")]
    if graphs:
        return "; ".join(g.split(" (model ")[0] for g in graphs)
    step = next((ln for ln in lines if "first divergent step" in ln or "over the case's steps" in ln), lines[0])
    detail = next((ln for ln in lines if ln.startswith(("tokens there", "output '"))), "")
    return (step.split("; ran ")[0] + (f" ({detail})" if detail else "")).replace("|", "/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--keep", help="project directory to keep (default: a temporary one)")
    args = parser.parse_args()
    archs, backends = args.archs.split(","), args.backends.split(",")
    root = Path(args.keep or tempfile.mkdtemp(prefix="xframe-generation-matrix-"))
    root.mkdir(parents=True, exist_ok=True)
    out = root / "cells.jsonl"
    out.unlink(missing_ok=True)
    cells = [(a, b) for a in archs for b in backends]
    (root / "test_matrix.py").write_text(textwrap.dedent(TEST).format(
        tests=str(HERE.parent / "tests"), cells=cells, weights=str(root / "weights"), examples=args.examples, out=str(out)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", f"--xframe-cache-dir={root / 'cache'}",
                    "-W", "ignore::pytest_xframe.VacuousGenerationWarning", str(root / "test_matrix.py")], cwd=root, env=env, check=False,
                   stdout=subprocess.DEVNULL)
    found = {(c["arch"], c["backend"]): c for c in map(json.loads, out.read_text().splitlines())}
    print("| model | " + " | ".join(backends) + " |")
    print("|---|" + "---|" * len(backends))
    for arch in archs:
        row = []
        for backend in backends:
            c = found.get((arch, backend))
            if c is None:
                row.append("not run")
            elif c["verdict"] == "ok":
                row.append(f"ok {c['max_abs']:.2g}" + (f" ({c['message']})" if c.get("message") else ""))
            else:
                row.append(reason(c["text"]))
        print(f"| {arch} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
