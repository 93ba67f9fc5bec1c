"""The run's cross-model comparisons, computed once at the end of a run and stored in its directory, so the
report only reads (`audioprobe retry RUN --only judging` computes them for a run from before).

The matched-N table compares models on the same class at the same n_gen: each model's clips are subsampled
(seeded) to the smallest n_gen among them, then FAD and KAD are computed from the cached embeddings against
one reference set per class, the same for every model: every reference of every item of that class in the
run, never only the items a model happened to answer with valid audio (a model with no valid clip of an item
would otherwise lose that item's references). Where audio or embeddings are not at hand, the row says so
instead of a number. Per-note distances (FADResult.per_note) and reference points (reference_points.json)
are stored by the tier flows' judging already.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from audioprobe import stored
from audioprobe.schema import ItemOutcome, MatchedNTable
from tasks.records import Run, atomic_write, outcome_key
from tasks.tiers import get_tier

FILE = "matched_n.json"
MATCHED_SEED = 0
MATCHED_COLUMNS = [
    "run", "label", "model", "method", "n_gen", "matched_n", "n_ref", "fad", "fad_ci_lo", "fad_ci_hi",
    "fad_baseline", "fad_baseline_lo", "fad_baseline_hi", "kad", "kad_ci_lo", "kad_ci_hi", "kad_baseline",
    "kad_baseline_lo", "kad_baseline_hi", "baseline_n_gen", "baseline_n_ref", "baseline_method", "embedding",
    "window_s", "seed", "note",
]  # fmt: skip
FAD_COLUMNS = ["run", "model", "method", "label", "group", "n_gen", "embedding", "window_s"]


def store_comparisons(run: Run) -> Path:
    """Compute and store the run's matched-N table (sample 0's first answers: one item, one vote)."""
    outcomes = [o for o in run.outcomes() if o.sample == 0]
    return save(run, matched_n(run, outcomes, fad_frame(run)))


def save(run: Run, table: pd.DataFrame) -> Path:
    path = run.dir / FILE
    rows = json.loads(table.to_json(orient="records"))
    atomic_write(path, stored.dumps(MatchedNTable(rows=rows), indent=1))
    return path


def load(run: Run) -> pd.DataFrame | None:
    """The stored matched-N table, or None when the run has none (a run from before it was stored)."""
    path = run.dir / FILE
    if not path.exists():
        return None
    return pd.DataFrame(stored.load(MatchedNTable, path.read_text()).rows, columns=MATCHED_COLUMNS)


def fad_frame(run: Run) -> pd.DataFrame:
    """The run's class scores as the matched-N table needs them: who made them, on which class, with what."""
    models = run.manifest.models
    records = []
    for r in run.fad():
        model, method, label = r.model, r.method, r.label
        if not model and label.count("|") == 2:  # records of a judge run by hand: "model|method|class"
            model, method, label = label.split("|")
        if not model and len(models) == 1:
            model = models[0]
        records.append({"run": run.run_id, "model": model or "?", "method": method or "paper", "label": label,
                        "group": r.group, "n_gen": r.n_gen, "embedding": r.embedding, "window_s": r.window_s})
    return pd.DataFrame(records, columns=FAD_COLUMNS)


def _num(x) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _of_class(o: ItemOutcome, label: str) -> bool:
    return get_tier(o.item.tier).distances_per_class and label in (o.item.instrument_family, o.item.label)


def matched_n(run: Run, outcomes: list[ItemOutcome], fad: pd.DataFrame) -> pd.DataFrame:
    """FAD and KAD of each (model, method) on each instrument at the smallest n_gen among them."""
    if not len(fad):
        return pd.DataFrame([], columns=MATCHED_COLUMNS)
    families = {o.item.instrument_family for o in outcomes
                if get_tier(o.item.tier).distances_per_class and o.item.instrument_family}  # fmt: skip
    inst = fad[(fad["group"] == "instrument") | fad["label"].isin(families)]
    records = []
    for label, g in inst.groupby("label"):
        g = g[g["n_gen"] >= 2]
        if g[["run", "model", "method"]].drop_duplicates().shape[0] < 2:
            continue
        gens = {i: _valid_clips(run, outcomes, r, label) for i, r in g.iterrows()}
        n = min(len(c) for c in gens.values())  # the clips at hand
        if n < 2:
            n = int(g["n_gen"].min())  # the rows will say why nothing was computed
        records += _matched_rows(label, g, n, gens, class_references(outcomes, label))
    return pd.DataFrame(records, columns=MATCHED_COLUMNS)


def class_references(outcomes: list[ItemOutcome], label: str) -> list[str]:
    """Every reference file of the class's items in the run, whatever any model made of them."""
    refs = {p for o in outcomes if _of_class(o, label) for p in o.item.references}
    return sorted(p for p in refs if Path(p).is_file())


def audio_of(run: Run, o: ItemOutcome) -> Path | None:
    """The generated clip: the recorded path (absolute or run-relative), else files/<key>/output.wav."""
    candidates = []
    if o.audio_path:
        p = Path(o.audio_path)
        candidates += [p] if p.is_absolute() else [run.dir / p, p]
    candidates.append(run.files_dir(outcome_key(o.model, o.method, o.item.id, o.sample)) / "output.wav")
    return next((c for c in candidates if c.is_file()), None)


def _valid_clips(run: Run, outcomes: list[ItemOutcome], r, label: str) -> list[Path]:
    """The audio of this (model, method)'s valid clips of the class."""
    mine = [o for o in outcomes if (o.model, o.method) == (r["model"], r["method"]) and _of_class(o, label)
            and o.gate is not None and o.gate.ok]  # fmt: skip
    return [p for p in (audio_of(run, o) for o in mine) if p is not None]


def _matched_rows(label: str, g: pd.DataFrame, n: int, gens: dict, refs: list[str]) -> list[dict]:
    # the judges' heavy modules (torch for VGGish) load only where a run computes its comparisons
    from tasks.judges import distance
    from tasks.judges.embeddings import embed_files, get_embedding
    from tasks.judges.vggish import CheckpointError

    out = []
    for index, r in g.iterrows():
        rec = {c: None for c in MATCHED_COLUMNS} | {
            "run": r["run"], "label": label, "model": r["model"], "method": r["method"],
            "n_gen": int(r["n_gen"]), "matched_n": n, "n_ref": len(refs), "embedding": r["embedding"],
            "window_s": r["window_s"], "seed": MATCHED_SEED, "note": "",
        }  # fmt: skip
        gen = gens[index]
        if len(gen) < n or len(refs) < 2:
            rec["note"] = f"not computed: {len(gen)} generated and {len(refs)} reference files at hand"
            out.append(rec)
            continue
        try:
            backend = get_embedding(str(r["embedding"]).split("-v")[0].removesuffix("-tf"))
        except (CheckpointError, ValueError, OSError) as exc:  # a checkpoint that is not here: say so
            rec["note"] = f"not computed: embedding {r['embedding']} unavailable ({exc})"
            out.append(rec)
            continue
        window = _num(r["window_s"])
        g_emb = distance.matched(embed_files(backend, gen, window_s=window), n, seed=MATCHED_SEED)
        r_emb = embed_files(backend, refs, window_s=window)
        for metric in ("fad", "kad"):
            d = distance.distance(metric, g_emb, r_emb, embedding=backend.version, seed=MATCHED_SEED)
            rec[metric], rec[f"{metric}_baseline"] = d.value, d.baseline
            rec[f"{metric}_ci_lo"], rec[f"{metric}_ci_hi"] = d.ci if d.ci else (None, None)
            rec[f"{metric}_baseline_lo"], rec[f"{metric}_baseline_hi"] = d.baseline_low, d.baseline_high
            rec["baseline_n_gen"], rec["baseline_n_ref"], rec["baseline_method"] = (
                d.baseline_n_gen, d.baseline_n_ref, d.baseline_method)
        rec["note"] = (f"subsampled {n} of {len(gen)} clips (seed {MATCHED_SEED})" if n < len(gen)
                       else "all clips")  # fmt: skip
        out.append(rec)
    return out
