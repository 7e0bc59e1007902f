"""Error of each coverage architecture on the reduced-precision and quantized targets, vs torch.

    python benchmarks/quantized_matrix.py                     # 30 inputs per architecture
    python benchmarks/quantized_matrix.py --examples 10 -k cnn --json out.json

For each architecture of ``tests/coverage_models.py``: one ONNX export (the backend's first
preferred exporter that works), then every target (fp32 ``tflite``, ``tflite-fp16``,
``tflite-int8``, ``tflite-int8-full``, ``onnxruntime-int8``) prepared exactly as the plugin does
(same backends, calibration drawn from the input spec: 20 samples, ``calibration_seed=0``), and run
on the same ``--examples`` inputs drawn with numpy from the spec (``--seed``; each ``Dim`` anywhere
in its range, values uniform in the spec's range), which are not the calibration samples.

Figures, from ``pytest_xframe.judge.metrics`` over every float output and every input (the worst
output of the worst input):

* max abs / max rel: the largest elementwise errors (``compare.compare_output``);
* cosine, SNR dB: the minimum over inputs;
* top-1: inputs x rows whose argmax over the last axis agrees (outputs with a last axis >= 2),
  as hits/rows, the worst output;
* mismatch: the largest share of elements outside the fp32 defaults (atol 1e-5, rtol 1e-4).

Finally a table of the worst figure of each target over all architectures: the basis of the
default thresholds per precision.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TARGETS = ("tflite", "tflite-fp16", "tflite-int8", "tflite-int8-full", "onnxruntime-int8")
FP32_DEFAULTS = (1e-5, 1e-4)


def draw(slots, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One input from the spec: each Dim anywhere in its range (shared by name), values uniform."""
    from pytest_xframe.inputs.spec import Dim

    sizes: dict[str, int] = {}
    feeds = {}
    for slot in slots:
        if slot.spec is None:
            feeds[slot.name] = slot.value
            continue
        shape = tuple(sizes.setdefault(d.name, int(rng.integers(d.min, d.max + 1))) if isinstance(d, Dim) else d for d in slot.spec.shape)
        lo, hi = slot.spec.bounds
        dtype = np.dtype(slot.spec.dtype)
        if dtype.kind in "iub":
            feeds[slot.name] = rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)
        else:
            feeds[slot.name] = rng.uniform(lo, hi, size=shape).astype(dtype)
    return feeds


_EXPORTS: dict[tuple, object] = {}


def prepare(name: str, model, slots, backend: str, workdir: Path, cache, threads: int):
    """(artifact, Prepared) through the backend's export plan, as the plugin's pipeline does."""
    from pytest_xframe import backends
    from pytest_xframe.errors import XframeError, first_line
    from pytest_xframe.export.outputs import torch_outputs
    from pytest_xframe.export.to_onnx import example_feeds, export
    from pytest_xframe.inputs import calibration

    spec = backends.get(backend)
    spec.import_framework()
    positional = True
    names = tuple(torch_outputs(model, example_feeds(slots), [s.name for s in slots], positional))
    cal = calibration.from_spec(slots, 20, 0) if spec.calibrated else None
    errors = []
    for exporter, opset in spec.exports:
        out = workdir / f"{name}-{exporter}-{opset}"
        try:
            key = (name, exporter, opset)
            if key not in _EXPORTS:  # one export per model and exporter, shared by the targets, as in a session
                _EXPORTS[key] = export(model, slots, names, exporter=exporter, opset=opset, out_dir=out, model_name=name, positional=positional)
            artifact = _EXPORTS[key]
            ctx = backends.BuildContext(model_name=name, workdir=out, cache=cache, threads=threads, calibration=cal)
            return artifact, spec.prepare(artifact, ctx)
        except XframeError as exc:
            errors.append(f"{exporter}: {first_line(str(exc))}")
    raise RuntimeError("; ".join(errors))


def measure(model, slots, runner, inputs) -> dict[str, float | str]:
    from pytest_xframe.export.outputs import torch_outputs
    from pytest_xframe.judge import metrics
    from pytest_xframe.judge.compare import compare_output

    fig = {"max_abs": 0.0, "max_rel": 0.0, "cosine": 1.0, "snr_db": math.inf, "mismatch": 0.0}
    top: dict[str, list[int]] = {}
    for feeds in inputs:
        ref = torch_outputs(model, feeds, [s.name for s in slots], True)
        got = runner.run(feeds)
        for out, r in ref.items():
            if r.dtype.kind != "f":
                continue
            g = np.asarray(got[out], dtype=r.dtype)
            c = compare_output(out, r, g, *FP32_DEFAULTS)
            fig["max_abs"] = max(fig["max_abs"], c.max_abs)
            fig["max_rel"] = max(fig["max_rel"], c.max_rel)
            fig["cosine"] = min(fig["cosine"], metrics.cosine(r, g))
            fig["snr_db"] = min(fig["snr_db"], metrics.snr_db(r, g))
            fig["mismatch"] = max(fig["mismatch"], metrics.mismatch_share(r, g, *FP32_DEFAULTS))
            if r.ndim and r.shape[-1] >= 2:
                hits, rows = metrics.topk_hits(r, g, 1)
                acc = top.setdefault(out, [0, 0])
                acc[0] += hits
                acc[1] += rows
    worst = min(top.values(), key=lambda a: a[0] / a[1], default=None) if top else None
    fig["top1"] = f"{worst[0]}/{worst[1]}" if worst else "-"
    fig["top1_share"] = worst[0] / worst[1] if worst else None
    return fig


def _fmt(fig: dict) -> str:
    if "error" in fig:
        return f"| {fig['target']} | conversion failed: {fig['error'][:90]} ||||||"
    return (
        f"| {fig['target']} | {fig['max_abs']:.2g} | {fig['max_rel']:.2g} | {fig['cosine']:.6f} | {fig['snr_db']:.1f} | "
        f"{fig['top1']} | {fig['mismatch']:.1%} |"
    )


HEADER = "| target | max abs | max rel | cosine (min) | SNR dB (min) | top-1 | mismatch @fp32 |\n|---|---|---|---|---|---|---|"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-k", default="", help="only architectures whose name contains this")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import coverage_models

    from pytest_xframe.cache import ArtifactCache
    from pytest_xframe.inputs.spec import bind_inputs

    results = []
    with tempfile.TemporaryDirectory(prefix="xframe-quant-") as tmp:
        cache = ArtifactCache(Path(tmp) / "cache")
        for arch, case in coverage_models.CASES.items():
            if args.k not in arch:
                continue
            model = case.build()
            slots = bind_inputs(model, case.inputs, arch)
            rng = np.random.default_rng(args.seed)
            inputs = [draw(slots, rng) for _ in range(args.examples)]
            print(f"\n### {arch}\n\n{HEADER}", flush=True)
            for target in args.targets.split(","):
                start = time.perf_counter()
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # torchscript prints its graph on failure
                        _, prepared = prepare(arch, model, slots, target, Path(tmp), cache, args.threads)
                    fig = {"arch": arch, "target": target, **measure(model, slots, prepared.runner, inputs)}
                except Exception as exc:  # noqa: BLE001 - a row that says why
                    fig = {"arch": arch, "target": target, "error": str(exc).strip().splitlines()[0]}
                fig["seconds"] = round(time.perf_counter() - start, 1)
                results.append(fig)
                print(_fmt(fig), flush=True)
    print_worst(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def print_worst(results: list[dict]) -> None:
    print("\n### Worst over the architectures\n")
    print("| target | max abs | cosine (min) | SNR dB (min) | top-1 (min) | converted |\n|---|---|---|---|---|---|")
    for target in dict.fromkeys(r["target"] for r in results):
        ok = [r for r in results if r["target"] == target and "error" not in r]
        n = len([r for r in results if r["target"] == target])
        if not ok:
            print(f"| {target} | - | - | - | - | 0/{n} |")
            continue
        tops = [r["top1_share"] for r in ok if r["top1_share"] is not None]
        worst_snr = min(ok, key=lambda r: r["snr_db"])
        print(
            f"| {target} | {max(r['max_abs'] for r in ok):.2g} | {min(r['cosine'] for r in ok):.6f} | "
            f"{worst_snr['snr_db']:.1f} ({worst_snr['arch']}) | {min(tops):.0%} | {len(ok)}/{n} |"
        )


if __name__ == "__main__":
    main()
