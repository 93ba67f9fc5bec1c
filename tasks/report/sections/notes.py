"""Section 3: musical notes. FAD per instrument (Figure 3's bands) and pitch accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioprobe.schema import RunManifest
from tasks.records import RunStore
from tasks.report import paper
from tasks.report.sections.common import Row, frame, judge_names, num, rate_cols

PITCH_TOLERANCE_CENTS = 50.0  # nearest semitone right: the note a listener would name


def fad_table(stores: list[RunStore], manifests: list[RunManifest]) -> pd.DataFrame:
    records = []
    for store, manifest in zip(stores, manifests):
        for r in store.fad():
            model, method, label = r.model, r.method, r.label
            if not model and label.count("|") == 2:  # records of a judge run by hand: "model|method|class"
                model, method, label = label.split("|")
            if not model and len(manifest.models) == 1:
                model = manifest.models[0]
            lo, hi = r.ci if r.ci else (None, None)
            records.append(
                {
                    "run": store.run_id,
                    "model": model or "?",
                    "method": method or "paper",
                    "label": label,
                    "group": r.group,
                    "fad": num(r.fad),
                    "ci_lo": num(lo),
                    "ci_hi": num(hi),
                    "baseline": num(r.baseline),
                    "n_gen": r.n_gen,
                    "n_ref": r.n_ref,
                    "embedding": r.embedding,
                    "band": r.band or paper.fad_band(num(r.fad)),
                    "note": r.note,
                }
            )
    cols = [
        "run",
        "model",
        "method",
        "label",
        "group",
        "fad",
        "ci_lo",
        "ci_hi",
        "baseline",
        "n_gen",
        "n_ref",
        "embedding",
        "band",
        "note",
    ]
    return frame(records, cols)


def instrument_rows(fad: pd.DataFrame, families: set[str]) -> pd.DataFrame:
    """The per-instrument scores (the paper's classes): group "instrument" where the records say so,
    else labels that are instrument families, else every label but macro averages."""
    usable = fad[fad["fad"].notna()] if len(fad) else fad
    if not len(usable):
        return usable
    if (usable["group"] == "instrument").any():
        return usable[usable["group"] == "instrument"]
    if usable["label"].isin(families).any():
        return usable[usable["label"].isin(families)]
    return usable[~usable["label"].str.lower().str.startswith(("macro", "all", "mean", "_"))]


def notes_similarity(fad: pd.DataFrame, families: set[str]) -> pd.DataFrame:
    """Figure 3: share of instrument classes (and of notes, weighted by N) in each of the paper's bands."""
    records = []
    usable = instrument_rows(fad, families)
    for (run, model, method), g in usable.groupby(["run", "model", "method"]) if len(usable) else []:
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "classes": len(g),
            "notes": int(g["n_gen"].sum()),
            "embedding": ", ".join(sorted(set(g["embedding"]))),
        }
        for band in paper.BANDS:
            sel = g[g["fad"].map(paper.fad_band) == band]
            key = band.split()[0]
            rec[f"{key}_classes"] = len(sel)
            rec[f"{key}_share"] = len(sel) / len(g)
            rec[f"{key}_notes_share"] = sel["n_gen"].sum() / rec["notes"] if rec["notes"] else None
        rec["median_fad"] = float(g["fad"].median())
        records.append(rec)
    cols = (
        ["run", "model", "method", "classes", "notes", "embedding"]
        + [f"{b.split()[0]}_{c}" for b in paper.BANDS for c in ("classes", "share", "notes_share")]
        + ["median_fad"]
    )
    return frame(records, cols)


def pitch(rows: list[Row]) -> pd.DataFrame:
    groups: dict[tuple, list] = {}
    for r in rows:
        o = r.outcome
        if o.item.tier != "notes":
            continue
        # the pitch judge records an unmeasurable note as an error: judged, not measured
        for j in (j for j in o.judgements if j.judge.startswith("pitch") and (j.error is None or j.values)):
            groups.setdefault(
                (r.run, o.model, o.method, o.item.instrument_family or o.item.label), []
            ).append(j)
    records = []
    for (run, model, method, instrument), js in sorted(groups.items()):
        measured = [
            j
            for j in js
            if j.error is None
            and j.values.get("measurable", True)
            and num(j.values.get("cents_error")) is not None
        ]
        cents = [abs(num(j.values["cents_error"])) for j in measured]
        correct = sum(_pitch_correct(j) for j in measured)
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "instrument": instrument,
            "judged": len(js),
            "measurable": len(measured),
            "correct": correct,
            "octave_errors": sum(bool(j.values.get("octave_error")) for j in measured),
            "median_abs_cents": float(np.median(cents)) if cents else None,
            "tolerance_cents": PITCH_TOLERANCE_CENTS,
            "judge": judge_names(js),
        }
        rate_cols(rec, correct, len(measured), "accuracy")
        records.append(rec)
    cols = [
        "run",
        "model",
        "method",
        "instrument",
        "judged",
        "measurable",
        "correct",
        "accuracy_rate",
        "accuracy_ci_lo",
        "accuracy_ci_hi",
        "octave_errors",
        "median_abs_cents",
        "tolerance_cents",
        "judge",
    ]
    return frame(records, cols)


def _pitch_correct(j) -> bool:
    if j.correct is not None:
        return bool(j.correct)
    return abs(num(j.values.get("cents_error")) or 1e9) <= PITCH_TOLERANCE_CENTS
