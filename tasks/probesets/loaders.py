"""`load_items(tier, dataset, limit, seed)`: one entry point for every tier and source.

`dataset` is a folder in the dataset's native layout, "tfds" / "tfds:<split>" for TensorFlow Datasets
(notes and speech, when tensorflow-datasets is installed), or None for the offline reference sets that
`audioprobe refs build` writes under settings.refs_dir in the same layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprobe.schema import TIERS, ProbeItem, SkippedItem
from tasks.probesets.common import DatasetError

OFFLINE_DIRS = {"notes": "nsynth", "environmental": "fsd50k", "speech": "speech_commands"}


def offline_root(tier: str, refs_dir: Path | None = None) -> Path:
    if refs_dir is None:
        from audioprobe.settings import get_settings

        refs_dir = get_settings().refs_dir
    return Path(refs_dir) / OFFLINE_DIRS[tier]


def load_items(
    tier: str,
    dataset: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    **options: Any,
) -> tuple[list[ProbeItem], list[SkippedItem]]:
    if tier not in TIERS:
        raise DatasetError(f"unknown tier {tier!r}: {', '.join(TIERS)}")
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    if isinstance(dataset, str) and (dataset == "tfds" or dataset.startswith("tfds:")):
        split = dataset.partition(":")[2] or "test"
        if tier == "notes":
            from tasks.probesets.nsynth import load_tfds
        elif tier == "speech":
            from tasks.probesets.speech_commands import load_tfds
        else:
            raise DatasetError("FSD50K is not in TensorFlow Datasets: pass its folder with --dataset")
        return load_tfds(split=split, limit=limit, seed=seed, **options)
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
    if tier == "notes":
        from tasks.probesets import nsynth as mod
    elif tier == "environmental":
        from tasks.probesets import fsd50k as mod
    else:
        from tasks.probesets import speech_commands as mod
    return mod.load(root, limit=limit, seed=seed, **options)
