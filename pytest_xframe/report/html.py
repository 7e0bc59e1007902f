"""pytest-html integration: each parity check's figures in the report, and its error plots.

Registered by plugin.py only when pytest-html is loaded, so nothing here runs (or imports
pytest-html) without it. Checked against pytest-html 4.1 and 4.2: a column ``xframe`` in the
results table, a figures table per test x backend x output in the row's detail (the
``pytest_html_results_table_html`` hook) and the failing case's error plots as PNG extras, which
``--self-contained-html`` embeds and a plain report writes beside itself under ``assets/``.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

import pytest

#: per-output figures shown, in order (absent ones as "-"); a record's "metrics" dict follows
_OUTPUT_FIGURES = ("max_abs", "max_rel", "atol", "rtol", "mean_abs", "p99_abs", "mismatches", "total")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return escape(str(value))


def summary_cell(records: list[dict[str, Any]]) -> str:
    """One line per backend: verdict and worst error against tolerance."""
    parts = []
    for r in records:
        ratio = r.get("tolerance_ratio")
        figure = f", max abs {_fmt(r.get('max_abs'))} ({ratio:.2g}x tol)" if isinstance(ratio, float) else ""
        parts.append(f"{escape(r['backend'])}: {escape(r['verdict'])}{figure}")
    return "<br>".join(parts)


def figures_table(records: list[dict[str, Any]]) -> str:
    """The figures of every backend x output, with the metrics and policy when the record has them."""
    metric_names = sorted({k for r in records for o in r["outputs"] for k in (o.get("metrics") or {})})
    head = ["backend", "output", "shape", "verdict", *_OUTPUT_FIGURES, *metric_names]
    rows = []
    for r in records:
        for o in r["outputs"] or [{}]:
            verdict = ("ok" if o.get("ok") else (o.get("problem") or "MISMATCH")) if o else r["verdict"]
            metrics = o.get("metrics") or {}
            cells = [r["backend"], o.get("name", "-"), f"{o.get('dtype', '')}{o.get('shape', '')}" if o else "-", verdict]
            cells += [o.get(k) for k in _OUTPUT_FIGURES] + [metrics.get(k) for k in metric_names]
            rows.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
    notes = "".join(
        f"<p>{escape(r['backend'])}: {escape(r['message'])}</p>" for r in records if r.get("message") and r["verdict"] != "passed"
    )
    return f'<div class="xframe-figures"><table>{header}{"".join(rows)}</table>{notes}</div>'


def plot_extras(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failing cases' error plots (``error-*.png`` in their artifacts) as pytest-html extras."""
    from pytest_html import extras

    out = []
    for r in records:
        if r.get("artifacts"):
            for png in sorted(Path(r["artifacts"]).glob("error-*.png")):
                data = base64.b64encode(png.read_bytes()).decode("ascii")
                out.append(extras.png(data, name=f"{r['backend']}: {png.stem}"))
    return out


class HtmlReport:
    """pytest-html hooks; plain data in, HTML strings out."""

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, '<th class="col-xframe">xframe</th>')

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        records = getattr(report, "xframe", None) or []
        cells.insert(2, f'<td class="col-xframe">{summary_cell(records)}</td>')

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        records = getattr(report, "xframe", None)
        if records:
            data.insert(0, figures_table(records))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        records = getattr(report, "xframe", None)
        if records and report.when == "call":
            report.extras = list(getattr(report, "extras", [])) + plot_extras(records)
        return report
