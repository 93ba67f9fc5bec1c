"""Section 4: environmental sounds. Table 1 and Figure 4 (confidences of correct choices)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioprobe.report import paper
from audioprobe.report.sections.common import (
    ACCURACY_COLUMNS,
    Row,
    frame,
    in_section,
    judge_names,
    judgements_of,
    num,
    rate_cols,
    stages,
    wav_produced,
)
from audioprobe.schema import ItemOutcome


def environmental(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 1 per model x method, and Figure 4: the confidences of correctly classified clips."""
    groups: dict[tuple, list[ItemOutcome]] = {}
    for r in rows:
        if in_section(r.outcome.item.tier, "table1"):
            groups.setdefault((r.run_id, r.outcome.model, r.outcome.method), []).append(r.outcome)
    table, confs = [], {}
    for (run, model, method), outs in sorted(groups.items()):
        js = [j for o in outs for j in judgements_of(o, "classify")]
        correct = [j for j in js if j.correct]
        conf = [c for c in (num(j.values.get("confidence")) for j in correct) if c is not None]
        expected = [c for c in (num(j.values.get("expected_accuracy")) for j in js) if c is not None]
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "items": len(outs),
            "wav_produced": sum(wav_produced(o) for o in outs),
            "valid_audio": sum(stages(o)[2] for o in outs),
            "judged": len(js),
            "correct": len(correct),
            "mean_conf_correct": float(np.mean(conf)) if conf else None,
            "mean_expected_accuracy": float(np.mean(expected)) if expected else None,
            "chance": 0.2,
            "distractor_seed": ", ".join(sorted({str(j.params.get("seed")) for j in js})),
            "distractors": ", ".join(sorted({str(j.params.get("distractors", "random")) for j in js})),
            "judge": judge_names(js),
        }
        rate_cols(rec, len(correct), len(js), "accuracy")
        rate_cols(rec, len(correct), rec["wav_produced"], "accuracy_of_wavs")  # the paper's: 119/533
        table.append(rec)
        confs[(run, model, method)] = conf
        confs.setdefault((run, model, "all"), []).extend(conf)
        confs.setdefault(("all", "all", "all"), []).extend(conf)
    hist, stats = [], []
    for (run, model, method), conf in sorted(confs.items()):
        counts, _ = (
            np.histogram(np.clip(conf, 0, 1), bins=paper.CONF_BINS) if conf else (np.zeros(4, int), None)
        )
        for label, c in zip(paper.CONF_BIN_LABELS, counts):
            hist.append(
                {
                    "run": run,
                    "model": model,
                    "method": method,
                    "bin": label,
                    "count": int(c),
                    "share": c / len(conf) if conf else None,
                }
            )
        stats.append(
            {
                "run": run,
                "model": model,
                "method": method,
                "n": len(conf),
                "max": max(conf) if conf else None,
                "min": min(conf) if conf else None,
                "mean": float(np.mean(conf)) if conf else None,
                "median": float(np.median(conf)) if conf else None,
            }
        )
    t_cols = [
        *ACCURACY_COLUMNS,
        "mean_conf_correct",
        "mean_expected_accuracy",
        "chance",
        "distractor_seed",
        "distractors",
        "judge",
    ]
    return (
        frame(table, t_cols),
        frame(hist, ["run", "model", "method", "bin", "count", "share"]),
        frame(stats, ["run", "model", "method", "n", "max", "min", "mean", "median"]),
    )
