"""Calibration of the judges' distances against the listeners' ratings.

Per (embedding, metric, clip length): a cumulative-logit ordinal regression of the rating (highly <
moderately < not similar) on the per-note distance, P(rating <= k | d) = sigmoid(a_k - b d). A band
threshold is where the two sides are equally likely, d_k = a_k / b: below d_1 a clip is more often heard
"highly similar" than not, above d_2 more often "not similar". Each threshold carries a 95% percentile
bootstrap CI, resampling clips (all of a clip's ratings together: raters and repeats are not independent).
An isotonic fit of the mean rating is kept beside it as a model-free check of the curve's shape.

Agreement: Krippendorff's alpha (ordinal) between raters on each clip's first rating; each rater's own
consistency on the repeated trials; Spearman between judge distance and mean human rating; and for the
5-way tiers, the humans' accuracy against the target label beside the judge's on the same clips.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from scipy import optimize, stats
from sklearn.isotonic import IsotonicRegression
from threadpoolctl import threadpool_limits

from audioprobe.listening.ratings import Rating, RatingLog
from audioprobe.listening.trials import SIMILARITY, Trial, load
from tasks.records import Run, atomic_write, now_iso

BOUNDARIES = ("highly|moderately", "moderately|not")
MIN_RATINGS = 12


def _nll(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log-likelihood of the cumulative-logit model and its gradient in (a0, log gap, log b)."""
    a0, log_gap, log_b = params
    gap, b = np.exp(log_gap), np.exp(log_b)
    c0 = 1 / (1 + np.exp(-(a0 - b * x)))  # P(y <= 0)
    c1 = 1 / (1 + np.exp(-(a0 + gap - b * x)))  # P(y <= 1)
    p = np.where(y == 0, c0, np.where(y == 1, c1 - c0, 1 - c1))
    p = np.clip(p, 1e-12, None)
    s0, s1 = c0 * (1 - c0), c1 * (1 - c1)
    d_a0 = np.where(y == 0, 1 - c0, np.where(y == 1, -s0 / p, 0.0))  # d log p / d a0, a1 held
    d_a1 = np.where(y == 0, 0.0, np.where(y == 1, s1 / p, -c1))
    d_b = -x * (d_a0 + d_a1)  # both cut points enter as a_k - b x
    grad = -np.array([np.sum(d_a0 + d_a1), np.sum(d_a1) * gap, np.sum(d_b) * b])
    return -float(np.sum(np.log(p))), grad


def fit_ordinal(
    d: np.ndarray, y: np.ndarray, start: tuple[float, float, float] | None = None
) -> tuple[float, float, float]:
    """(threshold 1, threshold 2, slope) in distance units; `start`, a previous fit, speeds up bootstraps."""
    mu, sd = float(d.mean()), float(d.std()) or 1.0
    x = (d - mu) / sd
    x0 = np.array([-0.5, 0.0, 0.0])
    if start is not None:  # the same model in this sample's standardisation
        t1, t2, slope = start
        b = max(slope * sd, 1e-3)
        x0 = np.array([(t1 - mu) / sd * b, np.log(max((t2 - t1) / sd * b, 1e-3)), np.log(b)])
    res = optimize.minimize(
        _nll,
        np.clip(x0, [-30, -8, -6], [30, 4, 5]),
        args=(x, y),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-30, 30), (-8, 4), (-6, 5)],
    )
    a0, log_gap, log_b = res.x
    b = np.exp(log_b)
    return mu + sd * a0 / b, mu + sd * (a0 + np.exp(log_gap)) / b, b / sd


def fit_group(d: np.ndarray, y: np.ndarray, clips: np.ndarray, n_boot: int = 300, seed: int = 0) -> dict:
    # L-BFGS-B on 3 parameters: BLAS threads only contend (20x slower on 2 busy cores)
    with threadpool_limits(limits=1):
        return _fit_group(d, y, clips, n_boot, seed)


def _fit_group(d: np.ndarray, y: np.ndarray, clips: np.ndarray, n_boot: int, seed: int) -> dict:
    t1, t2, slope = fit_ordinal(d, y)
    rng = np.random.default_rng(seed)
    ids = np.unique(clips)
    rows = {c: np.flatnonzero(clips == c) for c in ids}
    boots = []
    for _ in range(n_boot):
        take = np.concatenate([rows[c] for c in rng.choice(ids, size=len(ids), replace=True)])
        if len(np.unique(y[take])) == 3:
            boots.append(fit_ordinal(d[take], y[take], start=(t1, t2, slope))[:2])
    boots = np.array(boots) if boots else np.empty((0, 2))
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(d, y)
    grid = np.linspace(d.min(), d.max(), 41)
    thresholds = []
    for k, (name, value) in enumerate(zip(BOUNDARIES, (t1, t2))):
        ci = tuple(np.percentile(boots[:, k], [2.5, 97.5])) if len(boots) >= 20 else (None, None)
        thresholds.append(
            {"boundary": name, "value": float(value), "ci": [None if c is None else float(c) for c in ci]}
        )
    return {
        "method": "ordinal-logit",
        "n_boot": len(boots),
        "slope": float(slope),
        "thresholds": thresholds,
        "curve": {
            "distance": grid.tolist(),
            "isotonic_mean_rating": iso.predict(grid).tolist(),
            "ordinal_mean_rating": _expected(grid, t1, t2, slope).tolist(),
        },
        "points": {"distance": d.tolist(), "rating": y.tolist()},
    }


def _expected(d: np.ndarray, t1: float, t2: float, slope: float) -> np.ndarray:
    """Expected rating (0 highly .. 2 not) under the fitted model: 2 - P(y<=0) - P(y<=1)."""
    return 2 - 1 / (1 + np.exp(-slope * (t1 - d))) - 1 / (1 + np.exp(-slope * (t2 - d)))


def krippendorff_alpha(units: list[list[float]], metric: str = "ordinal") -> float | None:
    """Krippendorff's alpha over units (each the values the raters gave it; missing ones left out)."""
    units = [u for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u})
    if len(values) < 2 or not units:
        return None
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in units:
        m = len(u)
        for i, a in enumerate(u):
            for j, b in enumerate(u):
                if i != j:
                    o[index[a], index[b]] += 1 / (m - 1)
    n_v = o.sum(axis=1)
    n = n_v.sum()
    if metric == "nominal":
        delta = 1 - np.eye(len(values))
    elif metric == "interval":
        v = np.array(values)
        delta = (v[:, None] - v[None, :]) ** 2
    else:  # ordinal: squared sum of the marginals between the two values
        cum = np.cumsum(n_v)
        delta = np.zeros_like(o)
        for i in range(len(values)):
            for j in range(len(values)):
                lo, hi = min(i, j), max(i, j)
                delta[i, j] = (cum[hi] - cum[lo] + n_v[lo] - (n_v[i] + n_v[j]) / 2) ** 2
    observed = (o * delta).sum()
    expected = (np.outer(n_v, n_v) * delta).sum() / (n - 1)
    return None if expected == 0 else float(1 - observed / expected)


def agreement(ratings: list[Rating], trials: dict[str, Trial]) -> dict:
    first = {}  # (rater, clip) -> the first rating: repeats measure consistency, not agreement
    repeats = defaultdict(list)
    for r in ratings:
        first.setdefault((r.rater, r.base), r)
        repeats[(r.rater, r.base)].append(r)
    by_clip = defaultdict(list)
    for (rater, base), r in first.items():
        by_clip[base].append(SIMILARITY.index(r.similarity))
    pairs = [v for v in repeats.values() if len(v) >= 2]
    same = sum(a.similarity == b.similarity for a, b, *_ in pairs)
    means = [(trials[b].distances, float(np.mean(v))) for b, v in by_clip.items() if b in trials]
    spearman = {}
    for metric in sorted({m for dist, _ in means for m in dist}):
        xs = [(dist[metric], h) for dist, h in means if metric in dist]
        if len(xs) >= 3:
            rho, p = stats.spearmanr([a for a, _ in xs], [b for _, b in xs])
            spearman[metric] = {
                "rho": None if np.isnan(rho) else float(rho),
                "p": float(p),
                "n_clips": len(xs),
            }
    five = [(r, trials[r.base]) for r in first.values() if r.label is not None and r.base in trials]
    judged = [(r, t) for r, t in five if t.judge_label is not None]
    judged_clips = {t.base: t for _, t in judged}
    return {
        "raters": sorted({r.rater for r in ratings}),
        "n_ratings": len(ratings),
        "n_clips": len(by_clip),
        "krippendorff_alpha_ordinal": krippendorff_alpha(list(by_clip.values())),
        "repeat_pairs": len(pairs),
        "repeat_exact_agreement": same / len(pairs) if pairs else None,
        "spearman_distance_vs_rating": spearman,
        "five_way": {
            "n": len(five),  # answers: one per rater and clip
            "human_accuracy": sum(r.label == t.label for r, t in five) / len(five) if five else None,
            "n_judged": len(judged),
            "n_judged_clips": len(judged_clips),  # the judge answered each clip once
            "judge_accuracy_same_clips": (
                sum(t.judge_label == t.label for t in judged_clips.values()) / len(judged_clips)
                if judged_clips
                else None
            ),
            "judge_human_agreement": (
                sum(r.label == t.judge_label for r, t in judged) / len(judged) if judged else None
            ),
        },
    }


def calibrate(run: Run, n_boot: int = 300, seed: int = 0) -> dict:
    trials = {t.id: t for t in load(run)}
    if not trials:
        raise ValueError(
            f"run {run.run_id}: no listening trials yet; run `audioprobe listen {run.run_id}` first"
        )
    ratings = [r for r in RatingLog(run).ratings() if r.trial in trials]
    groups = defaultdict(list)
    for r in ratings:
        t = trials[r.trial]
        for metric, value in t.distances.items():
            groups[(t.embedding, metric, t.clip_length)].append(
                (value, SIMILARITY.index(r.similarity), t.base, r.rater)
            )
    fits = []
    for (embedding, metric, length), rows in sorted(groups.items()):
        d, y = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        entry = {
            "embedding": embedding,
            "metric": metric,
            "clip_length": length,
            "n_ratings": len(rows),
            "n_clips": len({r[2] for r in rows}),
            "raters": sorted({r[3] for r in rows}),
        }
        if len(rows) < MIN_RATINGS or len(np.unique(y)) < 3:
            entry["skipped"] = f"{len(rows)} ratings using {len(np.unique(y))} of 3 answers: too few to fit"
        else:
            entry.update(fit_group(d, y, np.array([r[2] for r in rows]), n_boot=n_boot, seed=seed))
        fits.append(entry)
    result = {
        "run": run.run_id,
        "created": now_iso(),
        "fits": fits,
        "agreement": agreement(ratings, {t.base: t for t in trials.values() if t.repeat == 0}),
    }
    atomic_write(run.dir / "listening" / "calibration.json", json.dumps(result, indent=1))
    return result


def band(value: float, fit: dict) -> str | None:
    """A distance's band under a calibration fit: the calibrated analogue of frechet.band."""
    if "thresholds" not in fit:
        return None
    t1, t2 = (t["value"] for t in fit["thresholds"])
    return "highly similar" if value < t1 else "moderately similar" if value < t2 else "not similar"
