"""Issue 21: baselines at the comparison's own N, estimators named for what they are (fadtk's FAD-inf,
kadtk's KAD beside ours, each checked against the peer's formula re-implemented from its source), and one
path for every set distance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from tasks.judges import distance, fad


def _clips(rng, n, dim=8, frames=4, shift=0.0):
    return [rng.standard_normal((frames, dim)) + shift for _ in range(n)]


@pytest.mark.parametrize("metric", ["fad", "kad"])
def test_baseline_at_the_comparisons_own_n_contains_same_distribution_sets(metric):
    """Fresh reference pools of 40 and fresh same-distribution sets of every size, 5 to 4x the pool: the
    value lies inside its baseline's 95 % range in about 95 % of trials. The old baseline, drawn at
    (min(n_gen, pool // 2), rest), sat far above FAD's value once n_gen outgrew half the pool."""
    rng = np.random.default_rng(11)
    for n_gen in (5, 20, 40, 160):
        hits = []
        for trial in range(20):
            ref, gen = _clips(rng, 40), _clips(rng, n_gen)
            d = distance.distance(metric, gen, ref, embedding="t", seed=trial, n_boot=2)
            assert (d.baseline_n_gen, d.baseline_n_ref, d.baseline_method) == (n_gen, 40, "extrapolated")
            hits.append(d.baseline_low <= d.value <= d.baseline_high)
        assert np.mean(hits) >= 0.8, (metric, n_gen, np.mean(hits))


def test_the_issues_example_reads_right():
    """110 generated, 110 references, one distribution: inside the baseline; a shifted set: above it."""
    rng = np.random.default_rng(5)
    ref, same, shifted = _clips(rng, 110, dim=16), _clips(rng, 110, dim=16), _clips(rng, 110, dim=16, shift=0.15)
    a = distance.distance("fad", same, ref, embedding="t", n_boot=2)
    b = distance.distance("fad", shifted, ref, embedding="t", n_boot=2)
    assert a.baseline_low <= a.value <= a.baseline_high
    assert b.value > b.baseline_high
    assert a.baseline_fit["form"].startswith("c0 + c1") and "extrapolated" in a.note


def test_baseline_is_drawn_where_the_pool_allows():
    rng = np.random.default_rng(2)
    ref = _clips(rng, 80)
    base = distance.same_n_baseline("fad", ref, 20, 40)
    assert (base.method, base.n_gen, base.n_ref, base.fit["sizes"]) == ("drawn", 20, 40, [[20, 40]])
    assert base.low < base.value < base.high


# --------------------------------------------------------------------------- FAD-inf: fadtk's score_inf


def _fadtk_calc_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """fadtk.fad.calc_frechet_distance (scipy's sqrtm, eps on the diagonals when it is not finite)."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _fadtk_score_inf(embeds, ref, seed, steps=25, min_n=500):
    """fadtk.fad.FrechetAudioDistance.score_inf, its loop as written, with its global np.random seeded."""
    mu_base, cov_base = ref.mean(0), np.cov(ref, rowvar=False)
    ns = [int(n) for n in np.linspace(min_n, len(embeds), steps)]
    np.random.seed(seed)
    results = []
    for n in ns:
        e = embeds[np.random.choice(embeds.shape[0], size=n, replace=True)]
        results.append([n, _fadtk_calc_frechet_distance(mu_base, cov_base, e.mean(0), np.cov(e, rowvar=False))])
    ys, xs = np.array(results), 1 / np.array(ns)
    slope, intercept = np.polyfit(xs, ys[:, 1], 1)
    return intercept, slope


def test_fad_inf_is_fadtks_score_inf():
    rng = np.random.default_rng(4)
    gen, ref = _clips(rng, 300, dim=6), _clips(rng, 200, dim=6, shift=0.3)  # 1,200 generated frames
    ours = distance.fad_inf(gen, ref, seed=7)
    intercept, slope = _fadtk_score_inf(np.concatenate(gen), np.concatenate(ref), seed=7)
    assert ours["value"] == pytest.approx(intercept, rel=1e-6, abs=1e-9)
    assert ours["slope"] == pytest.approx(slope, rel=1e-6)
    assert ours["frames"][0] == 500 and len(ours["frames"]) == 25


# --------------------------------------------------------------------------- KAD: ours and kadtk's


def _kadtk_kad(bg, ev):
    """kadtk.kad.calc_kernel_audio_distance(x=background, y=eval) with bandwidth=None: the median pairwise
    distance of y (torch.median: the lower middle value), gamma = 1 / (2 bw^2 + 1e-8), diagonals removed."""
    d = np.sqrt(((ev[:, None, :] - ev[None, :, :]) ** 2).sum(-1))[np.triu_indices(len(ev), 1)]
    bw = np.sort(d)[(len(d) - 1) // 2]
    gamma = 1 / (2 * bw**2 + 1e-8)
    k = lambda a, b: np.exp(-gamma * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    kxx, kyy = k(bg, bg), k(ev, ev)
    m, n = len(bg), len(ev)
    return 100 * ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                  - 2 * k(bg, ev).mean())


def test_kad_kadtk_convention_matches_kadtks_formula_and_ours_differs_on_purpose():
    rng = np.random.default_rng(9)
    gen, ref = _clips(rng, 12, dim=5), _clips(rng, 15, dim=5, shift=0.2)
    want = _kadtk_kad(np.concatenate(ref), np.concatenate(gen))
    assert distance.kad(gen, ref, convention="kadtk") == pytest.approx(want, rel=1e-9)
    d = distance.distance("kad", gen, ref, embedding="t", convention="kadtk", n_boot=20)
    assert d.value == pytest.approx(want, rel=1e-9) and d.convention == "kadtk"
    assert distance.kad(gen, ref) != pytest.approx(want, rel=1e-3)  # ours: reference bandwidth, no within-clip pairs
    with pytest.raises(distance.DistanceError, match="convention"):
        distance.kad(gen, ref, convention="other")


# --------------------------------------------------------------------------- one path


def test_score_sets_goes_through_the_one_path():
    rng = np.random.default_rng(3)
    gen, ref = _clips(rng, 12), _clips(rng, 30)
    via_fad = fad.score_sets(gen, ref, label="x", embedding="e", n_boot=50)
    d = distance.distance("fad", gen, ref, embedding="e", n_boot=50)
    assert (via_fad.fad, via_fad.ci, via_fad.baseline) == (d.value, d.ci, d.baseline)
    assert (via_fad.baseline_n_gen, via_fad.baseline_n_ref) == (12, 30)
