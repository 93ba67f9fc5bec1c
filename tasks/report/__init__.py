"""The run report: tables (tables.py), pictures and players (media.py), the page (html.py), files (build.py).

`build_report(run, compare=[...]) -> Path` writes <run dir>/report/index.html with every table as CSV and
Parquet beside it; `summary_markdown(store) -> str` is the short summary for the console and Prefect UI.
"""

from tasks.report.build import build_report, summary_markdown
from tasks.report.html import ReportLimits
from tasks.report.tables import ReportTables, build_tables, classify_failure

__all__ = [
    "build_report",
    "summary_markdown",
    "build_tables",
    "classify_failure",
    "ReportLimits",
    "ReportTables",
]
