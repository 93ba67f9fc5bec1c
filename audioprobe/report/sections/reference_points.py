"""Reference points (section id="reference-points"): silence, white noise, a sine at the target or a tone
burst, and a held-out real recording through every judge of each tier (tasks/judges/controls.py).

`reference_points` is one row per control x judge, summed over the items tried; `reference_point_clips`
one row per clip; `empirical_chance` the forced choices' accuracy on the non-speech controls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioprobe.report.sections.common import frame, num, rate_cols, tiers_in
from tasks.judges import controls
from tasks.records import Run
from tasks.tiers import all_tiers

CLIP_COLUMNS = [
    "run", "tier", "control", "item", "label", "judge", "gate_ok", "gate_problems", "correct", "chosen",
    "cents_error", "confidence", "note_fad", "note_kad", "band", "error",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "run", "tier", "control", "judge", "items", "gate_passed", "judged", "correct", "accuracy_rate",
    "accuracy_ci_lo", "accuracy_ci_hi", "median_note_fad", "median_note_kad", "errors",
]  # fmt: skip


def reference_point_clips(runs: list[Run]) -> pd.DataFrame:
    records = []
    for run in runs:
        for p in controls.load(run.dir):
            v = p.values
            rec = {
                    "run": run.run_id, "tier": p.tier, "control": p.control, "item": p.item, "label": p.label,
                    "judge": f"{p.judge} {p.judge_version}".strip(), "gate_ok": p.gate_ok,
                    "gate_problems": ", ".join(p.gate_problems), "correct": p.correct, "chosen": v.get("chosen"),
                    "cents_error": num(v.get("cents_error")), "confidence": num(v.get("confidence")),
                    "note_fad": num(v.get("fad")), "note_kad": num(v.get("kad")), "band": v.get("band"),
                    "error": p.error,
            }  # fmt: skip
            records.append(rec)
    return frame(records, CLIP_COLUMNS)


def reference_points(clips: pd.DataFrame) -> pd.DataFrame:
    records = []
    order = {c: i for i, c in enumerate(dict.fromkeys(c for cs in controls.CONTROLS.values() for c in cs))}
    for (run, tier, control, judge), g in clips.groupby(["run", "tier", "control", "judge"]) if len(clips) else []:
        judged = g[g["correct"].notna()]
        k = int(judged["correct"].astype(bool).sum())
        rec = {
            "run": run, "tier": tier, "control": control, "judge": judge, "items": g["item"].nunique(),
            "gate_passed": int(g["gate_ok"].fillna(False).astype(bool).sum()), "judged": len(judged), "correct": k,
            "median_note_fad": _median(g["note_fad"]), "median_note_kad": _median(g["note_kad"]),
            "errors": int(g["error"].notna().sum()),
        }  # fmt: skip
        rate_cols(rec, k, len(judged), "accuracy")
        records.append(rec)
    df = frame(records, SUMMARY_COLUMNS)
    if len(df):
        df = df.assign(_o=df["control"].map(order)).sort_values(["run", "tier", "judge", "_o"]).drop(columns="_o")
    return df


def empirical_chance(runs: list[Run]) -> pd.DataFrame:
    """Per run: each forced choice's accuracy on the non-speech controls it decided on, beside its nominal
    20%; abstentions (silence is never decoded, pocketsphinx may choose no word) are their own column."""
    records = []
    for run in runs:
        points = controls.load(run.dir)
        for tier, prefix in ((t.name, t.headline) for t in all_tiers() if t.forced_choice):
            c = controls.empirical_chance([p for p in points if p.tier == tier], prefix)
            if c["n"] or c["abstained"]:
                rec = {"run": run.run_id, "tier": tier, "nominal": 0.2, "correct": c["correct"], "n": c["n"],
                       "abstained": c["abstained"], "controls": ", ".join(c["controls"])}  # fmt: skip
                rate_cols(rec, c["correct"], c["n"], "empirical")
                records.append(rec)
    cols = ["run", "tier", "nominal", "correct", "n", "abstained", "empirical_rate", "empirical_ci_lo",
            "empirical_ci_hi", "controls"]
    return frame(records, cols)


def _median(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(np.median(s)) if len(s) else None


def with_empirical_chance(table: pd.DataFrame, chance: pd.DataFrame, tiers: list[str]) -> pd.DataFrame:
    """A forced choice's accuracy table (of these tiers) with its run's empirical chance (and CI) beside the
    nominal 20%."""
    cols = ["empirical_chance", "empirical_chance_ci_lo", "empirical_chance_ci_hi"]
    mine = chance[chance["tier"].isin(tiers)].set_index("run") if len(chance) else None
    out = table.copy()
    for col, src in zip(cols, ["empirical_rate", "empirical_ci_lo", "empirical_ci_hi"]):
        out[col] = out["run"].map(mine[src]) if mine is not None and len(out) else None
    return out


NOISE_FLOOR = ("white_noise", "silence")  # the pitch judge's floor: what it calls the right note in no note


def with_noise_floor(table: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The pitch table with its run's white-noise control beside every accuracy: how often the pitch judge
    called noise the asked note (correct / judged, Wilson CI). No control judged: the columns say None."""
    out = table.copy()
    cols = ["noise_correct", "noise_judged", "noise_rate", "noise_ci_lo", "noise_ci_hi"]
    floors = {}
    if len(summary):
        rows = summary[(summary["tier"].isin(tiers_in("pitch_and_fad"))) & (summary["control"] == NOISE_FLOOR[0])
                       & summary["judge"].str.startswith("pitch")]
        for run, g in rows.groupby("run"):
            k, n = int(g["correct"].sum()), int(g["judged"].sum())
            rec = {"noise_correct": k, "noise_judged": n}
            rate_cols(rec, k, n, "noise")
            floors[run] = rec
    for col in cols:
        out[col] = [floors.get(run, {}).get(col) for run in out["run"]] if len(out) else []
    return out
