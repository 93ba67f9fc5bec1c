"""Section 5: speech. The recogniser's 5-way forced choice and what it heard."""

from __future__ import annotations

import json

import pandas as pd

from audioprobe.report.sections.common import (
    ACCURACY_COLUMNS,
    Row,
    frame,
    in_section,
    judge_names,
    judgements_of,
    rate_cols,
    stages,
    wav_produced,
)
from audioprobe.schema import ItemOutcome


def speech(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame]:
    groups: dict[tuple, list[ItemOutcome]] = {}
    texts = []
    for r in rows:
        o = r.outcome
        if not in_section(o.item.tier, "spoken_words"):
            continue
        groups.setdefault((r.run_id, o.model, o.method), []).append(o)
        for j in judgements_of(o, "speech"):
            texts.append(
                {
                    "run": r.run_id,
                    "model": o.model,
                    "method": o.method,
                    "item": o.item.id,
                    "word": o.item.label,
                    "chosen": j.values.get("chosen"),
                    "correct": j.correct,
                    "text": j.values.get("text"),
                    "choices": json.dumps(j.values.get("choices")),
                    "judge": f"{j.judge} {j.judge_version}".strip(),
                }
            )
    acc = []
    for (run, model, method), outs in sorted(groups.items()):
        js = [j for o in outs for j in judgements_of(o, "speech")]
        k = sum(bool(j.correct) for j in js)
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "items": len(outs),
            "wav_produced": sum(wav_produced(o) for o in outs),
            "valid_audio": sum(stages(o)[2] for o in outs),
            "judged": len(js),
            "correct": k,
            "chance": 0.2,
            "judge": judge_names(js),
        }
        rate_cols(rec, k, len(js), "accuracy")
        rate_cols(rec, k, rec["wav_produced"], "accuracy_of_wavs")  # the paper's denominator
        acc.append(rec)
    a_cols = [
        *ACCURACY_COLUMNS,
        "chance",
        "judge",
    ]
    t_cols = ["run", "model", "method", "item", "word", "chosen", "correct", "text", "choices", "judge"]
    return frame(acc, a_cols), frame(texts, t_cols)
