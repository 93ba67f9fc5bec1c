"""Section 3: musical notes. FAD and KAD per instrument, Figure 3 from per-note scores, pitch accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioprobe.report import paper
from audioprobe.report.sections.common import (
    Row,
    frame,
    in_section,
    judge_names,
    num,
    rate_cols,
    wav_produced,
)
from audioprobe.schema import RunManifest
from tasks.judges import frechet
from tasks.records import Run

PITCH_TOLERANCE_CENTS = 50.0  # nearest semitone right: the note a listener would name


def fad_table(runs: list[Run], manifests: list[RunManifest]) -> pd.DataFrame:
    """One row per class score: FAD and KAD with CIs and same-N baselines (with the middle 95 % of
    same-distribution scores at that N, and whether drawn or extrapolated), fadtk's FAD-inf, the band only
    where the paper's calibration holds (else band_note says why)."""
    records = []
    for run, manifest in zip(runs, manifests):
        for r in run.fad():
            model, method, label = r.model, r.method, r.label
            if not model and label.count("|") == 2:  # records of a judge run by hand: "model|method|class"
                model, method, label = label.split("|")
            if not model and len(manifest.models) == 1:
                model = manifest.models[0]
            lo, hi = r.ci if r.ci else (None, None)
            klo, khi = r.kad_ci if r.kad_ci else (None, None)
            blo, bhi = r.baseline_range or (None, None)
            kblo, kbhi = r.kad_baseline_range or (None, None)
            band_note = r.band_note or (
                "" if r.band else frechet.no_band_reason(r.embedding, "set", r.window_s) or ""
            )
            records.append(
                {
                    "run": run.run_id,
                    "model": model or "?",
                    "method": method or "paper",
                    "label": label,
                    "group": r.group,
                    "fad": num(r.fad),
                    "ci_lo": num(lo),
                    "ci_hi": num(hi),
                    "baseline": num(r.baseline),
                    "baseline_lo": num(blo),
                    "baseline_hi": num(bhi),
                    "kad": num(r.kad),
                    "kad_ci_lo": num(klo),
                    "kad_ci_hi": num(khi),
                    "kad_baseline": num(r.kad_baseline),
                    "kad_baseline_lo": num(kblo),
                    "kad_baseline_hi": num(kbhi),
                    "baseline_method": r.baseline_method,
                    "fad_inf": num(r.fad_inf),
                    "n_gen": r.n_gen,
                    "n_ref": r.n_ref,
                    "baseline_n_gen": r.baseline_n_gen,
                    "baseline_n_ref": r.baseline_n_ref,
                    "window_s": r.window_s,
                    "embedding": r.embedding,
                    "band": r.band,
                    "band_note": band_note,
                    "note": r.note,
                }
            )
    return frame(records, FAD_COLUMNS)


FAD_COLUMNS = [
    "run", "model", "method", "label", "group", "fad", "ci_lo", "ci_hi", "baseline", "baseline_lo", "baseline_hi",
    "kad", "kad_ci_lo", "kad_ci_hi", "kad_baseline", "kad_baseline_lo", "kad_baseline_hi", "baseline_method", "fad_inf", "n_gen", "n_ref", "baseline_n_gen", "baseline_n_ref", "window_s",
    "embedding", "band", "band_note", "note",
]  # fmt: skip


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


def notes_similarity(notes: pd.DataFrame) -> pd.DataFrame:
    """Figure 3 as the paper meant it, from per-note scores: the share of notes in each band and the
    instruments whose median per-note FAD lies in each band. Bands only where calibrated (per-note VGGish
    FAD at 4 s); elsewhere the shares are empty and band_note says why."""
    records = []
    scored = notes[notes["note_fad"].notna()] if len(notes) else notes
    for (run, model, method), g in scored.groupby(["run", "model", "method"]) if len(scored) else []:
        medians = g.groupby("instrument")["note_fad"].median()
        calibrated = g["band"].notna().all()
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "classes": len(medians),
            "notes": len(g),
            "embedding": ", ".join(sorted(set(g["embedding"]))),
            "band_note": "" if calibrated else "; ".join(sorted(set(g["band_note"]) - {""})),
        }
        embedding, window = g["embedding"].iloc[0], g["window_s"].iloc[0]
        in_band = medians.map(lambda v, e=embedding, w=window: frechet.band(v, e, "note", w))
        for band in paper.BANDS:
            key = band.split()[0]
            rec[f"{key}_classes"] = int((in_band == band).sum()) if calibrated else None
            rec[f"{key}_share"] = rec[f"{key}_classes"] / len(medians) if calibrated else None
            rec[f"{key}_notes_share"] = float((g["band"] == band).mean()) if calibrated else None
        rec["median_fad"] = float(g["note_fad"].median())
        rec["median_kad"] = float(g["note_kad"].median()) if g["note_kad"].notna().any() else None
        records.append(rec)
    cols = (
        ["run", "model", "method", "classes", "notes", "embedding", "band_note"]
        + [f"{b.split()[0]}_{c}" for b in paper.BANDS for c in ("classes", "share", "notes_share")]
        + ["median_fad", "median_kad"]
    )
    return frame(records, cols)


def pitch(rows: list[Row]) -> pd.DataFrame:
    """Pitch accuracy per instrument. An unvoiced clip for a note the tracker can measure is a miss (the
    judge says so); accuracy is given out of measurable judged notes and, as the paper counts, out of
    generated WAVs."""
    groups: dict[tuple, list] = {}
    wavs: dict[tuple, int] = {}
    for r in rows:
        o = r.outcome
        if not in_section(o.item.tier, "pitch_and_fad"):
            continue
        key = (r.run_id, o.model, o.method, o.item.instrument_family or o.item.label)
        wavs[key] = wavs.get(key, 0) + wav_produced(o)
        groups.setdefault(key, [])
        # the pitch judge records an unmeasurable note as an error: judged, not measured
        groups[key] += [j for j in o.judgements if j.judge.startswith("pitch") and (j.error is None or j.values)]
    records = []
    for key, js in sorted(groups.items()):
        if not js and not wavs[key]:
            continue
        run, model, method, instrument = key
        measurable = [j for j in js if j.error is None and j.values.get("measurable", True)]
        voiced = [j for j in measurable if num(j.values.get("cents_error")) is not None]
        cents = [abs(num(j.values["cents_error"])) for j in voiced]
        correct = sum(_pitch_correct(j) for j in voiced)
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "instrument": instrument,
            "wavs": wavs[key],
            "judged": len(js),
            "measurable": len(measurable),
            "unvoiced": len(measurable) - len(voiced),
            "correct": correct,
            "octave_errors": sum(bool(j.values.get("octave_error")) for j in voiced),
            "median_abs_cents": float(np.median(cents)) if cents else None,
            "tolerance_cents": PITCH_TOLERANCE_CENTS,
            "judge": judge_names(js),
        }
        rate_cols(rec, correct, len(measurable), "accuracy")
        rate_cols(rec, correct, wavs[key], "accuracy_of_wavs")
        records.append(rec)
    cols = [
        "run", "model", "method", "instrument", "wavs", "judged", "measurable", "unvoiced", "correct",
        "accuracy_rate", "accuracy_ci_lo", "accuracy_ci_hi", "accuracy_of_wavs_rate", "accuracy_of_wavs_ci_lo",
        "accuracy_of_wavs_ci_hi", "octave_errors", "median_abs_cents", "tolerance_cents", "judge",
    ]  # fmt: skip
    return frame(records, cols)


def _pitch_correct(j) -> bool:
    if j.correct is not None:
        return bool(j.correct)
    return abs(num(j.values.get("cents_error")) or 1e9) <= PITCH_TOLERANCE_CENTS
