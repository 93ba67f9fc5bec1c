"""Probe-set loaders on fixture trees written here in each dataset's native layout, with real WAVs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tasks.probesets import fsd50k, nsynth, speech_commands
from tasks.probesets.common import MANIFEST, DatasetError
from tasks.probesets.descriptions import NSYNTH_QUALITIES, vocabulary
from tasks.probesets.loaders import load_items
from tasks.probesets.sampling import allocate, balanced_sample


def tone(path: Path, sr: int = 16000, seconds: float = 0.25, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- sampler


def test_allocate_reproduces_the_papers_shape():
    # 16 classes: 12 big, electronic guitar with 92, three small ones summing to 88 -> 1,500 exactly.
    counts = {f"big{i}": 300 + i for i in range(12)} | {"guitar_electronic": 92, "a": 30, "b": 28, "c": 30}
    taken = allocate(counts, total=1500, cap=110)
    assert sum(taken.values()) == 1500
    assert all(taken[f"big{i}"] == 110 for i in range(12))
    assert taken["guitar_electronic"] == 92 and (taken["a"], taken["b"], taken["c"]) == (30, 28, 30)


def test_allocate_levels_and_leftovers():
    taken = allocate({"x": 100, "y": 100, "z": 3}, total=50, cap=110, seed=1)
    assert taken["z"] == 3 and sum(taken.values()) == 50 and abs(taken["x"] - taken["y"]) <= 1
    assert allocate({"x": 5, "y": 2}, total=100, cap=4) == {"x": 4, "y": 2}  # fewer than asked: all up to cap


def test_balanced_sample_is_balanced_capped_deterministic_and_stable():
    records = [(c, i) for c, n in (("a", 40), ("b", 40), ("c", 6), ("d", 40)) for i in range(n)]

    def key(r):
        return f"{r[0]}-{r[1]:03d}"

    s1, report = balanced_sample(records, lambda r: r[0], key, total=60, cap=20, seed=7)
    counts = Counter(r[0] for r in s1)
    assert (
        len(s1) == 60
        and counts["c"] == 6
        and max(counts.values()) - min(counts["a"], counts["b"], counts["d"]) <= 1
    )
    assert report["c"] == (6, 6)
    s2, _ = balanced_sample(list(reversed(records)), lambda r: r[0], key, total=60, cap=20, seed=7)
    assert s1 == s2  # same seed and data -> same items in the same order, whatever the input order
    s3, _ = balanced_sample(records, lambda r: r[0], key, total=60, cap=20, seed=8)
    assert set(s3) != set(s1)
    bigger, _ = balanced_sample(records, lambda r: r[0], key, total=70, cap=20, seed=7)
    assert set(s1) <= set(bigger)  # a bigger sample only adds notes
    capped, _ = balanced_sample(records, lambda r: r[0], key, total=1000, cap=20, seed=7)
    assert Counter(r[0] for r in capped) == {"a": 20, "b": 20, "c": 6, "d": 20}
    prefix = Counter(r[0] for r in s1[:8])  # interleaved: any prefix is balanced
    assert set(prefix.values()) == {2}
    with pytest.raises(ValueError, match="duplicate key"):
        balanced_sample(records + records[:1], lambda r: r[0], key)


# --------------------------------------------------------------------------- NSynth


def nsynth_tree(root: Path, classes: dict[tuple[str, str], int], seconds: float = 0.05) -> Path:
    examples = {}
    for (fam, src), n in classes.items():
        for i in range(n):
            pitch, vel = 40 + i % 60, (25, 50, 75, 100, 127)[i % 5]
            note_str = f"{fam}_{src}_{i:03d}-{pitch:03d}-{vel:03d}"
            quals = ["bright", "percussive"] if i % 2 else []
            examples[note_str] = {
                "note": len(examples),
                "note_str": note_str,
                "instrument": i,
                "instrument_str": f"{fam}_{src}_{i:03d}",
                "pitch": pitch,
                "velocity": vel,
                "sample_rate": 16000,
                "qualities": [int(q in quals) for q in NSYNTH_QUALITIES],
                "qualities_str": quals,
                "instrument_family": nsynth.FAMILIES.index(fam),
                "instrument_family_str": fam,
                "instrument_source": nsynth.SOURCES.index(src),
                "instrument_source_str": src,
            }
            tone(root / "audio" / f"{note_str}.wav", seconds=seconds)
    (root / "examples.json").write_text(json.dumps(examples))
    return root


@pytest.fixture
def nsynth_dir(tmp_path):
    classes = {
        ("guitar", "acoustic"): 12,
        ("guitar", "electronic"): 12,
        ("flute", "acoustic"): 3,
        ("bass", "synthetic"): 12,
        ("synth_lead", "synthetic"): 5,
    }
    return nsynth_tree(tmp_path / "nsynth-test", classes)


def test_nsynth_items_follow_the_paper(nsynth_dir):
    items, skipped = load_items("notes", nsynth_dir, limit=20, seed=3, cap=6)
    assert not skipped
    counts = Counter(i.label for i in items)
    assert counts == {"guitar_acoustic": 6, "guitar_electronic": 6, "bass_synthetic": 5, "flute_acoustic": 3}
    assert "synth_lead_synthetic" not in counts  # the paper's 10 families only
    it = items[0]
    assert it.id == f"notes/nsynth/{it.note_id}" and it.tier == "notes" and it.dataset == "nsynth"
    assert it.label == f"{it.instrument_family}_{it.instrument_source}"
    assert it.amplitude == round(it.velocity / 127, 4) and it.note_name
    bright = next(i for i in items if i.qualities)
    assert bright.qualities == ["bright", "percussive"]
    assert bright.quality_descriptions[1] == "A loud non-harmonic sound at note onset."
    refs = {i.label: i.references for i in items}
    assert len(refs["guitar_acoustic"]) == 6 and all(Path(p).exists() for p in refs["guitar_acoustic"])
    again, _ = load_items("notes", nsynth_dir, limit=20, seed=3, cap=6)
    assert [i.id for i in again] == [i.id for i in items]
    assert load_items("notes", nsynth_dir, limit=20, seed=3, cap=6, families=None)[0][
        0
    ].id  # synth_lead allowed
    # a split folder's parent works too, with the split named
    assert len(load_items("notes", nsynth_dir.parent, limit=20, seed=3, cap=6, split="test")[0]) == 20


def test_nsynth_default_sample_is_the_papers_1500(tmp_path):
    # 16 classes of the paper's families: 12 with more than 110 notes, guitar_electronic 92, three small
    big = [
        (f, s)
        for f in ("bass", "brass", "guitar", "keyboard", "mallet", "organ")
        for s in ("acoustic", "synthetic")
    ]
    sizes = dict.fromkeys(big, 112) | {
        ("guitar", "electronic"): 92,
        ("flute", "acoustic"): 30,
        ("vocal", "acoustic"): 28,
        ("bass", "electronic"): 30,
    }
    root = nsynth_tree(tmp_path / "nsynth-train", sizes | {("synth_lead", "synthetic"): 20}, seconds=0.005)
    items, skipped = load_items("notes", root)
    counts = Counter(i.label for i in items)
    assert not skipped and len(items) == 1500 and len(counts) == 16
    assert sorted(counts.values()) == [28, 30, 30, 92] + [110] * 12
    assert len({i.id for i in items}) == 1500
    assert all(len(i.references) == counts[i.label] for i in items)


def test_nsynth_bad_audio_is_listed_not_dropped(nsynth_dir):
    audio = sorted((nsynth_dir / "audio").glob("flute_acoustic_*.wav"))
    audio[0].write_bytes(b"RIFF garbage, not a wav")
    tone(audio[1], sr=22050)
    audio[2].unlink()
    items, skipped = load_items("notes", nsynth_dir, limit=100, seed=0)
    assert "flute_acoustic" not in {i.label for i in items}
    reasons = " | ".join(s.reason for s in skipped)
    assert f"unreadable audio {audio[0]}" in reasons
    assert f"wrong sample rate in {audio[1]}: 22050 Hz, expected 16000 Hz" in reasons
    assert f"missing file {audio[2]}" in reasons


def test_nsynth_bad_metadata_names_the_entry(nsynth_dir):
    ex = json.loads((nsynth_dir / "examples.json").read_text())
    key = min(ex)
    ex[key]["instrument_family_str"] = "kazoo"
    (nsynth_dir / "examples.json").write_text(json.dumps(ex))
    with pytest.raises(DatasetError, match=f"entry '{key}': unknown instrument family 'kazoo'"):
        load_items("notes", nsynth_dir)
    (nsynth_dir / "examples.json").write_text("{not json")
    with pytest.raises(DatasetError, match="corrupt .*examples.json"):
        load_items("notes", nsynth_dir)
    with pytest.raises(DatasetError, match="does not exist"):
        load_items("notes", nsynth_dir / "nope")


# --------------------------------------------------------------------------- FSD50K


def fsd_tree(root: Path, sr: int = 44100) -> Path:
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    vocab = ["Bark", "Dog", "Animal", "Meow", "Gong"]
    with open(gt / "vocabulary.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([i, lb, vocabulary()[lb]["mid"]] for i, lb in enumerate(vocab))
    dev = [("101", "Bark,Dog,Animal"), ("102", "Bark"), ("103", "Meow,Animal"), ("104", "Dog,Animal")]
    ev = [("201", "Bark,Dog"), ("202", "Meow")]
    for name, rows, extra in (("dev", dev, ["split"]), ("eval", ev, [])):
        with open(gt / f"{name}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["fname", "labels", "mids", *extra])
            for fname, labels in rows:
                w.writerow([fname, labels, "", *(["train"] if extra else [])])
                tone(root / f"FSD50K.{name}_audio" / f"{fname}.wav", sr=sr)
    return root


def test_fsd50k_is_multilabel_aware(tmp_path):
    root = fsd_tree(tmp_path / "FSD50K")
    items, skipped = load_items("environmental", root)
    by = {i.label: i for i in items}
    assert set(by) == {"Bark", "Dog", "Animal", "Meow"}
    assert [s.key for s in skipped] == ["Gong"] and "empty class" in skipped[0].reason
    assert Path(by["Bark"].references[0]).stem == "102"  # the clip that is only a bark comes first
    assert sorted(Path(p).stem for p in by["Bark"].references) == ["101", "102", "201"]
    assert sorted(Path(p).stem for p in by["Animal"].references) == ["101", "103", "104"]
    bark = by["Bark"]
    assert bark.id == "environmental/fsd50k/Bark" and bark.display_name == "Bark"
    assert bark.description_source == "audioset-ontology" and "dog" in bark.description.lower()
    eval_only, _ = load_items("environmental", root, split="eval")
    assert {i.label for i in eval_only} == {"Bark", "Dog", "Meow"}
    two, _ = load_items("environmental", root, limit=2, seed=5)
    assert len(two) == 2 and two == load_items("environmental", root, limit=2, seed=5)[0]


def test_fsd50k_bad_input(tmp_path):
    root = fsd_tree(tmp_path / "FSD50K")
    tone(root / "FSD50K.eval_audio" / "202.wav", sr=16000)  # native FSD50K is 44.1 kHz
    items, skipped = load_items("environmental", root)
    assert "Meow" in {i.label for i in items}  # one good clip left
    assert any("wrong sample rate" in s.reason and "202.wav" in s.reason for s in skipped)
    (root / "FSD50K.dev_audio" / "103.wav").unlink()
    items, skipped = load_items("environmental", root)
    assert "Meow" not in {i.label for i in items}
    assert any(s.key == "Meow" and "no usable clip" in s.reason for s in skipped)
    with open(root / "FSD50K.ground_truth" / "eval.csv", "a") as fh:
        fh.write("203,Purr\n")
    with pytest.raises(DatasetError, match=r"eval.csv line 4 \(203\): unknown label 'Purr'"):
        load_items("environmental", root)
    with pytest.raises(DatasetError, match="unknown FSD50K labels"):
        fsd50k.load(root, labels=["Woof"])
    with pytest.raises(DatasetError, match="vocabulary.csv"):
        load_items("environmental", tmp_path)


# --------------------------------------------------------------------------- Speech Commands


def speech_tree(root: Path) -> Path:
    for word, n in (("yes", 3), ("no", 2), ("marvin", 1), ("banana", 2)):
        for i in range(n):
            tone(root / word / f"spk{i}_nohash_0.wav", seconds=1.0)
    tone(root / "_background_noise_" / "white_noise.wav", seconds=1.0)
    (root / "up").mkdir()
    (root / "testing_list.txt").write_text(
        "yes/spk0_nohash_0.wav\nyes/spk1_nohash_0.wav\nno/spk0_nohash_0.wav\n"
        "marvin/spk0_nohash_0.wav\nbanana/spk0_nohash_0.wav\n"
    )
    (root / "validation_list.txt").write_text("yes/spk2_nohash_0.wav\n")
    return root


def test_speech_commands_splits_and_items(tmp_path):
    root = speech_tree(tmp_path / "speech_commands_v0.02")
    items, skipped = load_items("speech", root)
    by = {i.label: i for i in items}
    assert set(by) == {"yes", "no", "marvin"}
    assert len(by["yes"].references) == 2 and by["yes"].id == "speech/speech_commands/yes"
    reasons = {s.key: s.reason for s in skipped}
    assert "unknown label 'banana'" in reasons["banana"]
    assert "empty class" in reasons["up"] and "no folder" in reasons["stop"]
    assert len(skipped) == 1 + 1 + 31  # banana, up, and the 31 words with no folder
    train, _ = load_items("speech", root, split="train")
    assert {i.label: len(i.references) for i in train} == {"no": 1}
    if speech_commands.phonetic_description("yes"):  # CMUdict comes with pocketsphinx
        assert by["yes"].description_source == "cmudict" and "/jɛs/" in by["yes"].description
    (root / "marvin" / "spk0_nohash_0.wav").unlink()
    with pytest.raises(DatasetError, match="testing_list.txt lists marvin/spk0_nohash_0.wav"):
        load_items("speech", root)


# --------------------------------------------------------------------------- offline manifest and CLI


def test_manifest_provenance_reaches_reference_clips(tmp_path):
    root = speech_tree(tmp_path / "speech_commands")
    clips = {
        f"{w}/spk{i}_nohash_0.wav": {
            "label": w,
            "source": "flite" if w == "marvin" else "pkg-x",
            "source_file": "f",
            "license": "GPL-2+",
            "human_recording": w != "marvin",
            "attribution": "someone",
        }
        for w, n in (("yes", 3), ("no", 2), ("marvin", 1), ("banana", 2))
        for i in range(n)
    }
    (root / MANIFEST).write_text(
        json.dumps({"dataset": "offline-speech", "sample_rate": 16000, "clips": clips})
    )
    items, _ = load_items("speech", None, refs_dir=tmp_path)
    by = {i.label: i for i in items}
    assert by["yes"].dataset == "offline-speech" and by["yes"].id == "speech/offline-speech/yes"
    assert by["marvin"].reference_clips[0].human_recording is False
    assert by["yes"].reference_clips[0].license == "GPL-2+" and by["yes"].reference_clips[0].source == "pkg-x"
    del clips["no/spk0_nohash_0.wav"]
    (root / MANIFEST).write_text(
        json.dumps({"dataset": "offline-speech", "sample_rate": 16000, "clips": clips})
    )
    with pytest.raises(DatasetError, match="not listed in"):
        load_items("speech", None, refs_dir=tmp_path)
    with pytest.raises(DatasetError, match="refs build --tier notes"):
        load_items("notes", None, refs_dir=tmp_path)


def test_cli_items_prints_one_json_object_per_line(nsynth_dir, tmp_path):
    # the console script, as users run it (`python -m audioprobe.cli` would load the CLI module twice)
    cmd = [
        str(Path(sys.executable).with_name("audioprobe")),
        "items",
        "--tier",
        "notes",
        "--dataset",
        str(nsynth_dir),
        "--limit",
        "8",
        "--seed",
        "1",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 8
    for r in rows:
        assert {
            "id",
            "tier",
            "label",
            "pitch",
            "velocity",
            "instrument_family",
            "instrument_source",
            "qualities",
            "references",
        } <= set(r)
    assert Counter(r["label"] for r in rows) == {
        "guitar_acoustic": 2,
        "guitar_electronic": 2,
        "flute_acoustic": 2,
        "bass_synthetic": 2,
    }
    assert subprocess.run(cmd, capture_output=True, text=True, check=True).stdout == out.stdout  # stable
    bad = subprocess.run(
        cmd[:-4] + ["--dataset", str(tmp_path / "missing")], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_nsynth_paper_split_structure_is_checked_on_a_complete_split(monkeypatch):
    """The paper's 16 classes: 12 x 110 + 92 + 30 + 28 + 30, checked when the whole pinned split is present."""
    classes = [(f, s) for f in ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed")
               for s in ("acoustic", "electronic")]  # 16 (family, source) classes
    sizes = [150] * 12 + [92, 30, 28, 30]

    def notes(counts):
        return [nsynth.Note(f"{f}_{s}_{i}", f, s, 60, 100, [], Path("x.wav"), table=None)
                for (f, s), c in zip(classes, counts) for i in range(c)]

    good = notes(sizes)
    assert nsynth.paper_structure(good) == nsynth.PAPER_STRUCTURE
    monkeypatch.setitem(nsynth.SPLIT_SIZES, "test", len(good))
    nsynth.check_paper_structure(good, "test")  # holds: no error
    bad = notes([150] * 13 + [30, 28, 30])
    monkeypatch.setitem(nsynth.SPLIT_SIZES, "test", len(bad))
    with pytest.raises(DatasetError, match="12 x 110 \\+ 92"):
        nsynth.check_paper_structure(bad, "test")
    nsynth.check_paper_structure(bad[:-1], "test")  # an incomplete split is not checked
    assert nsynth.PAPER_SPLIT == "test"


def test_llm_descriptions_are_wired_cached_and_named(tmp_path, monkeypatch):
    """Detailed+Description's text comes from the describer model when one is set, once per label and model."""
    from audioprobe.schema import ProbeItem
    from tasks.probesets.descriptions import describe_items

    asked: list[str] = []

    def describer(prompt: str) -> str:  # stands in for the model's answer; the call path is llm.generate
        asked.append(prompt)
        return f"written for: {prompt.split(chr(39))[1]}"

    items = [ProbeItem(id=f"env/{lb}", tier="environmental", label=lb, dataset="t", description="ontology")
             for lb in ("Dog", "Bark")] + [ProbeItem(id="yes", tier="speech", label="yes", dataset="t")]
    out = describe_items(items, model="local", cache_dir=tmp_path, complete=describer)
    from audioprobe.settings import get_settings

    who = f"llm:local-{get_settings().local_model}"  # "local" is recorded as the model it named
    assert [i.description_source for i in out[:2]] == [who, who] and out[2] == items[2]
    assert out[0].description == "written for: Dog" and len(asked) == 2
    again = describe_items(items, model="local", cache_dir=tmp_path, complete=describer)
    assert again == out and len(asked) == 2  # cached per model: a rerun asks nothing
    assert describe_items(items, model=None) == items  # no describer: the ontology's text stays

    def down(prompt: str) -> str:
        raise RuntimeError("connection: server down")

    failed = describe_items(items, model="other", cache_dir=tmp_path, complete=down)
    assert failed[0].description == "ontology" and "describer other failed" in failed[0].description_source


def test_run_samples_the_nsynth_split_it_names(tmp_path, monkeypatch):
    """`audioprobe run --split` reaches the loader, is part of the run's identity, and the test split (the
    paper's) is the default when a dataset root holds several."""
    from audioprobe.settings import get_settings
    from tasks import runs

    root = tmp_path / "data"
    nsynth_tree(root / "nsynth" / "nsynth-test", {("guitar", "acoustic"): 3})
    nsynth_tree(root / "nsynth" / "nsynth-valid", {("flute", "acoustic"): 3})
    monkeypatch.setenv("AUDIOPROBE_DATA_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    try:
        def labels(split):
            store = runs.start_or_resume(["local"], ["notes"], {"notes": ["paper"]}, 1, 2, 0, str(root), split=split)
            return store, {i.label for i in runs.items_for(store, "notes")}

        default, default_labels = labels(None)
        valid, valid_labels = labels("valid")
    finally:
        get_settings.cache_clear()
    assert default_labels == {"guitar_acoustic"} and valid_labels == {"flute_acoustic"}
    assert default.run_id != valid.run_id and valid.manifest.split == "valid"
