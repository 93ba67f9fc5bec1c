"""FAD and KAD per class, as the paper scores notes: each class's generated clips against that class's references.

`fad_per_class({"guitar_acoustic": [gen wavs]}, {"guitar_acoustic": [ref wavs]})` -> one FADResult per
class and the macro average. Each FADResult carries FAD and KAD with 95% CIs (clips of both sets
resampled), same-distribution baselines at the class's own (n_gen, n_ref) with their spread (drawn, or
extrapolated by the 1/N form where the pool is too small: distance.same_n_baseline), fadtk's FAD-inf,
the fixed window every clip was cut to (the references' median length: one clip, one weight), and each
generated note's own FAD and kernel score, banded only where the paper's calibration holds (per-note
VGGish FAD at 4 s). Classes are whatever the caller groups by: instrument, or instrument x source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from audioprobe.schema import FADResult
from tasks.judges import distance, frechet
from tasks.judges.embeddings import Embedding, embed_files, get_embedding, reference_window


def score_class(
    gen_paths: Sequence[str], gen: list, ref: list, *, label: str, embedding: str, window_s: float | None,
    seed: int = 0, n_boot: int = 200, groups: Sequence[str] | None = None,
) -> FADResult:
    """FADResult for one class from its clips' embeddings (gen in gen_paths order)."""
    res = FADResult(label=label, fad=None, n_gen=len(gen), n_ref=len(ref), embedding=embedding,
                    window_s=window_s, band_note=frechet.no_band_reason(embedding, "set", window_s) or "")
    if not gen or not ref:
        res.note = "no generated clips" if not gen else "no reference clips"
        return res
    fad = distance.distance("fad", gen, ref, embedding=embedding, seed=seed, n_boot=n_boot, groups=groups)
    frames_gen, frames_ref = sum(len(c) for c in gen), sum(len(c) for c in ref)
    res.note = f"frames: {frames_gen} generated, {frames_ref} reference; window {window_s} s"
    if fad.value is None:
        res.note += f"; {fad.note}"
        return res
    if min(frames_gen, frames_ref) <= gen[0].shape[1]:
        res.note += "; fewer frames than dimensions: covariance is singular, expect a large small-sample bias"
    res.fad, res.ci, res.baseline = fad.value, fad.ci, fad.baseline
    res.baseline_n_gen, res.baseline_n_ref = fad.baseline_n_gen, fad.baseline_n_ref
    res.baseline_range, res.baseline_method = _range(fad), fad.baseline_method
    if len(gen) >= 2 and len(ref) >= 2:
        kad = distance.distance("kad", gen, ref, embedding=embedding, seed=seed, n_boot=n_boot, groups=groups)
        res.kad, res.kad_ci, res.kad_baseline = kad.value, kad.ci, kad.baseline
        res.kad_baseline_range = _range(kad)
        try:
            res.fad_inf = distance.fad_inf(gen, ref, seed=seed)["value"]
        except (distance.DistanceError, frechet.FrechetError):
            res.fad_inf = None
    if fad.note:
        res.note += f"; {fad.note}"
    for path, note in zip(gen_paths, distance.note_scores(gen, ref, embedding=embedding)):
        res.per_note[str(path)] = {
            "fad": note.fad,
            "kad": note.kad,
            "band": frechet.band(note.fad, embedding, scale="note", window_s=window_s),
        }
    return res


def _range(d: distance.Distance) -> tuple[float, float] | None:
    return None if d.baseline_low is None else (d.baseline_low, d.baseline_high)


def fad_per_class(
    gen: Mapping[str, Sequence[str | Path]],
    refs: Mapping[str, Sequence[str | Path]],
    *,
    embedding: str | Embedding = "auto",
    group: str = "",
    seed: int = 0,
    n_boot: int = 200,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[FADResult], dict]:
    """`groups[label]` names the item of each generated clip: the bootstrap resamples items whole."""
    backend = get_embedding(embedding) if isinstance(embedding, str) else embedding
    results = []
    for label in sorted(set(gen) | set(refs)):
        ref_paths = list(refs.get(label, []))
        gen_paths = list(gen.get(label, []))
        window = reference_window(ref_paths) if ref_paths else None
        g = embed_files(backend, gen_paths, window_s=window) if gen_paths else []
        r = embed_files(backend, ref_paths, window_s=window) if ref_paths else []
        res = score_class(gen_paths, g, r, label=label, embedding=backend.version, window_s=window,
                          seed=seed, n_boot=n_boot, groups=(groups or {}).get(label) if g else None)
        res.group = group
        results.append(res)
    return results, macro_average(results)


def score_sets(
    gen_clips: Sequence[np.ndarray],
    ref_clips: Sequence[np.ndarray],
    *,
    label: str,
    embedding: str,
    seed: int = 0,
    n_boot: int = 200,
    groups: Sequence[str] | None = None,
) -> FADResult:
    """FAD of generated against reference clips (each an (examples, dim) array of frame embeddings), by the
    one path every set distance takes (fad.score_class -> distance.distance): the same baseline at the
    comparison's own N and the same interval as the report."""
    return score_class([], list(gen_clips), list(ref_clips), label=label, embedding=embedding, window_s=None,
                       seed=seed, n_boot=n_boot, groups=groups)


def macro_average(results: Sequence[FADResult]) -> dict:
    """Unweighted mean over classes that have a score, with the classes left out named."""
    scored = [r for r in results if r.fad is not None]
    mean = lambda xs: float(np.mean(xs)) if xs else None
    return {
        "fad": mean([r.fad for r in scored]),
        "baseline": mean([r.baseline for r in scored if r.baseline is not None]),
        "classes": len(scored),
        "unscored": [r.label for r in results if r.fad is None],
    }
