"""Run the model zoo (``zoo_models.py``) through pytest-xframe as a new user would, and print what
they would read: one row per model x backend with the verdict, the route that ran, the figures
and the first line of the message.

    python benchmarks/zoo.py                                   # onnxruntime and tensorflow
    python benchmarks/zoo.py -k "raft or efficientnet"         # extra arguments go to pytest
    python benchmarks/zoo.py --keep out/                       # keep the project, output and report
    python benchmarks/zoo.py --measure [--scale 100]           # every output's error figures, nothing judged
    PYTHONPATH=/path/to/another/checkout python benchmarks/zoo.py   # the same zoo on other code

Each check uses the plugin's defaults (fp32 tolerances, default examples) with ``--xframe-seed=0``
so two runs draw the same inputs. The table's columns: ``scale`` is the largest RMS of torch's
outputs on the export example (what a tolerance is measured against), ``smallest atol`` the atol
that would have passed every example at the default rtol, ``snr`` and ``cosine`` the worst over
the examples. Below it: how many lines the session printed with ``-rA``, and how many of those
were framework logging (exporter dumps, TensorFlow / absl logs) or ANSI escape codes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("onnxruntime", "tensorflow")

TEST_FILE = '''
import functools, json, os, sys
import numpy as np
import pytest
import torch
sys.path.insert(0, {here!r})
from zoo_models import ZOO

class Scaled(torch.nn.Module):
    """The model with every float output multiplied by ``factor`` (the same network in other units)."""

    def __init__(self, model, factor):
        super().__init__()
        self.model, self.factor = model, factor

        def forward(*args, **kwargs):  # the model's own signature, so inputs bind to it as before
            from pytest_xframe.export.outputs import flatten
            out = model(*args, **kwargs)
            return {{name: t * factor if t.is_floating_point() else t for name, t in flatten(out, torch.is_tensor)}}

        self.forward = functools.wraps(model.forward)(forward)

def _scales(model, inputs):
    """RMS of each of torch's float outputs on the export example (numbers, no plugin involved)."""
    from pytest_xframe.export.to_onnx import example_feeds
    from pytest_xframe.inputs.spec import bind_inputs
    from pytest_xframe.export.outputs import as_numpy
    slots = bind_inputs(model, inputs, "zoo")
    feeds = {{k: torch.from_numpy(v) for k, v in example_feeds(slots).items()}}
    with torch.no_grad():
        out = model(**feeds)
    return {{n: float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) for n, a in as_numpy(out).items() if a.dtype.kind == "f" and a.size}}

@pytest.mark.parametrize("backend", {backends!r})
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo(xframe, name, backend):
    build, inputs = ZOO[name]
    model = build()
    factor = float(os.environ.get("ZOO_SCALE", "1"))
    if factor != 1:
        model = Scaled(model, factor).eval()
    with open(os.environ["ZOO_SCALES"], "a") as f:
        f.write(json.dumps({{"model": name, "scales": _scales(model, inputs)}}) + "\\n")
    policy = json.loads(os.environ.get("ZOO_POLICY") or "null")
    xframe.check(model, inputs, backends=[backend], name=name, **({{"policy": policy}} if policy else {{}}))
'''


#: lines a framework printed, not the plugin (exporter dumps, TensorFlow's C++ and absl logs)
_FRAMEWORK = re.compile(r"torch\.__trace|Torch IR graph|def forward\(self|^\s*%\w+ : |^[IWEF]\d{4} |oneDNN|absl::|\[torch\.onnx\]|tensorflow/")


def run(args: argparse.Namespace, extra: list[str]) -> tuple[Path, Path, Path, float]:
    work = Path(args.keep or tempfile.mkdtemp(prefix="xframe-zoo-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "test_zoo.py").write_text(TEST_FILE.format(here=str(HERE), backends=list(args.backends.split(","))))
    (work / "pytest.ini").write_text("[pytest]\n")
    report, output, scales = work / "report.json", work / "output.txt", work / "scales.jsonl"
    scales.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "test_zoo.py", "-p", "no:randomly", "-p", "no:cacheprovider", "-rA", "--xframe-seed=0",
           f"--xframe-report={report}", f"--xframe-cache-dir={work / 'cache'}", f"--xframe-artifacts-dir={work / 'artifacts'}", *extra]
    print("$ " + shlex.join(cmd), file=sys.stderr)
    start = time.perf_counter()
    with output.open("w") as out:
        subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "ZOO_SCALES": str(scales)})
    return report, output, scales, time.perf_counter() - start


def _fig(value: float | None, fmt: str = ".2g") -> str:
    return "-" if value is None else format(value, fmt)


def vacuous(output: Path) -> set[str]:
    """The ``<model>-<backend>`` ids of the checks that warned VacuousCheckWarning (their message names the test)."""
    text = output.read_text(errors="replace") if output.exists() else ""
    return set(re.findall(r"VacuousCheckWarning: test_zoo\.py::test_zoo\[([^\]]+)\]", text))


def rows(report: Path, scales: Path, output: Path) -> list[str]:
    per_output = read_scales(scales)
    scale = {model: max(outputs.values(), default=None) for model, outputs in per_output.items()}
    warned = vacuous(output)
    lines = ["| model | backend | verdict | ran | scale | max abs | smallest atol | snr dB | cosine | message |", "|---|" + "---|" * 9]
    for rec in json.loads(report.read_text())["checks"]:
        metrics = [o["metrics"] for o in rec["outputs"] if o.get("metrics")]
        worst = {k: [m[k] for m in metrics if m[k] is not None] for k in ("smallest_atol", "snr_db", "cosine")}
        message = (rec.get("message") or "").splitlines()[0][:110] if rec.get("message") else ""
        if f"{rec['model']}-{rec['backend']}" in warned:
            message = ("VacuousCheckWarning; " + message).rstrip("; ")
        lines.append(
            f"| {rec['model']} | {rec['backend']} | {rec['verdict']} | {rec['onnx'] or '-'} | {_fig(scale.get(rec['model']))} | "
            f"{_fig(rec['max_abs'])} | {_fig(max(worst['smallest_atol'], default=None))} | {_fig(min(worst['snr_db'], default=None), '.0f')} | "
            f"{_fig(min(worst['cosine'], default=None), '.6f')} | {message.replace('|', '/')} |"
        )
    return lines


def read_scales(scales: Path) -> dict[str, dict[str, float]]:
    """model -> output -> RMS of torch's output, as the test file recorded them."""
    out: dict[str, dict[str, float]] = {}
    for line in scales.read_text().splitlines() if scales.exists() else []:
        entry = json.loads(line)
        out[entry["model"]] = entry["scales"]
    return out


def measured(report: Path, scales: Path) -> list[str]:
    """``--measure``: one row per model x backend x float output, the figures the tolerance is
    decided on (the judged thresholds are the defaults; nothing failed on them)."""
    rms = read_scales(scales)
    lines = ["| model | output | backend | elements | rms | max abs err | err / rms | over default tol | smallest atol | snr dB |",
             "|---|" + "---|" * 9]
    for rec in json.loads(report.read_text())["checks"]:
        for out in rec["outputs"]:
            scale, metrics = rms.get(rec["model"], {}).get(out["name"]), out.get("metrics")
            if scale is None or not metrics or out["dtype"] != "float32":
                continue
            ratio = out["max_abs"] / scale if scale else None
            lines.append(
                f"| {rec['model']} | {out['name']} | {rec['backend']} | {out['total']} | {_fig(scale)} | {_fig(out['max_abs'])} | "
                f"{_fig(ratio)} | {_fig(100 * metrics['max_mismatch'], '.2g')}% | {_fig(metrics['smallest_atol'])} | {_fig(metrics['snr_db'], '.0f')} |"
            )
    return lines


def noise(output: Path) -> str:
    text = output.read_text(errors="replace").splitlines()
    framework = sum(1 for line in text if _FRAMEWORK.search(line))
    escapes = sum(1 for line in text if "\x1b[" in line)
    return f"-rA output: {len(text)} lines; framework logging {framework}; lines with ANSI escapes {escapes}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--keep", default=None, metavar="DIR", help="run in DIR and keep it (project, output.txt, report.json)")
    parser.add_argument("--measure", action="store_true", help="judge nothing (max_mismatch=1): print every output's error figures")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every float output by this (the same models in other units)")
    args, extra = parser.parse_known_args()
    if args.measure:
        os.environ["ZOO_POLICY"] = json.dumps({"max_mismatch": 1.0})
    os.environ["ZOO_SCALE"] = str(args.scale)
    report, output, scales, seconds = run(args, extra)
    if not report.exists():
        sys.exit(f"no report written; see {output}")
    print("\n".join(measured(report, scales) if args.measure else rows(report, scales, output)))
    print(f"\n{noise(output)}; {seconds:.0f} s")


if __name__ == "__main__":
    main()
