"""What a run tells: per-check records (JSON data that travels from pytest-xdist workers), the
terminal summary, the JSON report and its schema, JUnit properties and the pytest-html columns.
Reports read the verdicts the checks reached; they never decide one.
"""

from .json_report import REPORT_SCHEMA, REPORT_SCHEMA_ID, REPORT_VERSION

__all__ = ["REPORT_SCHEMA", "REPORT_SCHEMA_ID", "REPORT_VERSION"]
