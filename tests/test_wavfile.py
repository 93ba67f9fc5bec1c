"""The strict WAV reader and the gate on hostile files: refused before decoding, bounded memory and time."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tasks.judges import audio, gate, wavfile
from tests.hostile_audio import gate_in_fresh_process, hostile_files, largest_honest_file

SR = 16000


def tone(seconds=1.0, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.repeat(x[:, None], channels, axis=1)


@pytest.mark.parametrize(
    "subtype,channels,tol",
    [("PCM_U8", 1, 1e-2), ("PCM_16", 1, 1e-4), ("PCM_24", 2, 1e-6), ("PCM_32", 1, 1e-8),
     ("FLOAT", 3, 1e-7), ("DOUBLE", 1, 1e-7), ("PCM_16", 6, 1e-4)],
)
def test_reader_matches_libsndfile_on_every_accepted_encoding(tmp_path, subtype, channels, tol):
    path = tmp_path / "x.wav"
    sf.write(path, tone(0.25, channels=channels), SR, subtype=subtype)  # 3+ channels: EXTENSIBLE
    ours, rate = wavfile.read(path)
    theirs, _ = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR and ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.allclose(ours, theirs, atol=tol)


def test_every_hostile_file_is_refused_by_name(tmp_path):
    for name, path in hostile_files(tmp_path).items():
        if name == "rate_two_gigahertz":
            continue  # a valid header: the gate's call (absurd_sample_rate), and the report's
        with pytest.raises(wavfile.WavError) as err:
            wavfile.read(path)
        assert str(err.value), name
    assert "FLAC" in str(pytest.raises(wavfile.WavError, wavfile.read_info, tmp_path / "flac_bomb_named_wav.wav").value)


def test_reader_caps_samples_and_time(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(3.0), SR)
    with pytest.raises(wavfile.WavError, match="cap"):
        wavfile.read(path, max_samples=SR)
    x, _ = wavfile.read(path, max_frames=SR // 2)
    assert len(x) == SR // 2
    with pytest.raises(wavfile.WavError, match="within"):
        list(wavfile.iter_blocks(path, timeout_s=-1))


def test_gate_decides_hostile_files_fast_within_bounded_memory(tmp_path):
    note = tmp_path / "note.wav"
    sf.write(note, tone(1.0), SR)
    baseline, base_rss = gate_in_fresh_process([note])
    assert baseline[str(note)]["ok"]
    files = hostile_files(tmp_path / "hostile")
    honest = largest_honest_file(tmp_path / "largest.wav")
    results, rss = gate_in_fresh_process([*files.values(), honest])
    for name, path in files.items():
        r = results[str(path)]
        assert not r["ok"] and r["seconds"] < 10, (name, r)
        names = gate.problem_names(r["problems"])
        assert {"unreadable", "absurd_sample_rate"} & set(names), (name, r["problems"])
    assert "absurd_sample_rate" in gate.problem_names(results[str(files["rate_two_gigahertz"])]["problems"])
    big = results[str(honest)]
    assert big["ok"] and big["seconds"] < 10, big
    # Figures in docs/sandbox.md: the whole batch, the 92 MB honest file included, vs one plain note.
    print(f"gate peak RSS: plain note {base_rss:.0f} MB, hostile batch + largest honest {rss:.0f} MB")
    assert rss - base_rss < 300


def test_judges_and_report_read_strictly(tmp_path):
    from audioprobe.report import media

    fast = tmp_path / "fast.wav"
    sf.write(fast, tone(0.5, sr=96000), 96000)
    mono, rate = media.read_clip(fast)
    assert rate == media.MAX_RATE and len(mono) == 24000
    files = hostile_files(tmp_path / "hostile")
    with pytest.raises(wavfile.WavError):
        media.read_clip(files["rate_two_gigahertz"])
    with pytest.raises(audio.AudioError, match="not RIFF/WAVE"):
        audio.prepare(files["flac_bomb_named_wav"], SR)
    x = audio.prepare(fast, SR, max_seconds=0.25)
    assert x.dtype == np.float32 and len(x) == SR // 4
