"""Sections 1 and 2: generated / executed / valid audio per group, and the failure taxonomy."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from audioprobe.report.sections.common import GROUP, Row, frame, rate_cols, stages
from audioprobe.schema import ItemOutcome
from audioprobe.settings import get_settings
from tasks import taxonomy
from tasks.taxonomy import FAILURES

# The failure taxonomy is tasks.taxonomy's; the report adds "pending" (a record not finished yet) and
# "ok" (valid audio, judged).
KINDS = (*FAILURES, "pending", "ok")
KIND_LABELS = {
    "llm_error": "LLM error",
    "not_attempted": "not attempted (model unavailable)",
    "truncated": "cut at max_tokens",
    "no_code": "no code",
    "syntax": "syntax error",
    "missing_module": "missing module",
    "bad_import": "bad import (invented API)",
    "runtime": "runtime error",
    "timeout": "timeout",
    "memory": "out of memory",
    "no_output": "no output file",
    "output_rejected": "output rejected",
    "invalid_audio": "invalid audio",
    "judge_error": "judge error",
    "infrastructure": "Docker / orchestration",
    "pending": "not finished",
    "ok": "valid audio",
}


def stored_failure(o: ItemOutcome) -> tuple[str, str]:
    """(kind, detail) as the outcome writer stored them when the record was written (tasks/outcomes.py)."""
    return o.row["status"], o.failure_detail


def module_status_of(module: str) -> tuple[str, str]:
    """Real but not installed, hallucinated, or unknown (offline): tasks.taxonomy.module_status."""
    return taxonomy.module_status(module, check_index=get_settings().check_package_index)


def overview(rows: list[Row]) -> pd.DataFrame:
    groups: dict[tuple, list[ItemOutcome]] = {}
    for r in rows:
        o = r.outcome
        groups.setdefault((r.run_id, o.model, o.item.tier, o.method), []).append(o)
    records = []
    for (run, model, tier, method), outs in sorted(groups.items()):
        flags = [stages(o) for o in outs]
        n = len(outs)
        rec = {
            "run": run,
            "model": model,
            "tier": tier,
            "method": method,
            "items": n,
            "generated": sum(f[0] for f in flags),
            "executed_ok": sum(f[1] for f in flags),
            "valid_audio": sum(f[2] for f in flags),
            "pending": sum(stored_failure(o)[0] == "pending" for o in outs),
        }
        for name in ("generated", "executed_ok", "valid_audio"):
            rate_cols(rec, rec[name], n, name)
        records.append(rec)
    cols = (
        GROUP
        + ["items", "generated", "executed_ok", "valid_audio", "pending"]
        + [
            f"{s}_{c}"
            for s in ("generated", "executed_ok", "valid_audio")
            for c in ("rate", "ci_lo", "ci_hi")
        ]
    )
    return frame(records, cols)


def failures(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Counts per kind, per missing module, and per detail of every other kind (error types, problems)."""
    kinds: Counter = Counter()
    modules: Counter = Counter()
    details: Counter = Counter()
    for r in rows:
        o = r.outcome
        kind, detail = stored_failure(o)
        base = (r.run_id, o.model, o.item.tier, o.method)
        kinds[base + (kind,)] += 1
        if kind == "missing_module":
            modules[(r.run_id, o.model, detail)] += 1
        elif kind == "invalid_audio":
            for problem in o.gate.problems or ["?"]:
                details[base + (kind, problem.split(":")[0].strip())] += 1
        elif kind not in ("ok", "pending"):
            details[base + (kind, detail.split("\n")[0][:120])] += 1
    kind_df = frame(
        [dict(zip(GROUP + ["kind", "count"], k + (v,))) for k, v in sorted(kinds.items())],
        GROUP + ["kind", "count"],
    )
    kind_df["label"] = kind_df["kind"].map(KIND_LABELS)
    mod_df = frame(
        [
            {"run": k[0], "model": k[1], "module": k[2], "count": v}
            for k, v in sorted(modules.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        ["run", "model", "module", "count"],
    )
    statuses = {m: module_status_of(m) for m in set(mod_df["module"])}
    mod_df["status"] = mod_df["module"].map(lambda m: statuses[m][0])
    mod_df["how"] = mod_df["module"].map(lambda m: statuses[m][1])
    det_df = frame(
        [
            dict(zip(GROUP + ["kind", "detail", "count"], k + (v,)))
            for k, v in sorted(details.items(), key=lambda kv: (kv[0][:5], -kv[1]))
        ],
        GROUP + ["kind", "detail", "count"],
    )
    return kind_df, mod_df, det_df
