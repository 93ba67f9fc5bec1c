"""The Judge protocol (tasks/judges/base.py): every judge class on real audio, the caching wrapper, and a
new judge written as one class."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from audioprobe.schema import Judgement, ProbeItem
from tasks.judges import audio, choices
from tasks.judges.base import ClipJudge, Judge, cached, judge_all
from tasks.judges.cache import JudgementCache, cache_key, refreshed
from tests.judges_audio import (
    SR,
    SYNTH_CLASSES,
    espeak,
    label_item,
    note_item,
    synth_class,
    tiny_clap_checkpoint,
    tone,
    write,
)

pytestmark = pytest.mark.judges


class PeakFrequency(ClipJudge):
    """A tiny DSP judge: the strongest FFT bin is within a semitone of the asked pitch. It counts the clips
    it hears, so the tests see what reached it through the cache."""

    name = "test/peak-frequency"
    version = "1"

    def __init__(self) -> None:
        self.heard: list[Path] = []

    def params(self, item: ProbeItem) -> dict:
        return {"midi": item.pitch}

    def judge_clip(self, clip: Path, item: ProbeItem) -> Judgement:
        self.heard.append(clip)
        wave = audio.prepare(clip, SR, loudness="peak")
        spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
        hz = float(np.fft.rfftfreq(len(wave), 1 / SR)[int(np.argmax(spectrum))])
        cents = 1200 * np.log2(hz / (440 * 2 ** ((item.pitch - 69) / 12)))
        return self.verdict(
            clip, item, correct=bool(abs(cents) < 100), score=abs(float(cents)), values={"peak_hz": hz}
        )


@pytest.fixture()
def tones(tmp_path):
    midis = [57, 64, 69]
    paths = [write(tmp_path / f"{m}.wav", tone(440 * 2 ** ((m - 69) / 12), 0.5)) for m in midis]
    return paths, [note_item(m) for m in midis]


def test_a_new_judge_is_one_class(tmp_path, tones):
    paths, items = tones
    judge = PeakFrequency()
    assert isinstance(judge, Judge) and isinstance(cached(judge, JudgementCache(tmp_path / "c")), Judge)
    js = cached(judge, JudgementCache(tmp_path / "c")).judge(paths, items)
    assert [j.correct for j in js] == [True, True, True], [j.values for j in js]
    assert js[2].values["peak_hz"] == pytest.approx(440, abs=3) and js[2].judge == "test/peak-frequency"
    wrong = cached(judge, JudgementCache(tmp_path / "c")).judge(paths[:1], [note_item(69)])[0]
    assert wrong.correct is False and wrong.score > 1000  # A3 heard for A4: an octave off
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not a wav")
    bad = cached(judge, JudgementCache(tmp_path / "c")).judge([broken, tmp_path / "absent.wav"], items[:2])
    assert all(j.error.startswith("unreadable") and j.correct is None for j in bad)


def test_the_wrapper_caches_and_a_version_bump_misses(tmp_path, tones):
    paths, items = tones
    judge, cache = PeakFrequency(), JudgementCache(tmp_path / "c")
    first = cached(judge, cache).judge(paths[:2], items[:2])
    assert len(judge.heard) == 2 and not any(j.cached for j in first)
    both = cached(judge, cache).judge(paths, items)  # two hits, one miss: only the miss is heard
    assert judge.heard[2:] == [paths[2]] and [j.cached for j in both] == [True, True, False]
    assert [j.values for j in both[:2]] == [j.values for j in first]
    assert cached(judge, cache).judge(paths, items)[2].cached and len(judge.heard) == 3
    other = cached(judge, cache).judge(paths[:1], [note_item(70)])  # another target is another key
    assert not other[0].cached and len(judge.heard) == 4
    judge.version = "2"
    bumped = cached(judge, cache).judge(paths, items)
    assert len(judge.heard) == 7 and not any(j.cached for j in bumped) and bumped[0].judge_version == "2"
    with refreshed():
        cached(judge, cache).judge(paths[:1], items[:1])
    assert len(judge.heard) == 8
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not a wav")
    for _ in range(2):  # an unreadable file is the file's fault, or the machine's: asked again each time
        assert cached(judge, cache).judge([broken], items[:1])[0].error
    assert judge.heard[-2:] == [broken, broken]
    with pytest.raises(ValueError, match="3 clips but 2 items"):
        cached(judge, cache).judge(paths, items[:2])
    twin = write(tmp_path / "twin.wav", tone(440 * 2 ** ((57 - 69) / 12), 0.5))  # the same bytes as paths[0]
    heard = len(judge.heard)
    js = cached(judge, JudgementCache(tmp_path / "c2")).judge(
        [paths[0], twin, paths[0]], [*items[:1] * 2, note_item(60)]
    )
    assert len(judge.heard) == heard + 2 and [j.cached for j in js] == [False, True, False]
    assert js[1].values == js[0].values and js[2].params == {"midi": 60}


def test_judge_all_gives_each_clip_every_judges_verdict(tmp_path, tones):
    from tasks.judges import pitch

    paths, items = tones
    peak = PeakFrequency()
    rows = judge_all([pitch.PitchJudge("cpu"), peak], paths, items, JudgementCache(tmp_path / "c"))
    assert [[j.judge for j in row] for row in rows] == [["pitch/torchcrepe-tiny-steady24", peak.name]] * 3
    assert all(row[0].correct and row[1].correct for row in rows), rows
    assert all(
        j.cached for row in judge_all([peak], paths, items, JudgementCache(tmp_path / "c")) for j in row
    )
    assert judge_all([], paths, items) == [[], [], []]


# --------------------------------------------------------------------------- the judges


def test_pitch_judge_batch_and_the_cache_keys_of_before(tmp_path):
    from tasks.judges import pitch

    midis = [45, 60, 72]
    paths = [write(tmp_path / f"{m}.wav", tone(pitch.midi_to_hz(m), 1.0, harmonics=2)) for m in midis]
    octave = write(tmp_path / "octave.wav", tone(pitch.midi_to_hz(72), 1.0))
    judge = pitch.PitchJudge("cpu")
    assert judge.name == "pitch/torchcrepe-tiny-steady24" and "steady24" in judge.version
    cache = JudgementCache(tmp_path / "c")
    js = cached(judge, cache).judge([*paths, octave], [*map(note_item, midis), note_item(60)])
    assert [j.correct for j in js] == [True, True, True, False], [j.values for j in js]
    assert js[3].values["octave_error"] and js[3].values["octaves"] == 1
    # where the judgements of pitch.judge_files were stored before the protocol: still hits
    key = cache_key(audio.sha256_file(paths[1]), judge.name, judge.version, {"midi": 60.0})
    assert cache.path(key, judge.name).is_file()
    assert cached(judge, cache).judge(paths[1:2], [note_item(60)])[0].cached


def test_offline_classifier_judge(tmp_path):
    from tasks.judges.classify import JUDGE, OfflineClassifier

    bank = {
        k: [write(tmp_path / "refs" / k / f"{i}.wav", synth_class(k, i)) for i in range(2)]
        for k in SYNTH_CLASSES
    }
    judge = OfflineClassifier(bank, cache_dir=tmp_path / "emb", seed=3)
    gen = [write(tmp_path / "gen" / f"{k}.wav", synth_class(k, 99)) for k in SYNTH_CLASSES]
    js = cached(judge, JudgementCache(tmp_path / "c")).judge(gen, [label_item(k) for k in SYNTH_CLASSES])
    assert all(j.judge == JUDGE and j.params["seed"] == 3 and len(j.values["choices"]) == 5 for j in js)
    assert sum(bool(j.correct) for j in js) >= 5, [j.values["chosen"] for j in js]
    # the params of judgements cached before the protocol: they still hit
    assert js[0].params == {
        "target": SYNTH_CLASSES[0],
        "seed": 3,
        "exclude_self": False,
        "distractors": "ontology-relatives-excluded-v1",
    }
    loo = judge.configured(exclude_self=True).judge([bank["chirp"][0]], [label_item("chirp")])[0]
    assert loo.params["exclude_self"] and loo.correct  # its sibling is still in the bank
    with pytest.raises(ValueError, match="no reference clips"):
        judge.judge(gen[:1], [label_item("trumpet")])


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    return tiny_clap_checkpoint(tmp_path_factory.mktemp("clap"))


def test_clap_judge(tmp_path, tiny_clap):
    from tasks.judges import clap

    vocab = {f"label{i}": f"thing number {i}" for i in range(10)}
    judge = clap.ClapJudge(tiny_clap, vocabulary=vocab, seed=1)
    wavs = [write(tmp_path / f"{hz}.wav", tone(hz, 2.0, sr=44100), sr=44100) for hz in (220, 880)]
    cache = JudgementCache(tmp_path / "c")
    js = cached(judge, cache).judge(wavs, [label_item("label3"), label_item("label7")])
    assert all(len(j.values["choices"]) == 5 and j.values["n_labels"] == 10 for j in js)
    assert "label3" in js[0].values["choices"] and js[1].params["target"] == "label7"
    assert all(0.2 <= j.score <= 1.0 for j in js)
    vocabulary_id = hashlib.sha256(repr(sorted(vocab.items())).encode()).hexdigest()[:12]
    assert js[0].params == {
        "target": "label3",
        "seed": 1,
        "distractors": "ontology-relatives-excluded-v1",
        "template": "This is a sound of {label}.",
        "vocabulary": vocabulary_id,
    }
    assert cached(judge, cache).judge(wavs[:1], [label_item("label3")])[0].cached
    other = judge.configured(seed=2)
    assert other.params(label_item("label3")) != judge.params(label_item("label3"))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        judge.judge(wavs[:1], [label_item("label99")])


@pytest.mark.skipif(
    espeak("x", Path("/tmp/.audioprobe-espeak-probe.wav")) is None, reason="espeak-ng not installed"
)
def test_speech_judge(tmp_path):
    from tasks.judges import speech

    words = ["yes", "left", "three", "house"]
    clips = [espeak(w, tmp_path / f"{w}.wav") for w in words]
    silent = write(tmp_path / "silent.wav", np.zeros(SR, np.float32))
    judge = speech.SpeechJudge(seed=0)
    js = cached(judge, JudgementCache(tmp_path / "c")).judge(
        [*clips, silent], [label_item(w, "speech") for w in [*words, "dog"]]
    )
    assert sum(bool(j.correct) for j in js[:4]) >= 3, [j.values for j in js]
    assert all(j.values["choices"].count(w) == 1 for j, w in zip(js, words))
    assert js[4].correct is False and "silent" in js[4].error
    assert js[0].params == {"word": "yes", "seed": 0, "choices": choices.draw("yes", speech.WORDS, seed=0)}


def test_hostile_files_never_sink_a_batch(tmp_path, tiny_clap):
    """Every judge class on the files the strict reader refuses, with one good clip among them: one verdict
    per clip, the hostile ones `unreadable` (and asked again next time), the good one judged."""
    from tasks.judges import clap, pitch, speech
    from tasks.judges.classify import OfflineClassifier
    from tests.hostile_audio import hostile_files

    files = hostile_files(tmp_path / "hostile")
    del files["rate_two_gigahertz"]  # a consistent header the reader reads: the gate refuses its rate
    hostile = list(files.values())
    good = write(tmp_path / "good.wav", tone(pitch.midi_to_hz(60), 1.0, harmonics=2))
    clips = [*hostile[:10], good, *hostile[10:]]
    bank = {
        k: [write(tmp_path / "refs" / k / f"{i}.wav", synth_class(k, i)) for i in range(2)]
        for k in SYNTH_CLASSES
    }
    judges = {
        pitch.PitchJudge("cpu"): note_item(60),
        speech.SpeechJudge(): label_item("yes", "speech"),
        OfflineClassifier(bank, cache_dir=tmp_path / "emb"): label_item("whistle"),
        clap.ClapJudge(tiny_clap, vocabulary={f"l{i}": f"thing {i}" for i in range(6)}): label_item("l2"),
        PeakFrequency(): note_item(60),
    }
    cache = JudgementCache(tmp_path / "c")
    for judge, item in judges.items():
        js = cached(judge, cache).judge(clips, [item] * len(clips))
        assert len(js) == len(clips) and all(j.judge == judge.name for j in js)
        assert [j.error is None or not j.error.startswith("unreadable") for j in js] == [
            c == good for c in clips
        ]
        assert all(j.correct is None for j in js if j.error), judge.name
        again = cached(judge, cache).judge(clips, [item] * len(clips))
        assert [j.cached for j in again] == [c == good for c in clips], judge.name
