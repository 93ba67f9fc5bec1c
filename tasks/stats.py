"""Small statistics, one home each: the Wilson interval of the report and the judges' validation, and
the statistics of protocols beyond single shot: pass@k, paired tests, multiple-test correction, and
confidence intervals that resample whole items.

Pure functions of numbers; no I/O. Why each choice:
- pass@k uses HumanEval's unbiased estimator 1 - C(n-c, k)/C(n, k) (Chen et al. 2021), computed as a
  product so large n never overflows; the naive "any of the first k" is biased and order-dependent.
- McNemar's test uses the exact binomial (two-sided, mid-p off) when the discordant pairs are few
  (b + c < 25), where the chi-square approximation is known to be poor; above that the chi-square with
  continuity correction. Only the discordant pairs carry information about a paired difference.
- Intervals and the paired bootstrap resample *items*: samples and repair rounds of one item are not
  independent draws, so resampling clips would make intervals too narrow.
- No interval is ever zero-wide. A percentile bootstrap over items that all agree (every item passed,
  or none did) returns [p, p], and under ~10 items it undercovers. There, rates in [0, 1] fall back to
  Wilson's score interval on the item count (an item with several clips counts once, at its mean);
  paired differences in [-1, 1] to Wilson's on (d + 1) / 2 mapped back. Each interval says which it is.
- Holm's step-down keeps the family-wise error across instruments and classes without Bonferroni's cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EXACT_BELOW = 25  # discordant pairs under which McNemar uses the exact binomial test
DEFAULT_RESAMPLES = 2000


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if not 0 <= c <= n:
        raise ValueError(f"pass@k: correct count {c} outside 0..{n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k: k={k} needs 1 <= k <= n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(per_item: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k averaged over items, each given as (n samples, c correct)."""
    if not per_item:
        return float("nan")
    return float(np.mean([pass_at_k(n, c, k) for n, c in per_item]))


@dataclass(frozen=True)
class McNemar:
    """b: A right where B was wrong; c: B right where A was wrong; n: pairs compared."""

    b: int
    c: int
    n: int
    p_value: float
    method: str  # "exact" or "chi2-cc"
    statistic: float | None = None


def _binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial test of k successes in n at p = 1/2 (doubling the smaller tail)."""
    if n == 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """McNemar's test on paired per-item success of A and B (same items, same order)."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"mcnemar: {len(a_correct)} results of A against {len(b_correct)} of B; pairs must match")
    b = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    c = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    return mcnemar_counts(b, c, len(a_correct))


def mcnemar_counts(b: int, c: int, n: int | None = None) -> McNemar:
    n = b + c if n is None else n
    if b + c < EXACT_BELOW:
        return McNemar(b, c, n, _binom_two_sided(b, b + c), "exact")
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return McNemar(b, c, n, math.erfc(math.sqrt(statistic / 2)), "chi2-cc", statistic)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


MIN_BOOTSTRAP_ITEMS = 10  # below this a percentile bootstrap undercovers: Wilson on the item count instead


def _bounded(values: np.ndarray, low: float, high: float) -> bool:
    return bool(np.all((values >= low - 1e-12) & (values <= high + 1e-12)))


def item_interval(
    per_item: Sequence[Sequence[float]], *, resamples: int = DEFAULT_RESAMPLES, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float, str]:
    """(mean, low, high, method) of a per-clip value whose clips are grouped by item.

    method is "bootstrap" (items resampled whole; the mean weights each item by its clips, as the
    point estimate does) or "wilson" (fewer than MIN_BOOTSTRAP_ITEMS items, or every item agrees: a
    rate in [0, 1] on the item count). A value outside [0, 1] that cannot be bootstrapped has no
    interval (nan, "none"), never a zero-wide one.
    """
    groups = [np.asarray(g, dtype=float) for g in per_item if len(g)]
    if not groups:
        return float("nan"), float("nan"), float("nan"), "none"
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    point = float(sums.sum() / counts.sum())
    item_means = sums / counts
    if len(groups) < MIN_BOOTSTRAP_ITEMS or np.all(item_means == item_means[0]):
        if not _bounded(item_means, 0.0, 1.0):
            return point, float("nan"), float("nan"), "none"
        z = _z(level)
        low, high = wilson(float(item_means.sum()), len(groups), z)  # type: ignore[misc]
        return point, min(low, point), max(high, point), "wilson"
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(resamples, len(groups)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    alpha = (1 - level) / 2
    return point, float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), "bootstrap"


def item_bootstrap_ci(
    per_item: Sequence[Sequence[float]], *, resamples: int = DEFAULT_RESAMPLES, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high) of item_interval, for callers that do not show the method."""
    return item_interval(per_item, resamples=resamples, level=level, seed=seed)[:3]


def _z(level: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


@dataclass(frozen=True)
class PairedBootstrap:
    mean_diff: float  # mean over items of A - B
    low: float
    high: float
    p_value: float  # two-sided: how often the resampled difference falls on the other side of zero
    n: int
    method: str = "bootstrap"  # or "wilson" (few items, or all equal: see the module's docstring), "none"


def paired_bootstrap(
    a_scores: Sequence[float], b_scores: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95, seed: int = 0,
) -> PairedBootstrap:
    """Per-item score differences: a bootstrap interval (items resampled whole, never A and B apart) and
    the p-value of a sign-flip permutation test. The bootstrap's own "p" collapses on few items (two
    equal differences resample to the same mean every time and would read as p < 0.001); flipping the
    signs is exact for small n, so 2 items can never show a difference (p = 0.5 at best)."""
    if len(a_scores) != len(b_scores):
        raise ValueError(f"paired_bootstrap: {len(a_scores)} scores of A against {len(b_scores)} of B")
    diffs = np.asarray(a_scores, dtype=float) - np.asarray(b_scores, dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    n = len(diffs)
    if n == 0:
        return PairedBootstrap(float("nan"), float("nan"), float("nan"), 1.0, 0, "none")
    observed = float(diffs.mean())
    p = sign_flip_p(diffs, resamples=resamples, seed=seed)
    if n < MIN_BOOTSTRAP_ITEMS or np.all(diffs == diffs[0]):
        if not _bounded(diffs, -1.0, 1.0):
            return PairedBootstrap(observed, float("nan"), float("nan"), p, n, "none")
        low, high = wilson(float(((diffs + 1) / 2).sum()), n, _z(level))  # type: ignore[misc]
        return PairedBootstrap(observed, min(2 * low - 1, observed), max(2 * high - 1, observed), p, n, "wilson")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    alpha = (1 - level) / 2
    return PairedBootstrap(observed, float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), p, n)


EXACT_FLIPS_UP_TO = 16  # 2^16 sign patterns enumerated; above, a Monte Carlo sample of them


def sign_flip_p(diffs: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> float:
    """Two-sided p of a paired mean difference under the null that each item's sign is a coin flip."""
    diffs = np.asarray(diffs, dtype=float)
    n = len(diffs)
    observed = abs(diffs.mean()) if n else 0.0
    if n == 0 or observed == 0:
        return 1.0
    if n <= EXACT_FLIPS_UP_TO:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        return float(np.mean(np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(resamples, n))
    return float((1 + np.sum(np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12)) / (resamples + 1))


def verdict(name_a: str, name_b: str, diff: float, p_adjusted: float, alpha: float = 0.05) -> str:
    """The sentence a report may print: a direction only where the adjusted test says so."""
    if not math.isfinite(p_adjusted) or p_adjusted >= alpha or diff == 0 or not math.isfinite(diff):
        return f"no difference shown (p={p_adjusted:.3g})"
    better, worse = (name_a, name_b) if diff > 0 else (name_b, name_a)
    threshold = next(t for t in (0.001, 0.01, 0.05) if p_adjusted < t)
    return f"{better} better than {worse} at p<{threshold:g}"


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval for k successes in n trials (95 % at z = 1.96); None when n is 0.

    No trials is no interval, not (None, None) and not (0, 1): the caller says "no data". k may be
    fractional (items with several clips count once, at their mean).
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
