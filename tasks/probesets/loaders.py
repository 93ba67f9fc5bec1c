"""`load_items(tier, dataset, limit, seed)`: one entry point for every tier and source.

`dataset` is a folder in the dataset's native layout, "tfds" / "tfds:<split>" for TensorFlow Datasets
(the tiers that name a TFDS dataset, when tensorflow-datasets is installed), or None for the offline
reference sets that `audioprobe refs build` writes under settings.refs_dir in the same layouts. A tier
without an offline folder (tones) makes its items itself and ignores `dataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprobe.schema import ProbeItem, SkippedItem
from tasks.probesets.common import DatasetError
from tasks.tiers import UnknownTier, get_tier


def offline_root(tier: str, refs_dir: Path | None = None) -> Path:
    if refs_dir is None:
        from audioprobe.settings import get_settings

        refs_dir = get_settings().refs_dir
    folder = get_tier(tier).offline_dir
    if folder is None:
        raise DatasetError(f"the {tier} tier has no reference set: it makes its own items")
    return Path(refs_dir) / folder


def load_items(
    tier: str,
    dataset: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    **options: Any,
) -> tuple[list[ProbeItem], list[SkippedItem]]:
    try:
        spec = get_tier(tier)
    except UnknownTier as exc:
        raise DatasetError(str(exc)) from exc
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    if spec.offline_dir is None:
        options.pop("refs_dir", None)
        return spec.load_items(None, limit, seed, **options)
    if isinstance(dataset, str) and (dataset == "tfds" or dataset.startswith("tfds:")):
        return spec.load_tfds(dataset.partition(":")[2] or "test", limit, seed, **options)
    if dataset is None:
        root = offline_root(tier, options.pop("refs_dir", None))
        if not root.exists():
            raise DatasetError(
                f"no offline {tier} reference set at {root}: run `audioprobe refs build --tier {tier}`"
            )
    else:
        root = Path(dataset).expanduser()
        if not root.exists():
            raise DatasetError(f"dataset path {root} does not exist")
    return spec.load_items(root, limit, seed, **options)
