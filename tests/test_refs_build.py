"""The offline refs builder on a small subset: real packages, real fluidsynth, flite and pocketsphinx.

Downloads land in settings.cache_dir/refs-src and are reused; the output goes to a temp folder.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from tasks.probesets.loaders import load_items
from tasks.probesets.refs import build_refs, opensfx_entry

SR = 16000


def f0_of(x: np.ndarray, lo: float = 60.0, hi: float = 1000.0) -> float:
    """Fundamental by harmonic-product spectrum over the sustained part: robust to a strong 2nd harmonic."""
    seg = x[int(0.3 * SR) : int(1.3 * SR)] * np.hanning(SR)
    spec = np.abs(np.fft.rfft(seg, 8 * SR))  # 0.125 Hz bins
    hps = spec.copy()
    for k in (2, 3):
        hps[: len(spec[::k])] *= spec[::k]
    freqs = np.fft.rfftfreq(8 * SR, 1 / SR)
    band = (freqs >= lo) & (freqs <= hi)
    return float(freqs[band][np.argmax(hps[band])])


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    out = tmp_path_factory.mktemp("refs")
    summary = build_refs(
        ["notes", "environmental", "speech"],
        out,
        progress=lambda m: None,
        notes_families=("keyboard", "flute"),
        notes_sources=("acoustic",),
        notes_pitches=(57, 69),
        notes_velocities=(50, 127),
        env_labels=["Camera", "Applause"],
        words=["left", "two", "yes"],
    )
    return out, summary


def test_notes_are_nsynth_shaped_and_in_tune(refs):
    out, summary = refs
    assert summary["notes"]["clips"] == 8 and summary["notes"]["classes"] == 2
    examples = json.loads((out / "nsynth" / "examples.json").read_text())
    assert len(examples) == 8
    for note_str, ex in examples.items():
        x, sr = sf.read(out / "nsynth" / "audio" / f"{note_str}.wav")
        assert sr == SR and len(x) == 4 * SR and x.ndim == 1
        want = 440.0 * 2 ** ((ex["pitch"] - 69) / 12)
        got = f0_of(x)
        assert abs(12 * np.log2(got / want)) < 0.5, f"{note_str}: f0 {got:.1f} Hz, expected {want:.1f} Hz"
        if ex["instrument_family_str"] == "flute":  # sustained until the note-off at 3 s, then gone
            held = np.sqrt(np.mean(x[int(2.5 * SR) : 3 * SR] ** 2))
            after = np.sqrt(np.mean(x[int(3.7 * SR) :] ** 2))
            assert held > 10 * after
    loud = [ex for ex in examples.values() if ex["velocity"] == 127]
    soft = {(ex["instrument_str"], ex["pitch"]): ex for ex in examples.values() if ex["velocity"] == 50}
    for ex in loud:  # one gain per program: velocity still shows in the level
        a = np.abs(sf.read(out / "nsynth" / "audio" / f"{ex['note_str']}.wav")[0]).max()
        quiet = soft[(ex["instrument_str"], ex["pitch"])]
        b = np.abs(sf.read(out / "nsynth" / "audio" / f"{quiet['note_str']}.wav")[0]).max()
        assert a > 1.5 * b
    items, skipped = load_items("notes", out / "nsynth")
    assert len(items) == 8 and not skipped
    clip = items[0].reference_clips[0]
    assert clip.source == "fluid-soundfont-gm" and clip.license.startswith("MIT") and clip.human_recording


def test_environmental_clips_keep_their_provenance(refs):
    out, summary = refs
    assert summary["environmental"]["classes"] == 2
    items, skipped = load_items("environmental", out / "fsd50k")
    assert {i.label for i in items} == {"Camera", "Applause"}
    assert len(skipped) == 198 and all("empty class" in s.reason for s in skipped)
    applause = next(i for i in items if i.label == "Applause").reference_clips[0]
    assert applause.source == "openttd-opensfx" and applause.source_file == "opensfx.cat#29"
    assert "lonemonk" in applause.attribution and applause.license == "CC-BY-3.0"
    x, sr = sf.read(applause.path)
    assert sr == SR and x.ndim == 1 and 1.0 < len(x) / SR <= 10.0


def test_speech_real_cuts_and_flagged_synthetic_words(refs):
    out, summary = refs
    s = summary["speech"]
    assert s["classes"] == 3 and s["synthetic_only_classes"] == 1
    items, _ = load_items("speech", out / "speech_commands")
    by = {i.label: i for i in items}
    assert set(by) == {"left", "two", "yes"}
    assert all(not c.human_recording and c.source == "flite" for c in by["yes"].reference_clips)
    left = [c for c in by["left"].reference_clips if "Front_Left" in c.source_file]
    assert left and left[0].human_recording and "pocketsphinx" in left[0].attribution
    for c in by["left"].reference_clips + by["two"].reference_clips:
        x, sr = sf.read(c.path)
        assert sr == SR and len(x) == SR
    # the cut keeps "left" only: "front" is gone, so the voiced part is shorter than the phrase
    x, _ = sf.read(left[0].path)
    voiced = np.flatnonzero(np.abs(x) > 0.05)
    assert 0.15 < (voiced[-1] - voiced[0]) / SR < 0.7
    two = {c.source for c in by["two"].reference_clips}
    assert {"asterisk-core-sounds-en-g722", "csmash-data", "tuxpaint-stamps-default"} <= two


def test_credits_list_every_clip_and_rebuild_is_a_no_op(refs):
    out, _ = refs
    with open(out / "credits.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 + 2 + sum(1 for _ in (out / "speech_commands").rglob("*.wav"))
    assert all(r["source"] and r["license"] for r in rows)
    text = (out / "CREDITS.md").read_text()
    assert (
        "openttd-opensfx" in text and "flite" in text and (out / "licenses" / "openttd-opensfx.txt").exists()
    )
    wav = next((out / "nsynth" / "audio").glob("*.wav"))
    before = wav.stat().st_mtime_ns
    said = []
    build_refs(
        ["notes"],
        out,
        progress=said.append,
        notes_families=("keyboard", "flute"),
        notes_sources=("acoustic",),
        notes_pitches=(57, 69),
        notes_velocities=(50, 127),
    )
    assert wav.stat().st_mtime_ns == before and any("up to date" in m for m in said)


def test_opensfx_cat_parser_rejects_bad_indices():
    import struct

    wav = b"RIFF" + b"\0" * 40
    name = b"Test. License: CC0\0"
    off = 8
    cat = struct.pack("<II", off | 0x80000000, 1 + len(name) + len(wav)) + bytes([len(name)]) + name + wav
    title, data = opensfx_entry(cat, 0)
    assert title == "Test. License: CC0" and data == wav
    with pytest.raises(ValueError, match="has 1 entries"):
        opensfx_entry(cat, 1)


def test_missing_tools_need_root_and_say_so(monkeypatch):
    from tasks.probesets import refs_sources

    monkeypatch.setattr(refs_sources.shutil, "which", lambda cmd: None)
    monkeypatch.setattr(refs_sources.os, "geteuid", lambda: 1000)
    with pytest.raises(ValueError, match=r"needs fluidsynth; installing Debian packages needs root"):
        refs_sources.ensure_tools({"fluidsynth": "fluidsynth"}, progress=lambda m: None)
