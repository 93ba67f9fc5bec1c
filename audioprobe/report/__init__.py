"""The run report: tables (tables.py), pictures and players (media.py), the page (html.py), files (build.py).

`build_report(run, compare=[...]) -> Path` writes <run dir>/report/index.html with every table as CSV and
Parquet beside it, and summary.md: the short summary for the console and Prefect UI (`report_summary(run)`;
`summary_markdown(run)` makes one without writing the report).
"""

from audioprobe.report.build import build_report, report_summary, summary_markdown
from audioprobe.report.html import ReportLimits
from audioprobe.report.tables import ReportTables, build_tables, stored_failure

__all__ = [
    "build_report",
    "report_summary",
    "summary_markdown",
    "build_tables",
    "stored_failure",
    "ReportLimits",
    "ReportTables",
]
