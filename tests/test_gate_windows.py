"""Issue 22: the gate decides on what the judges hear (float64 downmix, overflow, judge windows)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tasks.judges import audio, gate

SR = 8000


def tone(seconds, amp=0.5, freq=440.0):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def write(path, x, subtype="FLOAT"):
    sf.write(path, x, SR, subtype=subtype)
    return path


def names(g):
    return gate.problem_names(g.problems)


@pytest.mark.parametrize("channels", [1, 2])
def test_finite_floats_far_above_full_scale_are_fatal(tmp_path, channels):
    x = tone(1.0, amp=3e38)  # finite in float32: the judges' float32 downmix overflows to inf, then 0
    f = write(tmp_path / "huge.wav", np.stack([x] * channels, axis=1) if channels > 1 else x)
    g = gate.check(f)
    assert not g.ok and "overflow" in names(g), g.problems
    if channels > 1:  # the judges' float32 downmix: most samples overflow to inf and are heard as 0
        with np.errstate(over="ignore"):
            heard = audio.prepare(f, SR)
        assert np.count_nonzero(heard == 0) > len(heard) // 2


def test_sound_after_every_judge_window_is_refused(tmp_path):
    x = np.concatenate([np.zeros(34 * SR, np.float32), tone(4.0)])  # 38 s: the tone starts at 34 s
    g = gate.check(write(tmp_path / "late.wav", x))
    assert not g.ok and "silent_window" in names(g) and "first 30 s" in g.problems[-1], g.problems
    assert not np.any(audio.prepare(tmp_path / "late.wav", 16000, max_seconds=10.0))  # CLAP's window


def test_sound_after_the_shortest_window_is_refused(tmp_path):
    x = np.concatenate([np.zeros(5 * SR, np.float32), tone(3.0)])
    g = gate.check(write(tmp_path / "late.wav", x))
    assert not g.ok and any("first 4 s" in p for p in g.problems), g.problems


def test_early_only_sound_passes(tmp_path):
    x = np.concatenate([tone(1.0), np.zeros(29 * SR, np.float32)])
    g = gate.check(write(tmp_path / "early.wav", x))
    assert g.ok and not g.problems, g.problems


def test_dc_alone_is_silence_and_dc_under_a_tone_is_not(tmp_path):
    g = gate.check(write(tmp_path / "dc.wav", np.full(SR, 0.5, np.float32)))
    assert not g.ok and "silent" in names(g), g.problems
    g = gate.check(write(tmp_path / "tone_dc.wav", tone(1.0, 0.2) + 0.3))
    assert g.ok and names(g) == ["dc_offset"], g.problems


def test_channels_that_cancel_are_silence(tmp_path):
    x = tone(1.0)
    g = gate.check(write(tmp_path / "cancel.wav", np.stack([x, -x], axis=1)))
    assert not g.ok and "silent" in names(g), g.problems


def test_a_quiet_but_audible_window_passes(tmp_path):
    x = np.concatenate([tone(4.5, amp=0.002), tone(1.0)])  # -54 dBFS: quiet, not silent
    assert gate.check(write(tmp_path / "quiet.wav", x)).ok


def test_faint_clicks_before_the_sound_are_silence_to_the_judges(tmp_path):
    x = np.zeros(5 * SR, np.float32)
    x[::SR] = 0.01  # one -40 dBFS click a second: a swing, but a level of -79 dBFS
    g = gate.check(write(tmp_path / "clicks.wav", np.concatenate([x, tone(2.0)])))
    assert not g.ok and any("first 4 s" in p for p in g.problems), g.problems
