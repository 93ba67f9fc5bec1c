"""What happened to one program: its status from the runner's report, its traceback's exception.

The exit code classifies. A program that exited 0 and wrote every expected output, all accepted, is
`ok` whatever its stderr says (it may print a caught MemoryError). `memory` needs an OOM kill, or a
non-zero exit whose traceback ends in a MemoryError.
"""

from __future__ import annotations

import fnmatch
import re

_EXC_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration|Fault))(?::\s*(.*))?$"
)
_NO_MODULE = re.compile(r"No module named '([^']+)'")


def parse_traceback(stderr: str) -> tuple[str | None, str | None]:
    """(exception type, missing module) from the last exception line of a Python traceback."""
    for line in reversed(stderr.strip().splitlines()):
        m = _EXC_LINE.match(line.strip())
        if m:
            etype, msg = m.group(1).rsplit(".", 1)[-1], m.group(2) or ""
            mod = _NO_MODULE.search(msg) if etype in ("ModuleNotFoundError", "ImportError") else None
            return etype, mod.group(1) if mod else None
    return None, None


def matches(expect: list[str], names: list[str]) -> bool:
    """Every expected name present; every glob matched at least once."""
    return all(any(fnmatch.fnmatchcase(n, p) for n in names) for p in expect)


def classify(report: dict, expect: list[str], oom_killed: bool) -> tuple[str, str | None, str | None]:
    """(status, error_type, missing_module) for one run; the exit code decides, stderr only names."""
    etype, missing = parse_traceback(report.get("stderr_tail", ""))
    if report.get("runner_failed"):
        if report.get("runner_problem") == "timeout":
            return "timeout", None, None
        if oom_killed:
            return "memory", "OOMKilled", None
        return "error", "SandboxKilled", None
    if report.get("timed_out"):
        return "timeout", None, None
    code = report.get("exit_code")
    if code:
        oom = (report.get("oom_kills") and report.get("signal") == "SIGKILL") or oom_killed
        if oom:
            return "memory", "OOMKilled", None
        if (etype or "").endswith("MemoryError"):
            return "memory", etype, None
        return (
            "error",
            etype or (report.get("signal") and f"Signal.{report['signal']}") or f"Exit{code}",
            missing,
        )
    names = [f["name"] for f in report.get("files", [])]
    if report.get("rejected"):
        return "output_rejected", None, None
    if not names or not matches(expect, names):
        return "no_output", None, None
    return "ok", None, None
