"""Figures and verdicts, numpy only: elementwise comparison (``compare``), metrics as small pure
functions (``metrics``), policies that turn figures into pass or fail (``policy``, ``verdict``),
checks that cannot fail (``vacuity``), drift against a committed baseline (``baseline``), what a
check produces per backend (``results``, ``mismatch``), and the one place its verdicts are decided
(``decide``). Nothing here runs a framework or writes a report.
"""
