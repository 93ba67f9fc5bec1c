"""Section 3's per-note scores and the matched-N model comparison (FAD and KAD side by side).

Per-note scores come from the FAD records (FADResult.per_note, written when the run judged its notes).
The matched-N table compares models on the same class at the same n_gen: each model's clips are
subsampled (seeded) to the smallest n_gen among them, then FAD and KAD are recomputed from the cached
embeddings against one reference set per class, the same for every model: every reference of every item
of that class in the runs compared, never only the items a model happened to answer with valid audio
(a model with no valid clip of an item would otherwise lose that item's references). Where audio or embeddings are not at hand, the row says so instead of a number.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audioprobe.report.sections.common import Row, frame, num
from audioprobe.schema import RunManifest
from tasks.judges import frechet
from tasks.records import Run

MATCHED_SEED = 0
NOTE_COLUMNS = [
    "run", "model", "method", "instrument", "item", "sample", "key", "note_fad", "note_kad", "band", "band_note",
    "embedding", "window_s",
]  # fmt: skip
MATCHED_COLUMNS = [
    "run", "label", "model", "method", "n_gen", "matched_n", "n_ref", "fad", "fad_ci_lo", "fad_ci_hi",
    "fad_baseline", "fad_baseline_lo", "fad_baseline_hi", "kad", "kad_ci_lo", "kad_ci_hi", "kad_baseline",
    "kad_baseline_lo", "kad_baseline_hi", "baseline_n_gen", "baseline_n_ref", "baseline_method", "embedding",
    "window_s", "seed", "note",
]  # fmt: skip


def _instrument_results(store: Run, families: set[str]):
    results = store.fad()
    if any(r.group == "instrument" for r in results):
        return [r for r in results if r.group == "instrument"]
    return [r for r in results if r.label in families]


def per_note(stores: list[Run], rows: list[Row], families: set[str]) -> pd.DataFrame:
    """One row per generated note that has a per-note score: its FAD and kernel score against its
    instrument's references, banded only where the paper's calibration holds."""
    by_path = {(r.run, r.outcome.audio_path): r for r in rows if r.outcome.audio_path}
    records = []
    for store in stores:
        for res in _instrument_results(store, families):
            reason = frechet.no_band_reason(res.embedding, "note", res.window_s) or ""
            for path, score in res.per_note.items():
                row = by_path.get((store.run_id, path))
                o = row.outcome if row else None
                if o is not None and o.sample != 0:  # one item, one vote: sample 0 only, as sections 1-7
                    continue
                records.append(
                    {
                        "run": store.run_id,
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


def matched_n(stores: list[Run], manifests: list[RunManifest], rows: list[Row], fad: pd.DataFrame,
              families: set[str]) -> pd.DataFrame:
    """FAD and KAD of each (run, model, method) on each instrument at the smallest n_gen among them."""
    if not len(fad):
        return frame([], MATCHED_COLUMNS)
    inst = fad[(fad["group"] == "instrument") | fad["label"].isin(families)]
    records = []
    for label, g in inst.groupby("label"):
        g = g[g["n_gen"] >= 2]
        if g[["run", "model", "method"]].drop_duplicates().shape[0] < 2:
            continue
        gens = {i: _valid_clips(rows, r, label) for i, r in g.iterrows()}
        n = min(len(c) for c in gens.values())  # the clips at hand (sample 0: one item, one vote)
        if n < 2:
            n = int(g["n_gen"].min())  # the rows will say why nothing was recomputed
        records += _matched_rows(label, g, n, gens, class_references(rows, label))
    return frame(records, MATCHED_COLUMNS)


def class_references(rows: list[Row], label: str) -> list[str]:
    """Every reference file of the class's items in the runs, whatever any model made of them."""
    return sorted({
        p for x in rows if x.outcome.item.tier == "notes" and label in (x.outcome.item.instrument_family, x.outcome.item.label)
        for p in x.outcome.item.references if Path(p).is_file()
    })  # fmt: skip


def _valid_clips(rows: list[Row], r, label: str) -> list[Path]:
    """The audio of this (run, model, method)'s valid clips of the class."""
    from audioprobe.report.tables import resolve_audio

    mine = [
        x for x in rows
        if (x.run, x.outcome.model, x.outcome.method) == (r["run"], r["model"], r["method"])
        and x.outcome.item.tier == "notes" and x.outcome.gate is not None and x.outcome.gate.ok
        and label in (x.outcome.item.instrument_family, x.outcome.item.label)
    ]  # fmt: skip
    return [p for p in (resolve_audio(x) for x in mine) if p is not None]


def _matched_rows(label: str, g: pd.DataFrame, n: int, gens: dict, refs: list[str]) -> list[dict]:
    from tasks.judges import distance
    from tasks.judges.embeddings import embed_files, get_embedding
    from tasks.judges.vggish import CheckpointError

    out = []
    for index, r in g.iterrows():
        rec = {c: None for c in MATCHED_COLUMNS} | {
            "run": r["run"], "label": label, "model": r["model"], "method": r["method"], "n_gen": int(r["n_gen"]),
            "matched_n": n, "n_ref": len(refs), "embedding": r["embedding"], "window_s": r["window_s"],
            "seed": MATCHED_SEED, "note": "",
        }  # fmt: skip
        gen = gens[index]
        if len(gen) < n or len(refs) < 2:
            rec["note"] = f"not recomputed: {len(gen)} generated and {len(refs)} reference files at hand"
            out.append(rec)
            continue
        try:
            backend = get_embedding(str(r["embedding"]).split("-v")[0].removesuffix("-tf"))
        except (CheckpointError, ValueError, OSError) as exc:  # a checkpoint that is not here: say so
            rec["note"] = f"not recomputed: embedding {r['embedding']} unavailable ({exc})"
            out.append(rec)
            continue
        window = num(r["window_s"])
        g_emb = distance.matched(embed_files(backend, gen, window_s=window), n, seed=MATCHED_SEED)
        r_emb = embed_files(backend, refs, window_s=window)
        for metric in ("fad", "kad"):
            d = distance.distance(metric, g_emb, r_emb, embedding=backend.version, seed=MATCHED_SEED)
            rec[metric], rec[f"{metric}_baseline"] = d.value, d.baseline
            rec[f"{metric}_ci_lo"], rec[f"{metric}_ci_hi"] = d.ci if d.ci else (None, None)
            rec[f"{metric}_baseline_lo"], rec[f"{metric}_baseline_hi"] = d.baseline_low, d.baseline_high
            rec["baseline_n_gen"], rec["baseline_n_ref"], rec["baseline_method"] = (
                d.baseline_n_gen, d.baseline_n_ref, d.baseline_method)
        rec["note"] = f"subsampled {n} of {len(gen)} clips (seed {MATCHED_SEED})" if n < len(gen) else "all clips"
        out.append(rec)
    return out
