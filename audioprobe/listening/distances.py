"""Per-note distances: each generated clip against its class's reference clips, in one embedding.

`note_distances` is the one adapter between the listening study and the judges. When issue 12's
tasks.judges.distance.per_note_distances is present it is used (metrics `fad` and `kad`); until then a
stand-in computed from the existing embeddings gives `centroid-l2`, the distance between the clip's mean
frame embedding and the references' mean. Swapping the two changes no other code: calibration is fitted
per (embedding, metric), whatever the metrics are called.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def note_distances(
    gen_paths: Sequence[str], ref_paths: Sequence[str], embedding: str = "logmel-stats"
) -> list[tuple[str, dict[str, float]]]:
    """One (embedding version, {metric: distance}) per generated clip, in gen_paths order."""
    try:
        from tasks.judges.distance import per_note_distances
    except ImportError:
        per_note_distances = None
    if per_note_distances is not None:
        out = []
        for d in per_note_distances(list(gen_paths), list(ref_paths), embedding=embedding):
            metrics = {m: float(v) for m in ("fad", "kad") if (v := getattr(d, m, None)) is not None}
            out.append((d.embedding, metrics))
        if all(metrics for _, metrics in out):
            return out
        # too few reference frames for a covariance (a class with one short clip): the centroid distance

    from tasks.judges.embeddings import embed_files, get_embedding

    backend = get_embedding(embedding)
    refs = embed_files(backend, list(ref_paths))
    centre = np.concatenate(refs, axis=0).mean(axis=0)
    gens = embed_files(backend, list(gen_paths))
    return [(backend.version, {"centroid-l2": float(np.linalg.norm(g.mean(axis=0) - centre))}) for g in gens]
