"""Figures and verdicts, numpy only (scipy's assignment solver for detections): elementwise
comparison (``compare``), metrics as small pure functions (``metrics``), policies that turn figures
into pass or fail (``policy``, ``verdict``), figures and thresholds over the samples of ``data=``
(``aggregate``, ``data_policy``), outputs judged by their structure: detections as sets, token ids
by exact-match rate (``structured``, ``detections``), checks that cannot fail (``vacuity``), drift
against a committed baseline (``baseline``), what a check produces per backend (``results``,
``mismatch``), and the one place its verdicts are decided (``decide``). Nothing here runs a
framework or writes a report.
"""
