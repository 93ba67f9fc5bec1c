"""Fréchet distance between two sets of embeddings, with the statistics needed to read it.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2). The trace of the square root is the sum of
the square roots of the eigenvalues of S1 S2, which is similar to S2^1/2 S1 S2^1/2 (symmetric PSD), so
they come from two symmetric eigendecompositions, real by construction and 10x faster than sqrtm or a
general eig. Clearly negative eigenvalues (what sqrtm reports as an imaginary part) mean the product is
badly conditioned: we retry with eps on both diagonals (as the reference code does) before giving up
loudly. Shapes are asserted: a 1-D embedding must give a 1x1
covariance, never a scalar mistaken for one.

FAD on small samples is biased upwards; every score is shown beside a same-distribution baseline at the
comparison's own N and a bootstrap interval (tasks.judges.distance). `baseline` below, the references split
in halves, serves only `judge validate`'s ranking of classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRECHET_VERSION = "frechet-v1"
# The paper's human calibration (section 4.1.2): listeners heard single generated NSynth notes (4 s,
# 16 kHz) at per-note VGGish FADs of 5-25. Half-open bands: <10 highly, [10, 15) moderately, >=15 distinct.
PAPER_BANDS = ((10.0, "highly similar"), (15.0, "moderately similar"), (float("inf"), "distinct"))
CALIBRATED_EMBEDDINGS = ("vggish",)
CALIBRATED_WINDOW_S = 4.0


class FrechetError(ValueError):
    pass


def stats(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise FrechetError(f"embeddings must be (n, dim), got shape {emb.shape}")
    n, d = emb.shape
    if n < 2:
        raise FrechetError(f"need at least 2 embeddings for a covariance, got {n}")
    if not np.all(np.isfinite(emb)):
        raise FrechetError("embeddings contain NaN or inf")
    mu = emb.mean(axis=0)
    sigma = np.atleast_2d(np.cov(emb, rowvar=False))
    assert mu.shape == (d,) and sigma.shape == (d, d), (mu.shape, sigma.shape)
    return mu, sigma


def psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root by eigendecomposition; tiny negative eigenvalues (rounding) are zeroed."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(s1: np.ndarray, sqrt_s2: np.ndarray) -> tuple[float, float]:
    """tr((S1 S2)^1/2) = sum of sqrt(eig(S2^1/2 S1 S2^1/2)), and how negative the most negative eigenvalue is.

    S1 S2 is similar to the symmetric S2^1/2 S1 S2^1/2, so its eigenvalues are real and >= 0: a
    clearly negative one (relative to the largest) is what shows up as an imaginary part in sqrtm.
    """
    m = sqrt_s2 @ s1 @ sqrt_s2
    w = np.linalg.eigvalsh((m + m.T) / 2)
    scale = max(float(np.max(np.abs(w))), 1e-30)
    imag = max(0.0, -float(np.min(w))) / scale
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None)))), imag


def frechet_distance(
    mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, eps: float = 1e-6, imag_tol: float = 1e-3,
    sqrt_s2: np.ndarray | None = None,
) -> float:
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(s1).astype(np.float64), np.atleast_2d(s2).astype(np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise FrechetError(f"shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    tr_sqrt, imag = _trace_sqrt_product(s1, psd_sqrt(s2) if sqrt_s2 is None else sqrt_s2)
    if imag > imag_tol or not np.isfinite(tr_sqrt):
        offset = np.eye(d) * eps
        tr_sqrt, imag = _trace_sqrt_product(s1 + offset, psd_sqrt(s2 + offset))
        if imag > imag_tol or not np.isfinite(tr_sqrt):
            raise FrechetError(f"(S1 S2)^1/2 has imaginary part {imag:.3g} even with eps={eps}")
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    return max(fd, 0.0)  # rounding can give -1e-12 for identical sets


def fd_embeddings(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*stats(a), *stats(b))


def no_band_reason(embedding: str, scale: str = "note", window_s: float | None = CALIBRATED_WINDOW_S) -> str | None:
    """Why the paper's bands do not apply to this score, or None where they were calibrated."""
    if not embedding.startswith(CALIBRATED_EMBEDDINGS):
        return f"no band: the paper's bands were calibrated on VGGish, not {embedding}"
    if scale != "note":
        return "no band: the bands were calibrated on single notes' FAD, not on a class's FAD over many notes"
    if window_s is None or abs(window_s - CALIBRATED_WINDOW_S) > 0.05:
        return f"no band: calibrated on {CALIBRATED_WINDOW_S:g} s notes, not on a {window_s or 'variable'} s window"
    return None


def band(fad: float | None, embedding: str, scale: str = "note", window_s: float | None = CALIBRATED_WINDOW_S) -> str | None:
    """The paper's band of a per-note VGGish FAD at a 4 s window; None for any other score."""
    if fad is None or no_band_reason(embedding, scale, window_s):
        return None
    return next(name for limit, name in PAPER_BANDS if fad < limit)


def _stack(clips: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.atleast_2d(c) for c in clips], axis=0)


def baseline(ref_clips: Sequence[np.ndarray], seed: int = 0, repeats: int = 5) -> float | None:
    """Median FD between random halves of the references: what 'the same distribution' scores here."""
    if len(ref_clips) < 4:
        return None
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(repeats):
        order = rng.permutation(len(ref_clips))
        half = len(order) // 2
        a, b = _stack([ref_clips[i] for i in order[:half]]), _stack([ref_clips[i] for i in order[half:]])
        scores.append(fd_embeddings(a, b))
    return float(np.median(scores))


def bootstrap_ci(
    gen_clips: Sequence[np.ndarray], ref: np.ndarray, n_boot: int = 200, seed: int = 0, alpha: float = 0.05,
    groups: Sequence[str] | None = None,
) -> tuple[float, float] | None:
    """Interval over generated clips resampled with replacement (references held fixed).

    `groups` names each clip's item: with several samples per item the items are resampled whole, since
    clips of one item are not independent draws and resampling them apart narrows the interval.

    Resampling with replacement repeats clips, which shrinks the sample's spread and inflates FAD (its
    small-sample bias again): the raw percentile interval often lies entirely above the estimate. The
    bootstrap distribution is therefore re-centred on the estimate: its spread is what is reported.
    """
    units = [[i] for i in range(len(gen_clips))]
    if groups is not None:
        by_group: dict[str, list[int]] = {}
        for index, group in enumerate(groups):
            by_group.setdefault(group, []).append(index)
        units = list(by_group.values())
    if len(units) < 2:
        return None
    rng = np.random.default_rng(seed)
    mu_r, s_r = stats(ref)
    root = psd_sqrt(s_r)
    point = frechet_distance(*stats(_stack(gen_clips)), mu_r, s_r, sqrt_s2=root)
    scores = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(units), len(units))
        sample = _stack([gen_clips[i] for u in pick for i in units[u]])
        if sample.shape[0] < 2:
            continue
        scores.append(frechet_distance(*stats(sample), mu_r, s_r, sqrt_s2=root))
    lo, hi = np.quantile(scores, [alpha / 2, 1 - alpha / 2]) - (np.mean(scores) - point)
    return max(float(lo), 0.0), float(hi)
