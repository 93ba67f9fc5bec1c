"""tasks.stats against hand-computed values and published tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks import stats


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),  # pass@1 is the plain success rate
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer than k failures: some draw must pass
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 0, 2, 0.0),
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_matches_hand_computed(n, c, k, expected):
    assert stats.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_unbiased_where_first_k_is_not():
    # Averaging "any of k drawn without replacement" over every order gives the estimator's value.
    from itertools import combinations

    outcomes = [1, 0, 0, 1, 0, 0]
    draws = list(combinations(outcomes, 3))
    exhaustive = sum(any(d) for d in draws) / len(draws)
    assert stats.pass_at_k(6, 2, 3) == pytest.approx(exhaustive)
    assert stats.mean_pass_at_k([(6, 2), (6, 0)], 3) == pytest.approx(exhaustive / 2)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="k=3"):
        stats.pass_at_k(2, 1, 3)
    with pytest.raises(ValueError, match="outside"):
        stats.pass_at_k(2, 3, 1)


def test_mcnemar_exact_on_a_small_table():
    # b=1, c=9: two-sided exact binomial p = 2 * (C(10,0) + C(10,1)) / 2**10
    a = [True] * 1 + [False] * 9 + [True] * 5 + [False] * 5
    b = [False] * 1 + [True] * 9 + [True] * 5 + [False] * 5
    result = stats.mcnemar(a, b)
    assert (result.b, result.c, result.n, result.method) == (1, 9, 20, "exact")
    assert result.p_value == pytest.approx(22 / 1024)


def test_mcnemar_chi_square_on_the_textbook_table():
    # Wikipedia's McNemar example: b=121, c=59 -> chi2 with continuity correction (|b-c|-1)^2/(b+c)
    result = stats.mcnemar_counts(121, 59, 314)
    assert result.method == "chi2-cc"
    assert result.statistic == pytest.approx(61**2 / 180)
    assert result.p_value == pytest.approx(5.45e-6, rel=0.02)


def test_mcnemar_without_discordant_pairs_shows_nothing():
    assert stats.mcnemar([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError, match="pairs must match"):
        stats.mcnemar([True], [True, False])


def test_holm_matches_hand_computed_and_keeps_order():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_item_bootstrap_resamples_items_not_clips():
    # Two items, each with many identical clips: clip resampling would give a near-zero width; items
    # resampled whole can only give the two item means, so the interval spans them.
    # Two items of 50 identical clips each: 2 votes, not 100. Clip resampling would give a near-zero width.
    per_item = [[0.0] * 50, [1.0] * 50]
    mean, low, high, method = stats.item_interval(per_item, resamples=500)
    assert mean == pytest.approx(0.5) and method == "wilson"
    assert (low, high) == pytest.approx(stats.wilson(1, 2), abs=1e-4)  # z 1.95996 against 1.96
    many = [[0.0] * 5, [1.0] * 5] * 10  # 20 items: the bootstrap over whole items
    mean, low, high, method = stats.item_interval(many, resamples=500)
    assert method == "bootstrap" and low < 0.5 < high and high - low > 0.2


def test_paired_bootstrap_sees_a_consistent_difference_and_not_noise():
    rng = np.random.default_rng(1)
    base = rng.normal(size=40)
    better = stats.paired_bootstrap(base + 0.5 + rng.normal(scale=0.1, size=40), base)
    assert better.mean_diff > 0.4 and better.low > 0 and better.p_value < 0.01
    noise = stats.paired_bootstrap(base + rng.normal(scale=0.1, size=40), base)
    assert noise.low < 0 < noise.high and noise.p_value > 0.05


def test_verdict_names_a_winner_only_below_alpha():
    assert stats.verdict("A", "B", 0.3, 0.004) == "A better than B at p<0.01"
    assert stats.verdict("A", "B", -0.3, 0.03) == "B better than A at p<0.05"
    assert stats.verdict("A", "B", 0.3, 0.2).startswith("no difference shown")


def test_paired_scores_on_two_items_never_show_a_difference():
    """Two items that both favour A: the sign-flip test's p is 0.5 (the bootstrap alone would say p<0.001)."""
    from tasks.stats import paired_bootstrap, verdict

    two = paired_bootstrap([0.9, 0.8], [0.0, 0.0])
    assert two.p_value == 0.5 and verdict("A", "B", two.mean_diff, two.p_value).startswith("no difference")
    ten = paired_bootstrap([0.9] * 10, [0.0] * 10)
    assert ten.p_value == 2 / 2**10  # only all-plus and all-minus are as extreme
    assert verdict("A", "B", ten.mean_diff, ten.p_value) == "A better than B at p<0.01"


@pytest.mark.parametrize(
    ("per_item", "k", "n"),
    [
        ([[0.0]], 0, 1),  # n = 1
        ([[1.0]], 1, 1),
        ([[0.0], [0.0]], 0, 2),  # the real run's pass@1 = 0 on 2 items, once shown as [0.0, 0.0]
        ([[1.0], [0.0], [1.0], [1.0], [0.0]], 3, 5),
        ([[1.0]] * 40, 40, 40),  # all pass: the bootstrap could only return [1, 1]
        ([[0.0]] * 40, 0, 40),  # all fail
        ([[1.0, 1.0, 1.0]] * 30, 30, 30),  # clips of one item count once
    ],
)
def test_item_interval_is_never_zero_wide_and_falls_back_to_wilson_on_items(per_item, k, n):
    mean, low, high, method = stats.item_interval(per_item)
    assert method == "wilson" and mean == pytest.approx(k / n)
    assert (low, high) == pytest.approx(stats.wilson(k, n), abs=1e-4)
    assert high - low > 0.05 and low <= mean <= high
    assert stats.item_bootstrap_ci(per_item) == (mean, low, high)


def test_wilson_fallback_matches_statsmodels_wilson():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for k, n in [(0, 1), (0, 2), (3, 5), (40, 40)]:
        want = proportion.proportion_confint(k, n, alpha=0.05, method="wilson")
        got = stats.item_interval([[1.0]] * k + [[0.0]] * (n - k))[1:3]
        assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("diffs", [[0.0], [1.0, 1.0], [0.5] * 5, [0.0] * 30, [1.0, -1.0, 0.0]])
def test_paired_interval_is_never_zero_wide(diffs):
    result = stats.paired_bootstrap(diffs, [0.0] * len(diffs))
    assert result.method == "wilson" and result.high - result.low > 0.05
    assert result.low <= result.mean_diff <= result.high and -1 <= result.low and result.high <= 1
    unbounded = stats.paired_bootstrap([5.0, 5.0], [0.0, 0.0])  # no bounded fallback: no interval, said so
    assert unbounded.method == "none" and math.isnan(unbounded.low)
