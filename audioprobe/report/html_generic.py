"""The section of a tier that has none of its own (Tier.report_section, html.SECTIONS): its counts and stages, its
failures, every judge's verdicts and the accuracy with its interval, from sections/generic.py's tables."""

from __future__ import annotations

from audioprobe.report.fmt import E, rate, table, who_columns
from audioprobe.report.sections.common import tier_title
from audioprobe.report.tables import KIND_LABELS, ReportTables


def _of(df, tier: str):
    return df[df["tier"] == tier] if len(df) else df


def section_generic(rt: ReportTables, tier: str) -> str:
    who = who_columns(rt)
    stage_cols = who + [
        ("method", "method"),
        ("items", "items"),
        ("generated (code)", lambda r: rate(r, "generated", "generated")),
        ("executed OK", lambda r: rate(r, "executed_ok", "executed_ok")),
        ("valid audio (gate)", lambda r: rate(r, "valid_audio", "valid_audio")),
        ("pending", "pending"),
    ]
    fails = _of(rt["failures"], tier)
    fails = fails[fails["kind"] != "ok"] if len(fails) else fails
    fail_cols = who + [
        ("method", "method"),
        ("status", lambda r: E(KIND_LABELS[r["kind"]])),
        ("count", "count"),
    ]
    verdict_cols = who + [
        ("method", "method"),
        ("items", "items"),
        ("valid audio", "valid_audio"),
        ("decided", "decided"),
        ("judged correct, of decided", lambda r: rate(r, "accuracy", "correct")),
        ("of all items", lambda r: rate(r, "accuracy_of_items", "correct")),
    ]
    judge_cols = who + [
        ("method", "method"),
        ("judge", "judge"),
        ("clips heard", "judged"),
        ("decided", "decided"),
        ("judge errors", "errors"),
        ("correct, of decided", lambda r: rate(r, "accuracy", "correct")),
    ]
    anchor = E(tier)
    return (
        f"<section id={anchor}><h2>{E(tier_title(tier))}</h2>"
        "<p class=note>This tier has no section of its own: its counts, its failures, each judge's verdicts "
        "and the accuracy (judged correct where a judge decided; Wilson 95% intervals).</p>"
        + table(_of(rt["overview"], tier), stage_cols,
                numeric={"items", "generated (code)", "executed OK", "valid audio (gate)", "pending"})
        + "<h3>Status</h3>"
        + table(fails, fail_cols, numeric={"count"}, empty="No item failed.")
        + "<h3>Accuracy</h3>"
        + table(_of(rt["verdicts"], tier), verdict_cols,
                numeric={"items", "valid audio", "decided", "judged correct, of decided", "of all items"})
        + "<h3>Each judge</h3>"
        + table(_of(rt["judgements"], tier), judge_cols,
                numeric={"clips heard", "decided", "judge errors", "correct, of decided"},
                empty="No judgement recorded for this tier.")
        + "</section>"
    )
