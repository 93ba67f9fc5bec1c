"""FSD50K in its native layout: one item per class, its clips as references, multi-label aware.

    FSD50K.ground_truth/vocabulary.csv   index,label,mid (no header)
    FSD50K.ground_truth/dev.csv          fname,labels,mids,split   (labels comma-joined in one field)
    FSD50K.ground_truth/eval.csv         fname,labels,mids
    FSD50K.dev_audio/<fname>.wav, FSD50K.eval_audio/<fname>.wav

A clip counts for every label it carries. The references of a class put the clips with the fewest
other labels first (those are mostly that sound alone), then a seeded order, capped at `max_refs`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from audioprobe.schema import ProbeItem, SkippedItem
from tasks.probesets.common import ClipTable, DatasetError
from tasks.probesets.descriptions import display_name, ontology_description, vocabulary
from tasks.probesets.sampling import rank

GT = "FSD50K.ground_truth"
SPLITS = ("dev", "eval")
SAMPLE_RATES = (44100,)  # FSD50K ships 44.1 kHz PCM; the offline set says 16 kHz in its manifest
LICENSE = "FSD50K (Freesound; CC0 / CC-BY / CC-BY-NC per clip, see FSD50K.metadata)"
MAX_REFS = 100


def _read_csv(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def read_vocabulary(root: Path) -> list[str]:
    path = root / GT / "vocabulary.csv"
    if not path.exists():
        raise DatasetError(
            f"missing {path}: is {root} an FSD50K folder (FSD50K.ground_truth/, FSD50K.*_audio/)?"
        )
    known = vocabulary()
    labels = []
    for i, row in enumerate(_read_csv(path), 1):
        if len(row) < 2:
            raise DatasetError(f"{path} line {i}: expected index,label,mid")
        if row[1] not in known:
            raise DatasetError(f"{path} line {i}: unknown label {row[1]!r}, not one of FSD50K's 200 labels")
        labels.append(row[1])
    return labels


def read_clips(root: Path, split: str, vocab: set[str]) -> dict[str, list[tuple[Path, int]]]:
    """label -> [(audio path, number of labels on that clip)]"""
    if split not in (*SPLITS, "all"):
        raise DatasetError(f"unknown FSD50K split {split!r}: dev, eval or all")
    by_label: dict[str, list[tuple[Path, int]]] = {}
    for part in SPLITS if split == "all" else (split,):
        path = root / GT / f"{part}.csv"
        if not path.exists():
            if split == "all":
                continue
            raise DatasetError(f"missing {path}")
        rows = _read_csv(path)
        if not rows or rows[0][:2] != ["fname", "labels"]:
            raise DatasetError(f"{path}: expected a header starting fname,labels")
        for i, row in enumerate(rows[1:], 2):
            if len(row) < 2:
                raise DatasetError(f"{path} line {i}: expected fname,labels,...")
            labels = [lb for lb in row[1].split(",") if lb]
            for lb in labels:
                if lb not in vocab:
                    raise DatasetError(
                        f"{path} line {i} ({row[0]}): unknown label {lb!r}, not in vocabulary.csv"
                    )
            audio = root / f"FSD50K.{part}_audio" / f"{row[0]}.wav"
            for lb in labels:
                by_label.setdefault(lb, []).append((audio, len(labels)))
    if not by_label:
        raise DatasetError(f"no clips listed under {root / GT} for split {split!r}")
    return by_label


def load(
    path: Path,
    limit: int | None = None,
    seed: int = 0,
    split: str = "all",
    labels: list[str] | None = None,
    max_refs: int | None = MAX_REFS,
) -> tuple[list[ProbeItem], list[SkippedItem]]:
    vocab = read_vocabulary(path)
    if labels is not None:
        unknown = [lb for lb in labels if lb not in vocab]
        if unknown:
            raise DatasetError(f"unknown FSD50K labels {unknown} (not in {path / GT / 'vocabulary.csv'})")
    clips = read_clips(path, split, set(vocab))
    table = ClipTable(path, "fsd50k", LICENSE, SAMPLE_RATES)
    skipped: list[SkippedItem] = []
    wanted = [lb for lb in vocab if labels is None or lb in labels]
    present = []
    for lb in wanted:
        if lb in clips:
            present.append(lb)
        else:
            where = "the offline reference set" if table.offline else f"split {split!r} of {path}"
            skipped.append(
                SkippedItem(key=lb, tier="environmental", reason=f"empty class: no clips of {lb} in {where}")
            )
    if limit is not None:
        present = sorted(sorted(present, key=lambda lb: rank(seed, lb))[:limit])
    items = []
    for lb in present:
        ordered = sorted(clips[lb], key=lambda c: (c[1], rank(seed, c[0].name)))
        refs = table.checked([p for p, _ in ordered[:max_refs]], lb, "environmental", skipped)
        if not refs:
            skipped.append(
                SkippedItem(key=lb, tier="environmental", reason=f"no usable clip of {lb} (see above)")
            )
            continue
        items.append(
            ProbeItem(
                id=f"environmental/{table.dataset}/{lb}",
                tier="environmental",
                label=lb,
                dataset=table.dataset,
                display_name=display_name(lb),
                description=ontology_description(lb),
                description_source="audioset-ontology",
                references=[c.path for c in refs],
                reference_clips=refs if table.offline else [],
            )
        )
    return items, skipped
