"""Print the coverage suite's results as a Markdown matrix: models x (backend, exporter).

    python benchmarks/coverage_matrix.py                      # runs tests/unit/check/test_coverage.py, then prints
    python benchmarks/coverage_matrix.py -k "not onnx2tf"     # extra arguments go to pytest
    python benchmarks/coverage_matrix.py --report r.json [--junit r.xml]   # print an earlier run

Running means ``python -m pytest tests/unit/check/test_coverage.py -p no:randomly --xframe-report=<tmp>.json
--junitxml=<tmp>.xml -q``. The JSON report gives each check's verdict, max abs error, the ONNX it
ran (exporter, opset) and the error's first line; the JUnit XML gives what JSON cannot: the xfail
and skip reasons and each test's duration. Given only a JSON report, xfail reasons are looked up
in ``tests/unit/check/test_coverage.py``'s ``KNOWN_FAILURES`` table.

A backend that converts the torch module itself (litert-torch) has one column, ``torch.export``.

Cells: ``ok 3e-08`` (worst max abs error over the drawn examples), ``xfail: <short reason>``,
``skip: <reason>``, ``XPASS(strict)`` (a known failure that now passes: update the table) or
``FAIL: <first line>`` for an unexpected failure. The ONNX (exporter, opset) each backend actually
ran is added to a cell where it differs from the column's exporter (a fallback) and summarised
below the table; full xfail reasons are listed once each, then the time per backend.
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
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILE = "tests/unit/check/test_coverage.py"
BACKENDS = ("onnxruntime", "tensorflow", "onnx2tf", "tflite", "litert-torch")
EXPORTERS = ("dynamo", "torchscript")
#: the one column of a backend that converts the torch module, not an ONNX export (as in the tests)
COLUMNS = {"litert-torch": ("torch.export",)}
_PARAM = re.compile(
    rf"\[(?P<model>.+)-(?P<backend>{'|'.join(map(re.escape, BACKENDS))})-(?P<exporter>dynamo|torchscript|torch\.export)\]$"
)


def exporters(backend: str) -> tuple[str, ...]:
    return COLUMNS.get(backend, EXPORTERS)


def parse_id(nodeid: str) -> tuple[str, str, str] | None:
    match = _PARAM.search(nodeid)
    return (match["model"], match["backend"], match["exporter"]) if match else None


def short_reason(reason: str) -> str:
    """The named part of a reason: up to the first ' -- ' (reasons are '<name> -- <details>')."""
    return reason.split(" -- ", 1)[0].strip()


def run_pytest(json_path: Path, xml_path: Path, extra: list[str]) -> tuple[int, float]:
    cmd = [
        sys.executable, "-m", "pytest", TEST_FILE, "-p", "no:randomly", f"--xframe-report={json_path}",
        f"--junitxml={xml_path}", "-q", *extra,
    ]
    print("$ " + shlex.join(cmd), file=sys.stderr)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-3:]
    print("\n".join(tail), file=sys.stderr)
    return proc.returncode, seconds


def read_junit(path: Path) -> dict[tuple[str, str, str], dict]:
    """Per test: outcome (passed/xfail/skipped/failed/error), message, seconds."""
    out: dict[tuple[str, str, str], dict] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = parse_id(case.get("name", ""))
        if key is None:
            continue
        outcome, message = "passed", ""
        for child in case:
            if child.tag == "skipped":
                outcome = "xfail" if child.get("type") == "pytest.xfail" else "skipped"
                message = child.get("message", "")
            elif child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = child.get("message", "")
        if outcome == "skipped" and message.startswith("Skipped: "):
            message = message[len("Skipped: "):]
        out[key] = {"outcome": outcome, "message": message, "seconds": float(case.get("time", 0.0))}
    return out


def known_failures() -> dict[tuple[str, str, str], str]:
    """(model, backend, exporter) -> xfail reason, from the test module (needs torch: slow-ish)."""
    sys.path[:0] = [str(ROOT / "tests" / "unit" / "check"), str(ROOT / "tests")]  # the test module, and the models it imports
    try:
        import test_coverage  # type: ignore[import-not-found]
    except Exception as exc:  # noqa: BLE001 - only improves the labels
        print(f"(could not import {TEST_FILE} for xfail reasons: {type(exc).__name__}: {exc})", file=sys.stderr)
        return {}
    table = {}
    for model in test_coverage.CASES:
        for backend in BACKENDS:
            for exporter in exporters(backend):
                known = test_coverage._known_failure(model, backend, exporter)
                if known:
                    table[(model, backend, exporter)] = known[1]
    return table


def _first_line(text: str) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def build_cells(checks: list[dict], junit: dict | None, known: dict) -> tuple[dict, dict[str, str], list[str], dict]:
    """cells[(model, backend, exporter)] = text; reasons (short -> full); model order; onnx used."""
    records = {}
    for rec in checks:
        key = parse_id(rec["test"])
        if key is not None:
            records[key] = rec
    keys = list(dict.fromkeys(list(junit or {}) + list(records)))
    models = list(dict.fromkeys(k[0] for k in keys))
    cells: dict[tuple[str, str, str], str] = {}
    reasons: dict[str, str] = {}
    onnx_used: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key in keys:
        rec = records.get(key)
        test = (junit or {}).get(key)
        _, backend, exporter = key
        onnx = (rec or {}).get("onnx") or ""
        if onnx:
            onnx_used[(backend, exporter)].add(onnx)
        fallback = f" [ran {onnx}]" if onnx and not onnx.startswith(exporter) else ""
        if test is not None:
            outcome, message = test["outcome"], test["message"]
        elif rec is not None:  # JSON only: xfail status from the table
            outcome = {"passed": "passed", "skipped": "skipped"}.get(rec["verdict"], "failed")
            if outcome == "failed" and key in known:
                outcome, message = "xfail", known[key]
            elif outcome == "passed" and key in known:
                outcome, message = "xpass", known[key]
            else:
                message = rec.get("message", "")
        else:
            continue
        if outcome == "passed":
            max_abs = (rec or {}).get("max_abs")
            cells[key] = ("ok " + (f"{max_abs:.2g}" if max_abs is not None else "-")) + fallback
        elif outcome == "xfail":
            reason = re.sub(r"^reason:\s*", "", message)
            reasons.setdefault(short_reason(reason), reason)
            cells[key] = f"xfail: {short_reason(reason)}" + fallback
        elif outcome == "skipped":
            cells[key] = f"skip: {_first_line(message) or (rec or {}).get('message', '')}"
        elif outcome == "xpass" or "XPASS(strict)" in message:
            cells[key] = "XPASS(strict): known failure now passes" + fallback
        else:
            line = _first_line((rec or {}).get("message") or "") or _first_line(message)
            cells[key] = f"FAIL: {line}" + fallback
    return cells, reasons, models, onnx_used


def _without_reason(label: str) -> str:
    """A route without the parenthesised reason it ends with (which may nest parentheses)."""
    depth = 0
    for i in range(len(label) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(label[i], 0)
        if depth == 0:
            return label[: i - 1] if i and label[i] == "(" and label[i - 1] == " " else label
    return label


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(cells: dict, reasons: dict[str, str], models: list[str], onnx_used: dict, junit: dict | None, wall: float | None) -> str:
    columns = [(b, e) for b in BACKENDS for e in exporters(b) if any((m, b, e) in cells for m in models)]
    lines = [
        "| model | " + " | ".join(f"{b} / {e}" for b, e in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for model in models:
        lines.append(f"| {model} | " + " | ".join(_escape(cells.get((model, b, e), "-")) for b, e in columns) + " |")
    lines.append("")
    lines.append("ONNX each column ran (exporter, opset; a route from torch without its reason): " + "; ".join(
        f"{b} / {e}: {', '.join(sorted({_without_reason(o) for o in onnx_used[(b, e)]})) or '-'}" for b, e in columns
    ))
    if reasons:
        lines.append("")
        lines.append("Known failures (xfail, strict):")
        lines.extend(f"- **{short}**: {full.split(' -- ', 1)[1] if ' -- ' in full else full}" for short, full in reasons.items())
    counts: dict[str, int] = defaultdict(int)
    for text in cells.values():
        counts[text.split(":")[0].split(" ")[0]] += 1
    lines.append("")
    lines.append("Cells: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if junit:
        per_backend: dict[str, float] = defaultdict(float)
        per_column: dict[tuple[str, str], float] = defaultdict(float)
        for (_model, backend, exporter), test in junit.items():
            per_backend[backend] += test["seconds"]
            per_column[(backend, exporter)] += test["seconds"]
        lines.append("")
        lines.append("Test time per backend (sum of test durations, s): " + "; ".join(
            f"{b} {per_backend[b]:.0f} ({', '.join(f'{e} {per_column[(b, e)]:.0f}' for e in exporters(b) if (b, e) in per_column)})"
            for b in BACKENDS if b in per_backend
        ))
    if wall is not None:
        lines.append(f"Wall time of the pytest run: {wall:.0f} s")
    return "\n".join(lines)


QUANTIZED = ("tflite-fp16", "tflite-int8", "tflite-int8-full", "onnxruntime-int8")
_DATA_PARAM = re.compile(rf"\[(?P<model>.+)-(?P<backend>{'|'.join(map(re.escape, QUANTIZED))})-data\]$")


def render_data(checks: list[dict]) -> str:
    """The quantized targets judged over each model's data (``test_quantized_coverage_over_data``):
    per cell the verdict, the lowest median SNR over the outputs, and what was quantized."""
    cells: dict[tuple[str, str], str] = {}
    for rec in checks:
        found = _DATA_PARAM.search(rec["test"])
        if found is None:
            continue
        outputs = ((rec.get("data") or {}).get("outputs") or {}).values()
        medians = [o["snr_db"]["p50"] for o in outputs if o.get("snr_db") and o["snr_db"]["p50"] is not None]
        q = rec.get("quantization") or {}
        text = rec["verdict"] + (f", median SNR {min(medians):.1f} dB" if medians else "")
        text += f", {q['quantized']}/{q['total']} quantized" if "quantized" in q else ""
        cells[(found["model"], found["backend"])] = text if rec["verdict"] != "error" else f"error: {_first_line(rec.get('message', ''))[:60]}"
    if not cells:
        return ""
    models = list(dict.fromkeys(m for m, _ in cells))
    lines = ["Quantized targets over data (16 samples drawn from each spec; default thresholds over data):", "",
             "| model | " + " | ".join(QUANTIZED) + " |", "|---|" + "---|" * len(QUANTIZED)]
    lines.extend(f"| {m} | " + " | ".join(_escape(cells.get((m, t), "-")) for t in QUANTIZED) + " |" for m in models)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, help="read this --xframe-report JSON instead of running pytest")
    parser.add_argument("--junit", type=Path, help="with --report: the run's --junitxml file (xfail/skip reasons, times)")
    parser.add_argument("--keep", type=Path, help="when running: write the JSON and XML reports here (a directory)")
    args, extra = parser.parse_known_args(argv)
    wall = None
    if args.report is None:
        directory = args.keep or Path(tempfile.mkdtemp(prefix="xframe-coverage-"))
        directory.mkdir(parents=True, exist_ok=True)
        json_path, xml_path = directory / "coverage.json", directory / "coverage.xml"
        status, wall = run_pytest(json_path, xml_path, extra)
        if not json_path.exists():
            print(f"pytest exited {status} without writing {json_path}", file=sys.stderr)
            return status or 1
        print(f"reports: {json_path} {xml_path}", file=sys.stderr)
    else:
        json_path, xml_path = args.report, args.junit
    document = json.loads(Path(json_path).read_text())
    junit = read_junit(xml_path) if xml_path is not None and Path(xml_path).exists() else None
    known = {} if junit is not None else known_failures()
    cells, reasons, models, onnx_used = build_cells(document.get("checks", []), junit, known)
    env = document.get("environment", {})
    print(f"Coverage matrix ({document.get('created', '?')}; " + ", ".join(f"{k} {v}" for k, v in env.items()) + ")")
    print()
    print(render(cells, reasons, models, onnx_used, junit, wall))
    quantized = render_data(document.get("checks", []))
    if quantized:
        print()
        print(quantized)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
