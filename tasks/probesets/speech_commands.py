"""Speech Commands: a folder per word, `validation_list.txt` and `testing_list.txt`, or TFDS.

One item per word; its references are that word's clips in the chosen split (default: the test list),
the ones with the smallest seeded rank first, capped at `max_refs`. The prompt's phonetic description
comes from CMUdict (the copy pocketsphinx ships).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from audioprobe.schema import ProbeItem, SkippedItem
from tasks.probesets.common import ClipTable, DatasetError
from tasks.probesets.descriptions import phonetic_description
from tasks.probesets.sampling import rank

# TensorFlow Speech Commands v2's 35 words: the one list (speech items follow this order).
WORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip
SAMPLE_RATE = 16000
LICENSE = "CC-BY-4.0 (Speech Commands, Google)"
LISTS = {"test": "testing_list.txt", "validation": "validation_list.txt"}
MAX_REFS = 100


def _list(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.exists():
        raise DatasetError(f"missing {path}: Speech Commands keeps its splits in {', '.join(LISTS.values())}")
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip()}


def read_clips(root: Path, split: str) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise DatasetError(f"Speech Commands path {root} is not a folder")
    if split not in ("test", "validation", "train", "all"):
        raise DatasetError(f"unknown Speech Commands split {split!r}: test, validation, train or all")
    folders = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    if split == "all":
        keep = None
    elif split in LISTS:
        keep = _list(root, LISTS[split])
        for rel in sorted(keep):  # a listed clip that is gone is an error in the tree, not a skip
            if not (root / rel).exists():
                raise DatasetError(f"{root / LISTS[split]} lists {rel}, which does not exist")
    else:
        held_out = _list(root, LISTS["test"]) | _list(root, LISTS["validation"])
    clips = {}
    for word, folder in folders.items():
        files = sorted(folder.glob("*.wav"))
        rels = [f"{word}/{f.name}" for f in files]
        if split == "train":
            files = [f for f, r in zip(files, rels) if r not in held_out]
        elif keep is not None:
            files = [f for f, r in zip(files, rels) if r in keep]
        clips[word] = files
    return clips


def load(
    path: Path,
    limit: int | None = None,
    seed: int = 0,
    split: str = "test",
    words: list[str] | None = None,
    max_refs: int | None = MAX_REFS,
) -> tuple[list[ProbeItem], list[SkippedItem]]:
    if words is not None:
        unknown = [w for w in words if w not in WORDS]
        if unknown:
            raise DatasetError(f"unknown Speech Commands words {unknown}; the 35 are: {', '.join(WORDS)}")
    clips = read_clips(path, split)
    table = ClipTable(path, "speech_commands", LICENSE, (SAMPLE_RATE,))
    skipped: list[SkippedItem] = []
    for folder in sorted(set(clips) - set(WORDS)):
        skipped.append(
            SkippedItem(
                key=folder,
                tier="speech",
                reason=f"unknown label {folder!r} in {path}: not one of the 35 Speech Commands words",
            )
        )
    present = []
    for w in words or WORDS:
        if w not in clips:
            skipped.append(SkippedItem(key=w, tier="speech", reason=f"no folder {path / w}"))
        elif not clips[w]:
            skipped.append(
                SkippedItem(key=w, tier="speech", reason=f"empty class: no clips of {w!r} in split {split!r}")
            )
        else:
            present.append(w)
    if limit is not None:
        chosen = set(sorted(present, key=lambda w: rank(seed, w))[:limit])
        present = [w for w in present if w in chosen]
    items = []
    for w in present:
        ordered = sorted(clips[w], key=lambda p: rank(seed, p.name))[:max_refs]
        refs = table.checked(ordered, w, "speech", skipped)
        if not refs:
            skipped.append(SkippedItem(key=w, tier="speech", reason=f"no usable clip of {w!r} (see above)"))
            continue
        description = phonetic_description(w)
        if description is None:
            warnings.warn(
                f"no CMUdict entry for {w!r} (is pocketsphinx installed?): prompt gets no phonetics"
            )
        items.append(
            ProbeItem(
                id=f"speech/{table.dataset}/{w}",
                tier="speech",
                label=w,
                dataset=table.dataset,
                display_name=w,
                description=description,
                description_source="cmudict" if description else None,
                references=[c.path for c in refs],
                reference_clips=refs if table.offline else [],
            )
        )
    return items, skipped


def load_tfds(
    split: str = "test",
    data_dir: Path | None = None,
    out_dir: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    max_refs: int | None = MAX_REFS,
):
    """TFDS `speech_commands` written out in the native layout, then read as above.

    TFDS keeps only 10 of the 35 words (the rest are folded into `_unknown_`): the other words come
    back as skipped items that say so.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise DatasetError(
            "TFDS speech_commands needs tensorflow-datasets: pip install tensorflow-datasets"
        ) from exc
    import numpy as np
    import soundfile as sf

    from audioprobe.settings import get_settings

    out = out_dir or get_settings().cache_dir / "tfds" / f"speech_commands-{split}"
    ds, info = tfds.load(
        "speech_commands", split=split, data_dir=str(data_dir) if data_dir else None, with_info=True
    )
    names = info.features["label"].names
    counts: dict[str, int] = {}
    listed = []
    for i, ex in enumerate(tfds.as_numpy(ds)):
        word = names[int(ex["label"])]
        if word not in WORDS or (max_refs is not None and counts.get(word, 0) >= max_refs):
            continue
        counts[word] = counts.get(word, 0) + 1
        rel = f"{word}/tfds{i:06d}_nohash_0.wav"
        (out / word).mkdir(parents=True, exist_ok=True)
        if not (out / rel).exists():
            sf.write(out / rel, np.asarray(ex["audio"], dtype="int16"), SAMPLE_RATE)
        listed.append(rel)
    out.mkdir(parents=True, exist_ok=True)
    (out / LISTS["test"]).write_text("\n".join(sorted(listed)) + "\n")
    (out / LISTS["validation"]).write_text("")
    items, skipped = load(out, limit=limit, seed=seed, split="test", max_refs=max_refs)
    for s in skipped:
        if s.reason.startswith("no folder"):
            s.reason = f"TFDS speech_commands has no {s.key!r} (it keeps 10 words; the rest are '_unknown_')"
    return items, skipped
