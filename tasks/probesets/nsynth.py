"""NSynth notes: the native layout (`examples.json` + `audio/<note_str>.wav`) or TFDS `nsynth`.

A path may be one split directory (nsynth-test/) or a folder holding several (nsynth-train/,
nsynth-valid/, nsynth-test/); `split` picks one, otherwise all found are read. One item per sampled
note; its references are its (family, source) class's first `cap` notes in the sampler's order (which
include the class's sampled notes): the ground-truth set a class's FAD is scored against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from audioprobe.schema import ProbeItem, ReferenceClip, SkippedItem
from tasks.probesets.common import ClipTable, DatasetError
from tasks.probesets.descriptions import NSYNTH_QUALITIES, quality_descriptions
from tasks.probesets.sampling import PAPER_CAP, PAPER_FAMILIES, PAPER_TOTAL, balanced_sample, rank

FAMILIES = tuple(sorted((*PAPER_FAMILIES, "synth_lead")))  # NSynth's 11, in its index order
SOURCES = ("acoustic", "electronic", "synthetic")
QUALITIES = tuple(NSYNTH_QUALITIES)  # NSynth's bit order
SAMPLE_RATE = 16000
LICENSE = "CC-BY-4.0 (NSynth, Google Magenta)"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"  # MIDI 60 = C4


@dataclass
class Note:
    note_str: str
    family: str
    source: str
    pitch: int
    velocity: int
    qualities: list[str]
    audio: Path
    table: ClipTable = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.family}_{self.source}"


def _split_dirs(path: Path, split: str | None) -> list[Path]:
    if not path.exists():
        raise DatasetError(f"NSynth path {path} does not exist")
    if (path / "examples.json").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/examples.json"))
    if split:
        found = [p for p in found if p.name in (split, f"nsynth-{split}")]
    if not found:
        want = f" for split {split!r}" if split else ""
        raise DatasetError(f"no NSynth examples.json under {path}{want} (expected <split>/examples.json)")
    return found


def _parse(key: str, entry: dict, root: Path, table: ClipTable) -> Note:
    where = f"{root / 'examples.json'} entry {key!r}"
    try:
        family, source = entry["instrument_family_str"], entry["instrument_source_str"]
        pitch, velocity = int(entry["pitch"]), int(entry["velocity"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: missing or bad field {exc}") from exc
    if family not in FAMILIES:
        raise DatasetError(f"{where}: unknown instrument family {family!r}")
    if source not in SOURCES:
        raise DatasetError(f"{where}: unknown instrument source {source!r}")
    if not (0 <= pitch <= 127 and 0 <= velocity <= 127):
        raise DatasetError(f"{where}: pitch {pitch} / velocity {velocity} outside MIDI 0-127")
    if "qualities_str" in entry:
        qualities = list(entry["qualities_str"])
    else:
        bits = entry.get("qualities", [0] * len(QUALITIES))
        qualities = [q for q, b in zip(QUALITIES, bits) if b]
    bad = [q for q in qualities if q not in NSYNTH_QUALITIES and q != "tempo_synced"]
    if bad:
        raise DatasetError(f"{where}: unknown qualities {bad}")
    note_str = entry.get("note_str", key)
    return Note(
        note_str, family, source, pitch, velocity, qualities, root / "audio" / f"{note_str}.wav", table
    )


def read_notes(path: Path, split: str | None = None) -> list[Note]:
    notes = []
    for root in _split_dirs(path, split):
        try:
            examples = json.loads((root / "examples.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"corrupt {root / 'examples.json'}: {exc}") from exc
        if not isinstance(examples, dict):
            raise DatasetError(f"{root / 'examples.json'}: expected an object keyed by note_str")
        table = ClipTable(root, "nsynth", LICENSE, (SAMPLE_RATE,))
        notes.extend(_parse(k, v, root, table) for k, v in sorted(examples.items()))
    return notes


def items_from_notes(
    notes: list[Note],
    limit: int | None = None,
    seed: int = 0,
    cap: int | None = PAPER_CAP,
    families: tuple[str, ...] | None = PAPER_FAMILIES,
) -> tuple[list[ProbeItem], list[SkippedItem]]:
    skipped: list[SkippedItem] = []
    if families is not None:
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise DatasetError(f"unknown instrument families {unknown}; NSynth has {', '.join(FAMILIES)}")
        notes = [n for n in notes if n.family in families]
    if not notes:
        raise DatasetError("no NSynth notes in the requested families")
    total = PAPER_TOTAL if limit is None else limit
    sample, _ = balanced_sample(
        notes, lambda n: n.label, lambda n: n.note_str, total=total, cap=cap, seed=seed
    )
    # A class's references are its first `cap` notes in the sampler's order: the paper's 110 per class,
    # a superset of the sampled notes of that class, and the same whatever --limit says.
    classes: dict[str, list[Note]] = {}
    for n in notes:
        classes.setdefault(n.label, []).append(n)
    wanted = {n.label for n in sample}
    good: dict[str, ReferenceClip] = {}
    refs_of: dict[str, list[ReferenceClip]] = {}
    for label in sorted(wanted):
        ranked = sorted(classes[label], key=lambda n: rank(seed, n.note_str))[:cap]
        refs_of[label] = []
        for n in ranked:
            clips = n.table.checked([n.audio], label, "notes", skipped)
            if clips:
                good[n.note_str] = clips[0]
                refs_of[label].append(clips[0])
    items = []
    for n in sample:
        if n.note_str not in good:  # listed in `skipped` with the file's problem
            continue
        refs = refs_of[n.label]
        items.append(
            ProbeItem(
                id=f"notes/{n.table.dataset}/{n.note_str}",
                tier="notes",
                label=n.label,
                dataset=n.table.dataset,
                note_id=n.note_str,
                pitch=n.pitch,
                note_name=note_name(n.pitch),
                velocity=n.velocity,
                amplitude=round(n.velocity / 127, 4),
                instrument_family=n.family,
                instrument_source=n.source,
                qualities=n.qualities,
                quality_descriptions=quality_descriptions(n.qualities),
                references=[c.path for c in refs],
                reference_clips=refs if n.table.offline else [],
            )
        )
    return items, skipped


# The paper's 1,500 notes: 16 (family, source) classes of its 10 families, 12 capped at 110 and four with
# 92, 30, 28 and 30 notes. Of NSynth's splits only the test split (4,096 notes) is small enough for
# classes of 28-30 notes (valid has 12,678, train 289,205), so it is the one pinned here; when the whole
# split is present the structure is checked, and a mismatch says so rather than reproducing silently.
PAPER_SPLIT = "test"
SPLIT_SIZES = {"train": 289205, "valid": 12678, "test": 4096}
PAPER_STRUCTURE = tuple(sorted([PAPER_CAP] * 12 + [92, 30, 28, 30]))


def paper_structure(notes: list[Note]) -> tuple[int, ...]:
    """Per-class note counts, capped at the paper's 110, over the paper's families (sorted)."""
    counts: dict[str, int] = {}
    for n in notes:
        if n.family in PAPER_FAMILIES:
            counts[n.label] = counts.get(n.label, 0) + 1
    return tuple(sorted(min(c, PAPER_CAP) for c in counts.values()))


def check_paper_structure(notes: list[Note], split: str) -> None:
    """On a complete split, the 16-class structure the paper reports must hold (test split only)."""
    if split != PAPER_SPLIT or len(notes) != SPLIT_SIZES[split]:
        return
    found = paper_structure(notes)
    if found != PAPER_STRUCTURE:
        raise DatasetError(
            f"NSynth {split}: the paper's 16 classes (12 x 110 + 92 + 30 + 28 + 30) do not hold; class counts "
            f"capped at 110 are {list(found)}. Choose another split with --split."
        )


def load(path: Path, limit: int | None = None, seed: int = 0, split: str | None = PAPER_SPLIT, **kw):
    """Items from NSynth at `path`; a folder holding several splits is read at `split` (default the
    paper's, "test"; None or "all" reads every split found)."""
    split = None if split in (None, "all") else split
    notes = read_notes(path, split)
    if split is None and (path / "examples.json").exists():
        split = path.name.removeprefix("nsynth-")
    if split in SPLIT_SIZES:
        check_paper_structure(notes, split)
    return items_from_notes(notes, limit=limit, seed=seed, **kw)


# --------------------------------------------------------------------------- TFDS (optional)


def load_tfds(
    split: str = "test",
    data_dir: Path | None = None,
    out_dir: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    cap: int | None = PAPER_CAP,
    families: tuple[str, ...] | None = PAPER_FAMILIES,
):
    """Read TFDS `nsynth` (downloads when online), write the sampled notes as WAVs, load them as above.

    Only used when tensorflow_datasets is importable. The written tree is in the native layout, so the
    items are exactly what the native loader gives for the same notes.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise DatasetError("TFDS nsynth needs tensorflow-datasets: pip install tensorflow-datasets") from exc
    import numpy as np
    import soundfile as sf

    from audioprobe.settings import get_settings

    out = out_dir or get_settings().cache_dir / "tfds" / f"nsynth-{split}"
    builder = tfds.builder("nsynth", data_dir=str(data_dir) if data_dir else None)
    builder.download_and_prepare()
    info = builder.info.features
    fam_names, src_names = info["instrument"]["family"].names, info["instrument"]["source"].names
    meta = {}
    ds = builder.as_dataset(split=split, decoders={"audio": tfds.decode.SkipDecoding()})
    for ex in tfds.as_numpy(ds):
        key = ex["id"].decode()
        meta[key] = {
            "note_str": key,
            "pitch": int(ex["pitch"]),
            "velocity": int(ex["velocity"]),
            "instrument_family_str": fam_names[int(ex["instrument"]["family"])],
            "instrument_source_str": src_names[int(ex["instrument"]["source"])],
            "qualities_str": [q for q in QUALITIES if bool(ex["qualities"][q])],
        }
    table = ClipTable(out, "nsynth", LICENSE, (SAMPLE_RATE,))
    notes = [_parse(k, v, out, table) for k, v in sorted(meta.items())]
    notes = [n for n in notes if families is None or n.family in families]
    total = PAPER_TOTAL if limit is None else limit
    sample, _ = balanced_sample(
        notes, lambda n: n.label, lambda n: n.note_str, total=total, cap=cap, seed=seed
    )
    wanted = {n.note_str for n in sample if not n.audio.exists()}
    (out / "audio").mkdir(parents=True, exist_ok=True)
    if wanted:
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            key = ex["id"].decode()
            if key in wanted:
                audio = np.asarray(ex["audio"], dtype="float32")
                sf.write(out / "audio" / f"{key}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    (out / "examples.json").write_text(json.dumps({n.note_str: meta[n.note_str] for n in sample}, indent=1))
    return load(out, limit=limit, seed=seed, cap=cap, families=families)
