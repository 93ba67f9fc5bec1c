"""FAD per class, as the paper scores notes: each class's generated clips against that class's references.

`fad_per_class({"guitar_acoustic": [gen wavs]}, {"guitar_acoustic": [ref wavs]})` -> one FADResult per
class (N on both sides, same-distribution baseline, bootstrap CI, band for VGGish) and the macro
average. Classes are whatever the caller groups by: instrument, or instrument x source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from audioprobe.schema import FADResult
from tasks.judges import frechet
from tasks.judges.embeddings import Embedding, embed_files, get_embedding


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
        g = embed_files(backend, list(gen.get(label, []))) if gen.get(label) else []
        r = embed_files(backend, list(refs.get(label, []))) if refs.get(label) else []
        res = frechet.score_sets(g, r, label=label, embedding=backend.version, seed=seed, n_boot=n_boot,
                                 groups=(groups or {}).get(label) if g else None)
        res.group = group
        results.append(res)
    return results, frechet.macro_average(results)
