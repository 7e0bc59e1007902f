"""report/html.py: the figures table of one record."""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_html", reason="pytest-html is not installed: pip install pytest-html")


def test_figures_table_shows_metrics_when_the_record_has_them() -> None:
    from pytest_xframe.report.html import figures_table

    output = {"name": "logits", "ok": False, "problem": None, "shape": [2, 3], "dtype": "float32", "max_abs": 0.5, "max_rel": 0.25,
              "atol": 1e-5, "rtol": 1e-4, "mean_abs": 0.1, "p99_abs": 0.4, "mismatches": 2, "total": 6,
              "metrics": {"cosine": 0.998, "snr_db": 31.5, "topk": None}}
    table = figures_table([{"backend": "tflite", "verdict": "failed", "message": "logits: max abs 0.5", "outputs": [output]}])
    assert "<th>cosine</th><th>snr_db</th><th>topk</th>" in table
    assert "<td>tflite</td><td>logits</td><td>float32[2, 3]</td><td>MISMATCH</td><td>0.5</td><td>0.25</td><td>1e-05</td>" in table
    assert "<td>0.998</td><td>31.5</td><td>-</td></tr>" in table
    assert "<p>tflite: logits: max abs 0.5</p>" in table
