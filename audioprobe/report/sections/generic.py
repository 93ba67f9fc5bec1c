"""The table of the generic tier section, for a tier with no section of its own: per run, model, tier,
method and judge, how many clips it heard, decided, called correct and failed on, with Wilson intervals;
and each item's verdict (judged correct, one definition for every table) per run, model, tier and method."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from audioprobe.report.sections.common import GROUP, Row, frame, judged_correct, rate_cols, stages

JUDGE_COLUMNS = GROUP + ["judge", "valid_audio", "judged", "decided", "correct", "errors", "accuracy_rate",
                         "accuracy_ci_lo", "accuracy_ci_hi"]  # fmt: skip
ITEM_COLUMNS = GROUP + ["items", "valid_audio", "decided", "correct", "accuracy_rate", "accuracy_ci_lo",
                        "accuracy_ci_hi", "accuracy_of_items_rate", "accuracy_of_items_ci_lo",
                        "accuracy_of_items_ci_hi"]  # fmt: skip


def judgements(rows: list[Row]) -> pd.DataFrame:
    """One row per (run, model, tier, method, judge): every judge of every tier, its verdicts apart."""
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("valid_audio", "judged", "decided", "correct", "errors"), 0))  # fmt: skip
    for r in rows:
        o = r.outcome
        valid = stages(o)[2]
        for j in o.judgements:
            c = counts[(r.run_id, o.model, o.item.tier, o.method, f"{j.judge} {j.judge_version}".strip())]
            c["valid_audio"] += valid
            c["judged"] += 1
            c["errors"] += j.error is not None
            c["decided"] += j.error is None and j.correct is not None
            c["correct"] += j.error is None and bool(j.correct)
    records = []
    for key, c in sorted(counts.items()):
        rec = dict(zip(GROUP + ["judge"], key)) | c
        rate_cols(rec, c["correct"], c["decided"], "accuracy")
        records.append(rec)
    return frame(records, JUDGE_COLUMNS)


def verdicts(rows: list[Row]) -> pd.DataFrame:
    """Per run, model, tier and method: items judged correct, of those decided and of all items."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        o = r.outcome
        groups[(r.run_id, o.model, o.item.tier, o.method)].append(o)
    records = []
    for key, outs in sorted(groups.items()):
        verdict = [judged_correct(o) for o in outs]
        k, decided = sum(v is True for v in verdict), sum(v is not None for v in verdict)
        rec = dict(zip(GROUP, key)) | {"items": len(outs), "valid_audio": sum(stages(o)[2] for o in outs),
                                       "decided": decided, "correct": k}  # fmt: skip
        rate_cols(rec, k, decided, "accuracy")
        rate_cols(rec, k, len(outs), "accuracy_of_items")
        records.append(rec)
    return frame(records, ITEM_COLUMNS)
