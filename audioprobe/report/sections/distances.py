"""Section 3's per-note scores and the matched-N model comparison (FAD and KAD side by side), both as the
run stored them: per-note scores in the FAD records (FADResult.per_note, written when the run judged its
notes), the matched-N table by tasks/comparisons.py at the end of the run. Nothing is embedded here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audioprobe.report.sections.common import Row, distances_per_class, frame, num
from tasks import comparisons
from tasks.judges import frechet
from tasks.records import Run

NOTE_COLUMNS = [
    "run", "model", "method", "instrument", "item", "sample", "key", "note_fad", "note_kad", "band", "band_note",
    "embedding", "window_s",
]  # fmt: skip


def _instrument_results(run: Run, families: set[str]):
    results = run.fad()
    if any(r.group == "instrument" for r in results):
        return [r for r in results if r.group == "instrument"]
    return [r for r in results if r.label in families]


def per_note(runs: list[Run], rows: list[Row], families: set[str]) -> pd.DataFrame:
    """One row per generated note that has a per-note score: its FAD and kernel score against its
    instrument's references, banded only where the paper's calibration holds."""
    by_path = {(r.run_id, r.outcome.audio_path): r for r in rows if r.outcome.audio_path}
    records = []
    for run in runs:
        for res in _instrument_results(run, families):
            reason = frechet.no_band_reason(res.embedding, "note", res.window_s) or ""
            for path, score in res.per_note.items():
                row = by_path.get((run.run_id, path))
                o = row.outcome if row else None
                if o is not None and o.sample != 0:  # one item, one vote: sample 0 only, as sections 1-7
                    continue
                records.append(
                    {
                        "run": run.run_id,
                        "model": o.model if o else res.model or "?",
                        "method": o.method if o else res.method or "paper",
                        "instrument": res.label,
                        "item": o.item.id if o else Path(path).parent.name,
                        "sample": o.sample if o else None,
                        "key": row.key if row else path,
                        "note_fad": num(score.get("fad")),
                        "note_kad": num(score.get("kad")),
                        "band": score.get("band"),
                        "band_note": "" if score.get("band") else reason,
                        "embedding": res.embedding,
                        "window_s": res.window_s,
                    }
                )
    return frame(records, NOTE_COLUMNS)


def stored_matched_n(runs: list[Run]) -> tuple[pd.DataFrame, list[str]]:
    """Each run's matched-N table as the run stored it (tasks/comparisons.py), and the runs that have none
    though they judged notes (runs from before the table was stored)."""
    tables, missing = [], []
    for run in runs:
        table = comparisons.load(run)
        if table is not None:
            tables.append(table)
        elif any(distances_per_class(t) for t in run.manifest.tiers) and run.fad():
            missing.append(run.run_id)
    tables = [t for t in tables if len(t)]
    table = pd.concat(tables, ignore_index=True) if tables else frame([], comparisons.MATCHED_COLUMNS)
    return table, missing
