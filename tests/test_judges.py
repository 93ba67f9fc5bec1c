"""Judges on known answers: closed-form Fréchet distances, synthesised tones, malformed WAVs, test-made
checkpoints in the real formats, cache hits, real (espeak-ng) speech and silence."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest

from tasks.judges import audio, choices, distance, fad, frechet, gate
from tasks.judges.base import cached
from tasks.judges.cache import JudgementCache
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
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- Fréchet distance


def closed_form(mu1, s1, mu2, s2) -> float:
    from scipy.linalg import sqrtm

    covmean = sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def random_spd(d: int, rng) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", [1, 2, 16, 128])
def test_frechet_matches_closed_form(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    assert frechet.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        closed_form(mu1, s1, mu2, s2), rel=1e-6, abs=1e-8
    )


def test_frechet_diagonal_gaussians_exact():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    expected = 9.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # |dmu|^2 + sum (sqrt a - sqrt b)^2
    assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    assert frechet.frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-9)


def test_frechet_from_samples_converges_to_population_value():
    rng = np.random.default_rng(0)
    d = 8
    s1, s2 = random_spd(d, rng), random_spd(d, rng)
    mu2 = np.full(d, 0.5)
    x = rng.multivariate_normal(np.zeros(d), s1, 40000)
    y = rng.multivariate_normal(mu2, s2, 40000)
    assert frechet.fd_embeddings(x, y) == pytest.approx(closed_form(np.zeros(d), s1, mu2, s2), rel=0.05)


def test_frechet_shapes_are_asserted():
    rng = np.random.default_rng(1)
    one_d = rng.standard_normal((50, 1))
    mu, sigma = frechet.stats(one_d)
    assert mu.shape == (1,) and sigma.shape == (1, 1)  # never a scalar "covariance"
    with pytest.raises(frechet.FrechetError):
        frechet.stats(rng.standard_normal(50))  # 1-D array: ambiguous, refused
    with pytest.raises(frechet.FrechetError):
        frechet.fd_embeddings(rng.standard_normal((20, 3)), rng.standard_normal((20, 4)))
    with pytest.raises(frechet.FrechetError):
        frechet.stats(np.full((5, 2), np.nan))


def test_frechet_singular_covariances_stay_finite():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((10, 64)), rng.standard_normal((12, 64))  # rank < dim on both sides
    fd = frechet.fd_embeddings(x, y)
    assert np.isfinite(fd) and fd > 0


def test_baseline_bootstrap_and_bands():
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal((4, 4)) for _ in range(60)]
    shifted = [c + 3.0 for c in clips[:30]]
    same = fad.score_sets(clips[:30], clips[30:], label="x", embedding="logmel-stats-v1")
    far = fad.score_sets(shifted, clips[30:], label="x", embedding="logmel-stats-v1")
    assert far.fad > 10 * same.fad and same.baseline is not None and same.band is None
    lo, hi = far.ci
    assert lo <= far.fad * 1.2 and hi >= far.fad * 0.8 and lo < hi
    assert frechet.band(5.0, "vggish-tf-v1") == "highly similar"
    assert frechet.band(12.0, "vggish-tf-v1") == "moderately similar"
    assert frechet.band(15.0, "vggish-tf-v1") == "distinct"
    assert frechet.band(5.0, "vggish-tf-v1", scale="set") is None  # calibrated on single notes only
    assert frechet.band(5.0, "logmel-stats-v1") is None
    empty = fad.score_sets([], clips, label="x", embedding="vggish-tf-v1")
    assert empty.fad is None and empty.n_gen == 0
    macro = fad.macro_average([same, far, empty])
    assert macro["classes"] == 2 and macro["unscored"] == ["x"]


# --------------------------------------------------------------------------- KAD, FAD, FAD-inf, per note


def test_kad_and_fad_exact_on_small_sets():
    """Hand-computed: 1-D clips of one frame each. Bandwidth = median pairwise reference distance = 2."""
    gen, ref = [np.array([[0.0]]), np.array([[1.0]])], [np.array([[0.0]]), np.array([[2.0]])]
    k = lambda a, b: np.exp(-((a - b) ** 2) / (2 * 2.0**2))
    expected = 100 * (k(0, 1) + k(0, 2) - 2 * (k(0, 0) + k(0, 2) + k(1, 0) + k(1, 2)) / 4)
    assert distance.median_bandwidth(ref) == 2.0
    assert distance.kad(gen, ref) == pytest.approx(expected, abs=1e-12)
    # FAD: means 0.5 and 1, variances (ddof 1) 0.5 and 2: 0.25 + 0.5 + 2 - 2 sqrt(1) = 0.75
    assert distance.fad(gen, ref) == pytest.approx(0.75, abs=1e-12)
    # two frames per clip: pairs inside a clip are left out of the within-set terms
    g2 = [np.array([[0.0], [1.0]]), np.array([[3.0], [4.0]])]
    r2 = [np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]])]
    width = distance.median_bandwidth(r2)
    kk = lambda a, b: np.exp(-((a - b) ** 2) / (2 * width**2))
    clip = lambda a, b: np.mean([kk(x, y) for x in a[:, 0] for y in b[:, 0]])
    want = 100 * (clip(g2[0], g2[1]) + clip(r2[0], r2[1]) - 2 * np.mean([clip(a, b) for a in g2 for b in r2]))
    assert distance.kad(g2, r2) == pytest.approx(want, abs=1e-12)


def test_kad_is_unbiased_at_small_n_and_fad_is_not():
    """Same distribution, 20 clips a side of 16-d frames: KAD's CI contains 0, FAD's lies clearly above 0."""
    rng = np.random.default_rng(7)
    clips = lambda n: [rng.standard_normal((4, 16)) for _ in range(n)]
    gen, ref = clips(20), clips(20)
    k = distance.distance("kad", gen, ref, embedding="test", n_boot=200)
    f = distance.distance("fad", gen, ref, embedding="test", n_boot=200)
    assert k.ci[0] < 0 < k.ci[1] and abs(k.value) < k.ci[1] - k.ci[0]
    assert f.ci[0] > 0.5 and f.value > 1.0  # the small-N bias: ~dim^2/frames, nothing real
    # the baselines stand for the comparison's own 20/20, extrapolated: a pool of 20 cannot give two 20s
    assert (k.baseline_n_gen, k.baseline_n_ref, k.baseline_method) == (20, 20, "extrapolated")
    assert f.baseline_low <= f.value <= f.baseline_high and k.baseline_low <= k.value <= k.baseline_high
    far = distance.distance("kad", [c + 1.0 for c in gen], ref, embedding="test", n_boot=100)
    assert far.ci[0] > k.ci[1]
    inf = distance.fad_inf(gen, ref)
    assert inf["value"] < f.value and inf["slope"] > 0  # FAD falls as 1/n: the extrapolation is lower


def test_same_n_baseline_and_matched_subsets():
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal((2, 3)) for _ in range(50)]
    drawn = distance.same_n_baseline("fad", ref, 10, 30)
    assert (drawn.n_gen, drawn.n_ref, drawn.method) == (
        10,
        30,
        "drawn",
    ) and 0 < drawn.low < drawn.value < drawn.high
    far = distance.same_n_baseline("fad", ref, 40, 50)  # pool too small: extrapolated, never drawn at 25/25
    assert (far.n_gen, far.n_ref, far.method) == (40, 50, "extrapolated") and "1/N form" in far.note
    sub = distance.matched(ref, 7, seed=3)
    assert len(sub) == 7 and [id(x) for x in sub] == [id(x) for x in distance.matched(ref, 7, seed=3)]
    with pytest.raises(distance.DistanceError):
        distance.distance("fid", ref, ref, embedding="x")


def test_per_note_scores_rank_the_right_note_first():
    rng = np.random.default_rng(2)
    ref = [rng.standard_normal((4, 8)) for _ in range(30)]
    near, far = rng.standard_normal((4, 8)), rng.standard_normal((4, 8)) + 3.0
    scores = distance.note_scores([near, far], ref, embedding="test")
    assert scores[0].fad < scores[1].fad and scores[0].kad < scores[1].kad
    assert scores[0].frames == 4 and scores[0].embedding == "test"


# --------------------------------------------------------------------------- 5-way choice


def test_five_way_never_offers_the_targets_ontology_relatives():
    from tasks.judges.clap import five_way
    from tasks.probesets.descriptions import ontology_relatives, vocabulary

    labels = sorted(vocabulary())
    scores = {label: float(i) for i, label in enumerate(labels)}
    assert {"Animal", "Domestic_animals_and_pets", "Bark"} <= ontology_relatives("Dog")
    assert "Dog" in ontology_relatives("Bark") and ontology_relatives("not-a-label") == set()
    for target in labels:
        v = five_way(scores, target, seed=0)
        assert not set(v["choices"]) & ontology_relatives(target), target
        assert v["choices"] == five_way(scores, target, seed=0)["choices"] and v["seed"] == 0
        assert v["n_labels"] == 200 - len(ontology_relatives(target))


def test_choices_are_seeded_and_expected_accuracy_exact():
    vocab = [f"c{i}" for i in range(8)]
    a = choices.draw("c3", vocab, seed=7)
    assert a == choices.draw("c3", vocab, seed=7) and "c3" in a and len(set(a)) == 5
    assert any(choices.draw("c3", vocab, seed=s) != a for s in range(5))
    scores = {f"c{i}": float(i) for i in range(8)}  # c5 has 2 labels above it
    brute = [
        all(scores["c5"] > scores[d] for d in ds)
        for ds in itertools.combinations([v for v in vocab if v != "c5"], 4)
    ]
    assert (
        choices.expected_accuracy(scores, "c5")
        == pytest.approx(np.mean(brute))
        == pytest.approx(comb(5, 4) / comb(7, 4))
    )
    assert choices.expected_accuracy(scores, "c7") == 1.0 and choices.expected_accuracy(scores, "c0") == 0.0
    assert choices.rank(scores, "c7") == 1


# --------------------------------------------------------------------------- gate


@pytest.fixture()
def wavs(tmp_path):
    good = tone(440, 1.0)
    stereo = np.stack([good, good], axis=1)
    nan = good.copy()
    nan[100:110] = np.nan
    inf = good.copy()
    inf[5] = np.inf
    clipped = np.clip(good * 4, -1, 1)
    dc = good * 0.2 + 0.3
    files = {
        "good": write(tmp_path / "good.wav", good),
        "stereo": write(tmp_path / "stereo.wav", stereo),
        "rate": write(tmp_path / "rate.wav", tone(440, 1.0, sr=44100), sr=44100),
        "long": write(tmp_path / "long.wav", tone(440, 3.0)),
        "absurd": write(tmp_path / "absurd.wav", tone(440, 20.0, sr=8000), sr=8000),
        "tiny": write(tmp_path / "tiny.wav", good[:200]),
        "empty": write(tmp_path / "empty.wav", np.zeros(0, np.float32)),
        "silent": write(tmp_path / "silent.wav", np.zeros(SR, np.float32)),
        "nan": write(tmp_path / "nan.wav", nan, subtype="FLOAT"),
        "inf": write(tmp_path / "inf.wav", inf, subtype="FLOAT"),
        "clipping": write(tmp_path / "clipping.wav", clipped),
        "over": write(tmp_path / "over.wav", good * 3, subtype="FLOAT"),
        "dc": write(tmp_path / "dc.wav", dc),
        "lowrate": write(tmp_path / "lowrate.wav", np.zeros(100, np.float32) + 0.1, sr=200),
    }
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    files["unreadable"] = tmp_path / "garbage.wav"
    files["missing"] = tmp_path / "nope.wav"
    return files


def test_gate_accepts_a_good_file(wavs):
    g = gate.check(wavs["good"], sr=SR, seconds=1.0, channels=1)
    assert g.ok and g.problems == [] and g.sample_rate == SR and g.duration_s == 1.0 and g.sha256


@pytest.mark.parametrize(
    "kind,asked,problem,fatal",
    [
        ("missing", {}, "missing", True),
        ("unreadable", {}, "unreadable", True),
        ("empty", {}, "empty", True),
        ("silent", {}, "silent", True),
        ("nan", {}, "nan", True),
        ("inf", {}, "inf", True),
        ("tiny", {}, "absurd_length", True),
        ("absurd", {"seconds": 1.0}, "absurd_length", True),
        ("lowrate", {}, "absurd_sample_rate", True),
        ("clipping", {}, "clipping", False),
        ("over", {}, "clipping", False),
        ("dc", {}, "dc_offset", False),
        ("rate", {"sr": SR}, "sample_rate", False),
        ("stereo", {"channels": 1}, "channels", False),
        ("long", {"seconds": 1.0}, "duration", False),
    ],
)
def test_gate_names_every_malformed_kind(wavs, kind, asked, problem, fatal):
    g = gate.check(wavs[kind], **asked)
    assert problem in gate.problem_names(g.problems), g.problems
    assert g.ok is (not fatal)


def test_shared_preprocessing(wavs):
    x = audio.prepare(wavs["rate"], 16000)
    assert x.dtype == np.float32 and len(x) == 16000
    stereo = audio.prepare(wavs["stereo"], 16000, min_seconds=2.0)
    assert len(stereo) == 32000 and np.allclose(stereo[:16000], audio.prepare(wavs["good"], 16000), atol=1e-4)
    nan = audio.prepare(wavs["nan"], 16000, loudness="peak")
    assert np.all(np.isfinite(nan)) and np.max(np.abs(nan)) == pytest.approx(audio.PEAK_TARGET, rel=1e-4)


# --------------------------------------------------------------------------- cache


def test_cache_hit_never_recomputes(tmp_path):
    from audioprobe.schema import Judgement

    cache = JudgementCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return Judgement(judge="x/y", judge_version="1", audio_sha256="ab" * 32, params={"a": 1}, score=0.5)

    first = cache.get_or_compute("ab" * 32, "x/y", "1", {"a": 1}, compute)
    second = cache.get_or_compute("ab" * 32, "x/y", "1", {"a": 1}, compute)
    assert len(calls) == 1 and not first.cached and second.cached and second.score == 0.5
    cache.get_or_compute("ab" * 32, "x/y", "2", {"a": 1}, compute)  # new version: recomputed
    cache.get_or_compute("ab" * 32, "x/y", "1", {"a": 2}, compute)  # new params: recomputed
    assert len(calls) == 3
    from tasks.judges.cache import refreshed

    with refreshed():  # retry --only judging: judged again, and the new judgement is what is kept
        again = cache.get_or_compute("ab" * 32, "x/y", "1", {"a": 1}, compute)
    assert len(calls) == 4 and not again.cached
    assert cache.get_or_compute("ab" * 32, "x/y", "1", {"a": 1}, compute).cached and len(calls) == 4


# --------------------------------------------------------------------------- pitch


@pytest.mark.parametrize("midi,harmonics", [(28, 6), (40, 1), (52, 8), (60, 1), (69, 4), (81, 1), (93, 2)])
def test_pitch_on_tones_across_the_range(tmp_path, midi, harmonics):
    from tasks.judges import pitch

    hz = pitch.midi_to_hz(midi)
    path = write(tmp_path / f"{midi}.wav", tone(hz, 1.0, harmonics=harmonics))
    j = cached(pitch.PitchJudge(model="tiny"), JudgementCache(tmp_path / "c")).judge(
        [path], [note_item(midi)]
    )[0]
    assert j.values["measurable"] and abs(j.values["cents_error"]) < 35, j.values
    assert j.correct and not j.values["octave_error"]


def test_pitch_octave_error_unmeasurable_silence_and_determinism(tmp_path):
    from tasks.judges import pitch

    judge = cached(pitch.PitchJudge(model="tiny"), JudgementCache(tmp_path / "c"))
    path = write(tmp_path / "c5.wav", tone(pitch.midi_to_hz(72), 1.0))
    j = judge.judge([path], [note_item(60)])[0]
    assert j.values["octave_error"] and j.values["octaves"] == 1 and not j.correct
    again = pitch.measure(audio.prepare(path, 16000, loudness="peak"), 60, model="tiny")
    assert again["f0_hz"] == j.values["f0_hz"]  # no dither, no random decoder
    assert judge.judge([path], [note_item(60)])[0].cached
    high = judge.judge([path], [note_item(100)])[0]
    assert high.values["measurable"] is False and high.correct is None
    silent = write(tmp_path / "silent.wav", np.zeros(SR, np.float32))
    s = judge.judge([silent], [note_item(60)])[0]
    assert s.values["f0_hz"] is None and s.values["reason"] and s.correct is False and s.error is None


# --------------------------------------------------------------------------- VGGish


@pytest.fixture(scope="module")
def vggish_ckpt(tmp_path_factory):
    import torch

    from tasks.judges import vggish

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vggish") / vggish.CHECKPOINT_NAME
    torch.save(vggish.build_model().state_dict(), path)
    return path


def test_vggish_state_dict_is_torchvggish_format(vggish_ckpt):
    import torch

    state = torch.load(vggish_ckpt, weights_only=True)
    assert state["features.0.weight"].shape == (64, 1, 3, 3)
    assert state["features.13.weight"].shape == (512, 512, 3, 3)
    assert state["embeddings.0.weight"].shape == (4096, 12288)
    assert state["embeddings.4.weight"].shape == (128, 4096)
    assert len(state) == 18


def test_vggish_loads_and_embeds_without_final_relu(vggish_ckpt, tmp_path):
    from tasks.judges import vggish
    from tasks.judges.embeddings import VGGishEmbedding, embed_files

    ex = vggish.examples(tone(1000, 4.0))
    assert ex.shape == (4, 96, 64)
    assert vggish.examples(tone(1000, 0.3)).shape == (1, 96, 64)  # padded to one example
    band = np.argmax(ex[1].mean(axis=0))
    centres = 700 * (
        np.exp(np.linspace(vggish._hz_to_mel(125), vggish._hz_to_mel(7500), 66)[1:-1] / 1127) - 1
    )
    assert abs(centres[band] - 1000) < 80  # the 1 kHz tone lands in the 1 kHz band
    emb = VGGishEmbedding(vggish_ckpt)
    files = [write(tmp_path / f"{i}.wav", tone(200 * (i + 1), 2.0)) for i in range(3)]
    out = embed_files(emb, files, cache_dir=tmp_path / "emb")
    assert [o.shape for o in out] == [(2, 128)] * 3
    assert min(float(o.min()) for o in out) < 0  # the TF reference has no ReLU on the embedding
    again = embed_files(emb, files, cache_dir=tmp_path / "emb")  # from the embedding cache
    assert all(np.array_equal(a, b) for a, b in zip(out, again))


def test_vggish_checkpoint_errors_are_clear(vggish_ckpt, tmp_path):
    import torch

    from tasks.judges import vggish

    with pytest.raises(vggish.CheckpointError, match="does not exist"):
        vggish.load_model(tmp_path / "missing.pth")
    state = torch.load(vggish_ckpt, weights_only=True)
    del state["embeddings.4.bias"]
    state["features.0.weight"] = torch.zeros(32, 1, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(
        vggish.CheckpointError, match="missing .*embeddings.4.bias.*wrong shapes .*features.0.weight"
    ):
        vggish.load_model(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(vggish.CheckpointError, match="not a torch state dict"):
        vggish.load_model(junk)


# --------------------------------------------------------------------------- CLAP


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    return tiny_clap_checkpoint(tmp_path_factory.mktemp("clap"))


def test_clap_loads_a_saved_checkpoint_and_judges(clap_folder, tmp_path):
    from tasks.judges import clap

    vocab = {f"label{i}": f"thing number {i}" for i in range(10)}
    judge = clap.ClapJudge(clap_folder, vocabulary=vocab, seed=1)
    assert judge.logit_scale == pytest.approx(20.0, rel=1e-5)  # read from the checkpoint, not assumed
    assert judge.name == "classify/clap-clap-tiny"
    wav = write(tmp_path / "a.wav", tone(440, 2.0, sr=44100), sr=44100)
    cache = JudgementCache(tmp_path / "c")
    j = cached(judge, cache).judge([wav], [label_item("label3")])[0]
    v = j.values
    assert len(v["choices"]) == 5 and "label3" in v["choices"] and v["chosen"] in v["choices"]
    assert 0.2 <= v["confidence"] <= 1.0 and 0.0 <= v["expected_accuracy"] <= 1.0 and v["n_labels"] == 10
    assert cached(judge, cache).judge([wav], [label_item("label3")])[0].cached
    assert judge.audio_embeddings([audio.prepare(wav, 48000)]).shape == (1, 16)


def test_clap_checkpoint_errors_are_clear(tmp_path):
    from tasks.judges import clap
    from tasks.judges.vggish import CheckpointError

    with pytest.raises(CheckpointError, match="no config.json"):
        clap.ClapJudge(tmp_path / "nothing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "clap"}')
    with pytest.raises(CheckpointError, match="not a loadable ClapModel"):
        clap.ClapJudge(bad)


# --------------------------------------------------------------------------- offline classifier


def test_offline_classifier_recognises_distinct_sounds(tmp_path):
    from tasks.judges.classify import JUDGE, OfflineClassifier

    bank = {
        k: [write(tmp_path / "refs" / k / f"{i}.wav", synth_class(k, i)) for i in range(3)]
        for k in SYNTH_CLASSES
    }
    clf = OfflineClassifier(bank, cache_dir=tmp_path / "emb", seed=0)
    cache = JudgementCache(tmp_path / "c")
    right = 0
    for k in SYNTH_CLASSES:
        new = write(tmp_path / "gen" / f"{k}.wav", synth_class(k, 99))
        j = cached(clf, cache).judge([new], [label_item(k)])[0]
        assert j.judge == JUDGE and j.values["judge"] == JUDGE and len(j.values["choices"]) == 5
        right += bool(j.correct)
    assert right >= 5
    loo = cached(clf.configured(exclude_self=True), cache).judge(
        [bank["whistle"][0]], [label_item("whistle")]
    )[0]
    assert loo.values["rank"] >= 1 and loo.correct  # its two siblings are still in the bank


# --------------------------------------------------------------------------- speech


@pytest.mark.skipif(
    espeak("x", Path("/tmp/.audioprobe-espeak-probe.wav")) is None, reason="espeak-ng not installed"
)
def test_speech_on_real_speech_and_silence(tmp_path):
    from tasks.judges import speech

    judge = cached(speech.SpeechJudge(), JudgementCache(tmp_path / "c"))
    words = ["yes", "no", "up", "left", "right", "three", "four", "house", "bird", "marvin"]
    right = 0
    for w in words:
        j = judge.judge([espeak(w, tmp_path / f"{w}.wav")], [label_item(w, "speech")])[0]
        assert j.values["choices"].count(w) == 1 and len(j.values["choices"]) == 5
        right += bool(j.correct)
    assert right >= 7, right  # measured 10/10; chance is 2/10
    silent = write(tmp_path / "silent.wav", np.zeros(SR, np.float32))
    s = judge.judge([silent], [label_item("dog", "speech")])[0]
    assert s.correct is False and s.values["chosen"] is None and "silent" in s.error


# --------------------------------------------------------------------------- reference points


def test_reference_points_notes_and_speech(tmp_path, monkeypatch):
    """Every control through the real judges: a sine at the target and the held-out real note hit the pitch,
    silence and noise do not; the held-out note is closest to its references; speech chance is measured."""
    from audioprobe.schema import ProbeItem
    from audioprobe.settings import get_settings
    from tasks.judges import controls

    monkeypatch.setenv("AUDIOPROBE_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    try:
        refs = [
            write(
                tmp_path / "ref" / f"kb-{60 + (i % 2) * 7:03d}-{i:03d}.wav",
                tone(440 * 2 ** ((60 + (i % 2) * 7 - 69) / 12) * (1 + 0.002 * i), 4.0, harmonics=6),
            )
            for i in range(6)
        ]
        note = ProbeItem(
            id="notes/test/kb-C4",
            tier="notes",
            label="keyboard_acoustic",
            dataset="test",
            pitch=60,
            instrument_family="keyboard",
            references=[str(r) for r in refs],
        )
        points = controls.reference_points("notes", [note], tmp_path / "ctl")
        by = {(p.control, p.judge.split("/")[0]): p for p in points}
        assert {c for c, _ in by} == set(controls.CONTROLS["notes"])
        assert by[("sine_at_target", "pitch")].correct and by[("held_out_real", "pitch")].correct
        assert not by[("white_noise", "pitch")].correct and not by[("silence", "pitch")].correct
        assert by[("silence", "pitch")].gate_ok is False  # judged anyway, the gate's verdict beside it
        fad = {
            c: by[(c, "distance")].values["fad"] for c in ("held_out_real", "white_noise", "sine_at_target")
        }
        assert fad["held_out_real"] < fad["sine_at_target"] < fad["white_noise"]
        assert by[("held_out_real", "distance")].values["n_ref"] == 5  # the held-out clip is not its own ref
        words = [w for w in ("yes", "no", "left") if espeak(w, tmp_path / "w" / w / "0.wav")]
        speech_items = [
            ProbeItem(
                id=w,
                tier="speech",
                label=w,
                dataset="test",
                references=[
                    str(espeak(w, tmp_path / "w" / w / f"{i}.wav", speed=120 + 20 * i)) for i in range(2)
                ],
            )
            for w in words
        ]
        sp = controls.reference_points("speech", speech_items, tmp_path / "ctl")
        chance = controls.empirical_chance(sp)
        # silence is never decoded: an abstention, left out of the chance, counted apart
        assert chance["n"] + chance["abstained"] == 3 * len(words) and chance["abstained"] >= len(words)
        assert "silence" not in chance["controls"]
        assert sum(p.correct for p in sp if p.control == "held_out_real") >= len(words) - 1
        controls.save(tmp_path, "speech", sp)
        assert controls.has_tier(tmp_path, "speech") and len(controls.load(tmp_path)) == len(sp)
    finally:
        get_settings.cache_clear()


# --------------------------------------------------------------------------- CLI


def _cli(*args, env_dir: Path) -> tuple[int, dict]:
    env = dict(
        os.environ,
        AUDIOPROBE_DATA_DIR=str(env_dir / "data"),
        AUDIOPROBE_CACHE_DIR=str(env_dir / "cache"),
        AUDIOPROBE_JUDGE_DEVICE="cpu",
    )
    exe = Path(sys.executable).parent / "audioprobe"  # the entry point, as a user runs it
    p = subprocess.run(
        [str(exe), "judge", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else {"stderr": p.stderr})


def test_cli_gate_pitch_fad(tmp_path, wavs):
    rc, out = _cli("gate", str(wavs["rate"]), "--sr", "16000", "--seconds", "1", env_dir=tmp_path)
    assert rc == 0 and out["ok"] and out["problems"][0].startswith("sample_rate")
    rc, out = _cli("gate", str(wavs["silent"]), env_dir=tmp_path)
    assert rc == 1 and not out["ok"]
    rc, out = _cli("pitch", str(wavs["good"]), "--midi", "69", env_dir=tmp_path)
    assert rc == 0 and abs(out["cents_error"]) < 35 and out["measurable"] and out["octave_error"] is False
    for i in range(6):
        write(tmp_path / "gen" / f"{i}.wav", synth_class("whistle", i))
        write(tmp_path / "ref" / f"{i}.wav", synth_class("rumble", i))
        write(tmp_path / "ref2" / f"{i}.wav", synth_class("rumble", 10 + i))
    rc, far = _cli(
        "fad", str(tmp_path / "gen"), str(tmp_path / "ref"), "--embedding", "logmel-stats", env_dir=tmp_path
    )
    rc2, near = _cli(
        "fad", str(tmp_path / "ref2"), str(tmp_path / "ref"), "--embedding", "logmel-stats", env_dir=tmp_path
    )
    assert (
        rc == rc2 == 0 and far["embedding"] == "logmel-stats-v1" and far["n_gen"] == 6 and far["n_ref"] == 6
    )
    assert far["fad"] > 5 * near["fad"] and far["baseline"] is not None and len(far["ci"]) == 2
    rc, out = _cli(
        "fad", str(tmp_path / "gen"), str(tmp_path / "ref"), "--embedding", "vggish", env_dir=tmp_path
    )
    assert rc == 2 and "no VGGish checkpoint" in out["stderr"], out
    rc, kad = _cli(
        "distance",
        str(tmp_path / "ref"),
        str(tmp_path / "gen"),
        "--metric",
        "kad",
        "--embedding",
        "logmel-stats",
        "--boot",
        "50",
        env_dir=tmp_path,
    )
    assert (
        rc == 0 and kad["metric"] == "kad" and kad["n_ref"] == 6 and kad["n_gen"] == 6 and kad["window_s"] > 0
    )
    assert kad["ci"][0] > kad["baseline"] and kad["bandwidth"] > 0 and kad["embedding"] == "logmel-stats-v1"
    assert (kad["baseline_n_gen"], kad["baseline_n_ref"]) == (6, 6) and "extrapolated" in kad["note"]
    # one path: judge fad, judge distance and the run's per-class scores agree on the same folders
    rc, dist = _cli(
        "distance",
        str(tmp_path / "ref"),
        str(tmp_path / "gen"),
        "--metric",
        "fad",
        "--embedding",
        "logmel-stats",
        env_dir=tmp_path,
    )
    from tasks.judges.fad import fad_per_class

    (report,), _ = fad_per_class(
        {"c": sorted((tmp_path / "gen").glob("*.wav"))},
        {"c": sorted((tmp_path / "ref").glob("*.wav"))},
        embedding="logmel-stats",
    )
    assert rc == 0 and far["window_s"] == dist["window_s"] == report.window_s
    for cli_fad in (far, {"fad": dist["value"], "ci": dist["ci"], "baseline": dist["baseline"]}):
        assert cli_fad["fad"] == pytest.approx(report.fad, rel=1e-9)
        assert cli_fad["ci"] == pytest.approx(list(report.ci), rel=1e-9)
        assert cli_fad["baseline"] == pytest.approx(report.baseline, rel=1e-9)


# ------------------------------------------------------------- per-class FAD and validation helpers


def test_fad_per_class_and_validation_helpers(tmp_path, monkeypatch):
    from tasks.judges import validate
    from tasks.judges.embeddings import LogMelStats
    from tasks.judges.fad import fad_per_class

    monkeypatch.setenv("AUDIOPROBE_CACHE_DIR", str(tmp_path / "cache"))
    from audioprobe.settings import get_settings

    get_settings.cache_clear()
    try:
        refs = {
            k: [write(tmp_path / "r" / k / f"{i}.wav", synth_class(k, i)) for i in range(6)]
            for k in SYNTH_CLASSES
        }
        gen = {
            "whistle": [write(tmp_path / "g" / f"{i}.wav", synth_class("whistle", 50 + i)) for i in range(4)],
            "clicks": [write(tmp_path / "g2" / f"{i}.wav", synth_class("low_hum", 50 + i)) for i in range(4)],
        }
        results, macro = fad_per_class(gen, refs, embedding=LogMelStats(), group="instrument", n_boot=20)
        by = {r.label: r for r in results}
        assert by["whistle"].fad < by["clicks"].fad  # right sound vs wrong sound for the class
        assert by["whistle"].n_gen == 4 and by["whistle"].n_ref == 6 and by["whistle"].group == "instrument"
        assert by["rumble"].fad is None and "rumble" in macro["unscored"] and macro["classes"] == 2
        w = by["whistle"]
        assert w.kad is not None and w.kad_ci[0] <= w.kad <= w.kad_ci[1] and w.window_s > 0
        assert len(w.per_note) == 4 and all(v["band"] is None for v in w.per_note.values())  # logmel: no band
        assert "VGGish" in w.band_note and by["clicks"].kad > w.kad
        loo = validate.knn_leave_one_out(refs, JudgementCache(tmp_path / "c"))
        assert loo["n"] == 36 and loo["recognises"] and loo["accuracy"] >= 0.8
    finally:
        get_settings.cache_clear()
    assert validate.wilson(0, 0) is None
    lo, hi = validate.wilson(8, 10)
    assert lo < 0.8 < hi and validate._rate(2, 10, 0.2)["recognises"] is False
