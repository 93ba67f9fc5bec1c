"""Set distances (FAD, KAD, FAD-inf) with a 95% CI and a same-N baseline, and per-note distances.

A clip is an (frames, dim) array of frame embeddings of a fixed window (embeddings.embed_files with
window_s), so every clip brings the same number of frames: one clip, one weight.

- FAD: Fréchet distance of the stacked frames (frechet.py), as the paper and fadtk compute it. Biased
  upwards at small N (roughly dim^2 / frames), so it is shown beside a same-distribution baseline drawn
  at the comparison's own (n_gen, n_ref) where the reference pool allows.
- KAD: "KAD: No More FAD!" (Chung et al. 2025): the unbiased MMD^2 with a Gaussian kernel whose
  bandwidth is the median pairwise distance of the reference frames, times kadtk's scale 100. Frames of
  one clip are not independent, so pairs within a clip are left out of the within-set terms (a U-statistic
  over clips): same-distribution KAD is then 0 in expectation at any N, and can be slightly negative.
- FAD-inf: fadtk's extrapolation: FAD on random subsets of the generated frames at 10 sizes, a line
  fitted to FAD against 1/n, its intercept.
- CIs: bootstrap over clips, generated and reference sets both resampled. For FAD the percentile
  interval is re-centred on the estimate (resampling repeats clips, which inflates FAD); for KAD pairs of
  a clip with its own copy are left out, so no re-centring is needed.

`per_note_distances` scores each generated clip alone against its class's references: its FAD as
fadtk's per-song score (the clip's frames against the references' statistics) and its kernel score (KAD of
its frames against the reference frames). The paper's bands were calibrated on such single-note FADs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tasks.judges import frechet

METRICS = ("fad", "kad", "fad-inf")
KAD_SCALE = 100.0  # kadtk's SCALE_FACTOR: KAD values of ~0.1-10 instead of 1e-3-1e-1
DISTANCE_VERSION = "distance-v1"


class DistanceError(ValueError):
    pass


def _stack(clips: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.atleast_2d(np.asarray(c, dtype=np.float64)) for c in clips], axis=0)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(ref_clips: Sequence[np.ndarray], max_frames: int = 2000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance between reference frames (a seeded subset of large sets)."""
    ref = _stack(ref_clips)
    if len(ref) > max_frames:
        ref = ref[np.random.default_rng(seed).choice(len(ref), max_frames, replace=False)]
    d = np.sqrt(_sq_dists(ref, ref)[np.triu_indices(len(ref), 1)])
    width = float(np.median(d)) if d.size else 0.0
    if not np.isfinite(width) or width <= 0:
        raise DistanceError("reference frames are all identical: the kernel bandwidth would be 0")
    return width


def _clip_kernel(a: list[np.ndarray], b: list[np.ndarray], gamma: float) -> np.ndarray:
    """(len(a), len(b)): mean kernel value over the frames of each pair of clips."""
    fa, fb = _stack(a), _stack(b)
    k = np.exp(-gamma * _sq_dists(fa, fb))
    ia = np.repeat(np.arange(len(a)), [len(np.atleast_2d(c)) for c in a])
    ib = np.repeat(np.arange(len(b)), [len(np.atleast_2d(c)) for c in b])
    sums = np.zeros((len(a), len(b)))
    np.add.at(sums, (ia[:, None], ib[None, :]), k)
    return sums / np.bincount(ia, minlength=len(a))[:, None] / np.bincount(ib, minlength=len(b))[None, :]


def _within(k: np.ndarray, counts: np.ndarray) -> float:
    """Mean of k over ordered pairs of distinct clips, each clip weighted by how often it was drawn."""
    total = counts @ k @ counts - (counts * counts) @ np.diag(k)
    pairs = counts.sum() ** 2 - (counts * counts).sum()
    return float(total / pairs)


def _kad_from(kgg: np.ndarray, krr: np.ndarray, kgr: np.ndarray, wg: np.ndarray, wr: np.ndarray) -> float:
    between = float(wg @ kgr @ wr) / (wg.sum() * wr.sum())
    return KAD_SCALE * (_within(kgg, wg) + _within(krr, wr) - 2.0 * between)


def _kernels(gen: list[np.ndarray], ref: list[np.ndarray], bandwidth: float):
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    return _clip_kernel(gen, gen, gamma), _clip_kernel(ref, ref, gamma), _clip_kernel(gen, ref, gamma)


KAD_CONVENTIONS = ("clips", "kadtk")


def kadtk_bandwidth(frames: np.ndarray) -> float:
    """kadtk's median_pairwise_distance: torch.median over torch.pdist, which is the lower middle value."""
    d = np.sqrt(_sq_dists(frames, frames)[np.triu_indices(len(frames), 1)])
    return float(np.sort(d)[(len(d) - 1) // 2])


def kad_kadtk(gen_clips: Sequence[np.ndarray], ref_clips: Sequence[np.ndarray], bandwidth: float | None = None) -> float:
    """kadtk's calc_kernel_audio_distance as its score(baseline, eval) calls it: frames pooled, every pair of
    distinct frames kept (pairs within a clip too), bandwidth from the *evaluated* (generated) frames."""
    x, y = _stack(ref_clips), _stack(gen_clips)  # kadtk: x = background (references), y = eval
    width = bandwidth or kadtk_bandwidth(y)
    gamma = 1.0 / (2.0 * width * width + 1e-8)
    kxx, kyy = np.exp(-gamma * _sq_dists(x, x)), np.exp(-gamma * _sq_dists(y, y))
    m, n = len(x), len(y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(KAD_SCALE * (within_x + within_y - 2.0 * np.exp(-gamma * _sq_dists(x, y)).mean()))


def kad(gen_clips: Sequence[np.ndarray], ref_clips: Sequence[np.ndarray], bandwidth: float | None = None,
        convention: str = "clips") -> float:
    """KAD (x100). `clips` (ours): bandwidth from the references, pairs within a clip left out (unbiased
    over clips); `kadtk`: kadtk's score, as kad_kadtk."""
    gen, ref = list(gen_clips), list(ref_clips)
    if len(gen) < 2 or len(ref) < 2:
        raise DistanceError(f"KAD needs at least 2 clips a side, got {len(gen)} generated, {len(ref)} reference")
    if convention == "kadtk":
        return kad_kadtk(gen, ref, bandwidth)
    if convention != "clips":
        raise DistanceError(f"unknown KAD convention {convention!r}; choose from {', '.join(KAD_CONVENTIONS)}")
    width = bandwidth or median_bandwidth(ref)
    kgg, krr, kgr = _kernels(gen, ref, width)
    return _kad_from(kgg, krr, kgr, np.ones(len(gen)), np.ones(len(ref)))


def fad(gen_clips: Sequence[np.ndarray], ref_clips: Sequence[np.ndarray]) -> float:
    return frechet.fd_embeddings(_stack(gen_clips), _stack(ref_clips))


FAD_INF_STEPS, FAD_INF_MIN_N = 25, 500  # fadtk's score_inf defaults


def fad_inf(
    gen_clips: Sequence[np.ndarray], ref_clips: Sequence[np.ndarray], steps: int = FAD_INF_STEPS,
    min_n: int = FAD_INF_MIN_N, seed: int = 0,
) -> dict:
    """fadtk's FAD-inf (FrechetAudioDistance.score_inf): the generated frames of every clip pooled, n frames
    drawn *with* replacement for n in linspace(min_n, all frames, steps), FAD of each against the
    references, a line fitted against 1/n, its intercept. fadtk draws with np.random.choice; we draw the
    same indices from np.random.RandomState(seed). With fewer than min_n frames the sizes run downwards,
    as in fadtk."""
    embeds, ref = _stack(gen_clips), _stack(ref_clips)
    mu_r, s_r = frechet.stats(ref)
    root = frechet.psd_sqrt(s_r)
    ns = [int(n) for n in np.linspace(min_n, len(embeds), steps)]
    if len(set(ns)) < 3:
        raise DistanceError(f"FAD-inf needs at least 3 distinct sizes; {len(embeds)} frames give {len(set(ns))}")
    rng = np.random.RandomState(seed)
    scores = [
        frechet.frechet_distance(*frechet.stats(embeds[rng.choice(embeds.shape[0], size=n, replace=True)]),
                                 mu_r, s_r, sqrt_s2=root)
        for n in ns
    ]
    xs = 1 / np.array(ns)
    slope, intercept = np.polyfit(xs, scores, 1)
    ss_tot = float(np.sum((scores - np.mean(scores)) ** 2))
    r2 = 1 - float(np.sum((scores - (slope * xs + intercept)) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return {"value": float(intercept), "slope": float(slope), "r2": r2, "frames": ns}


@dataclass
class Distance:
    """One set distance as `audioprobe judge distance` prints it."""

    metric: str
    value: float | None
    ci: tuple[float, float] | None
    n_ref: int
    n_gen: int
    embedding: str
    baseline: float | None  # the same metric between two disjoint sets of references at (n_gen, n_ref)
    baseline_n_gen: int | None  # the sizes it stands for: always the comparison's own
    baseline_n_ref: int | None
    bandwidth: float | None = None  # KAD's kernel bandwidth (from the references)
    extra: dict | None = None  # FAD-inf's fit
    note: str = ""
    baseline_low: float | None = None  # the middle 95 % of same-distribution scores at that N
    baseline_high: float | None = None
    baseline_method: str = ""  # drawn, extrapolated (baseline_fit says how) or none
    baseline_fit: dict | None = None
    convention: str = "clips"  # KAD: ours, or kadtk's
    version: str = DISTANCE_VERSION

    def as_dict(self) -> dict:
        return asdict(self)


def _point(metric: str, gen: list, ref: list, bandwidth: float | None, seed: int,
           convention: str = "clips") -> tuple[float, dict | None]:
    if metric == "fad":
        return fad(gen, ref), None
    if metric == "kad":
        return kad(gen, ref, bandwidth if convention == "clips" else None, convention), None
    fit = fad_inf(gen, ref, seed=seed)
    return fit["value"], fit


def _draw(rng: np.random.Generator, n: int, groups: Sequence[str] | None) -> np.ndarray:
    """Indices of a resample of n clips; with `groups` (each clip's item), whole items are drawn, since the
    samples of one item are not independent and resampling them apart narrows the interval."""
    if groups is None:
        return rng.integers(0, n, n)
    units: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        units.setdefault(group, []).append(index)
    members = list(units.values())
    return np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])


def bootstrap_ci(
    metric: str, gen: list, ref: list, *, bandwidth: float | None = None, n_boot: int = 200, seed: int = 0,
    groups: Sequence[str] | None = None, convention: str = "clips",
) -> tuple[float, float] | None:
    """95% interval, both sets resampled with replacement (generated clips by item when `groups` names them).

    Ours KAD leaves out the pairs of a clip with its own copy, so its percentile interval is used as it is.
    Every other estimator is inflated by repeated clips (FAD's small-sample bias; kadtk's KAD counts a
    copy's frames as a pair), so its bootstrap distribution is re-centred on the estimate."""
    if len(gen) < 2 or len(ref) < 2 or (groups is not None and len(set(groups)) < 2):
        return None
    rng = np.random.default_rng(seed)
    if metric == "kad" and convention == "clips":
        kgg, krr, kgr = _kernels(gen, ref, bandwidth or median_bandwidth(ref))
        scores = []
        for _ in range(n_boot):
            wg = np.bincount(_draw(rng, len(gen), groups), minlength=len(gen)).astype(float)
            wr = np.bincount(rng.integers(0, len(ref), len(ref)), minlength=len(ref)).astype(float)
            if (wg > 0).sum() < 2 or (wr > 0).sum() < 2:
                continue
            scores.append(_kad_from(kgg, krr, kgr, wg, wr))
        lo, hi = np.quantile(scores, [0.025, 0.975])
        return float(lo), float(hi)
    point = _point(metric, gen, ref, bandwidth, seed, convention)[0]
    scores = []
    for _ in range(n_boot):
        g = [gen[i] for i in _draw(rng, len(gen), groups)]
        r = [ref[i] for i in rng.integers(0, len(ref), len(ref))]
        try:
            scores.append(_point(metric, g, r, bandwidth, seed, convention)[0])
        except (frechet.FrechetError, DistanceError):
            continue
    lo, hi = np.quantile(scores, [0.025, 0.975]) - (np.mean(scores) - point)
    return (max(float(lo), 0.0) if metric == "fad" else float(lo)), float(hi)


@dataclass
class Baseline:
    """What two disjoint sets of real references score at the comparison's own (n_gen, n_ref).

    `drawn`: disjoint draws at exactly (n_gen, n_ref). `extrapolated`: the pool is too small for that (it
    always is when the comparison uses every reference), so draws at several smaller sizes are fitted
    with FAD's first-order small-sample form, value = c0 + c1 * (1/n_a + 1/n_b), and the fit is read at
    (n_gen, n_ref). Where the pool can reach the comparison's 1/n_gen + 1/n_ref the draws bracket it and
    the line is fitted freely; beyond the pool's reach (n_ref is every reference and n_gen is large) the
    line goes through 0, the score of a distribution against itself with infinitely many clips (KAD is
    unbiased: its c1 comes out near 0 either way). Same-distribution scores spread in proportion to their bias, so the spread is the
    draws' residuals scaled by (1/n_gen + 1/n_ref) / (1/n_a + 1/n_b). low/high bound the middle 95 %.
    """

    value: float | None
    low: float | None
    high: float | None
    n_gen: int | None
    n_ref: int | None
    method: str  # "drawn", "extrapolated" or "none"
    fit: dict | None = None  # c0, c1, the sizes drawn, draws per size
    note: str = ""


BASELINE_DRAWS = 100  # disjoint draws in all: enough for a 95 % range
BASELINE_SIZES = 5  # pair sizes the fit is drawn at


def _pair_sizes(pool: int, target: float) -> list[tuple[int, int]]:
    """Disjoint (n_a, n_b) pairs whose 1/n_a + 1/n_b brackets the target where the pool can reach it
    (a fit read inside its own range); else balanced pairs of 60-100 % of the pool, the nearest it gets."""
    lowest = 1 / (pool // 2) + 1 / (pool - pool // 2)
    if target >= lowest:
        xs = np.clip(target * np.geomspace(0.8, 1.25, BASELINE_SIZES), lowest, 1.0)
        # 1/a + 1/(pool - a) = x has its smaller root at a = (pool - sqrt(pool^2 - 4 pool / x)) / 2
        roots = [(pool - np.sqrt(max(pool * pool - 4 * pool / x, 0.0))) / 2 for x in xs]
        sizes = [(a, pool - a) for a in (min(max(2, int(round(r))), pool // 2) for r in roots)]
    else:
        sizes = [(t // 2, t - t // 2) for t in (int(round(f * pool)) for f in np.linspace(0.6, 1.0, BASELINE_SIZES))]
    return sorted({(a, b) for a, b in sizes if a >= 2 and b >= 2})


def same_n_baseline(
    metric: str, ref: list, n_gen: int, n_ref: int, *, bandwidth: float | None = None, seed: int = 0,
    draws: int = BASELINE_DRAWS, convention: str = "clips",
) -> Baseline:
    pool = len(ref)
    if n_gen < 2 or n_ref < 2 or pool < 4:
        return Baseline(None, None, None, None, None, "none", note=f"{pool} references: no disjoint draws")
    rng = np.random.default_rng(seed)
    score = _scorer(metric, ref, bandwidth, seed, convention)
    exact = pool >= n_gen + n_ref
    target = 1 / n_gen + 1 / n_ref
    sizes = [(n_gen, n_ref)] if exact else _pair_sizes(pool, target)
    points: list[tuple[float, float]] = []  # (1/n_a + 1/n_b, value)
    per_size = max(2, draws // len(sizes)) if sizes else 0
    for a, b in sizes:
        for _ in range(per_size):
            order = rng.permutation(pool)
            try:
                points.append((1 / a + 1 / b, score(order[:a], order[a:a + b])))
            except (frechet.FrechetError, DistanceError):
                continue
    if len(points) < 3:
        return Baseline(None, None, None, None, None, "none", note="too few same-distribution draws scored")
    x, y = np.array(points).T
    floor = 0.0 if metric == "fad" else -np.inf
    if exact:
        lo, mid, hi = np.quantile(y, [0.025, 0.5, 0.975])
        return Baseline(float(mid), float(lo), float(hi), n_gen, n_ref, "drawn",
                        {"sizes": [list(s) for s in sizes], "draws": len(y)})
    if metric == "fad" and x.min() <= target <= x.max() and len(set(x)) >= 2:
        c1, c0 = (float(v) for v in np.polyfit(x, y, 1))  # read inside its range: the line's local slope
    else:  # beyond the draws, the asymptote: the same distribution scores 0 with infinitely many clips
        c0, c1 = 0.0, float(x @ y / (x @ x))
    scaled = (y - (c0 + c1 * x)) / x * target
    centre = c0 + c1 * target
    lo, mid, hi = centre + np.quantile(scaled, [0.025, 0.5, 0.975])
    fit = {"form": "c0 + c1 * (1/n_gen + 1/n_ref)", "c0": c0, "c1": c1,
           "sizes": [list(s) for s in sizes], "draws": len(y)}
    note = (f"baseline extrapolated to n_gen={n_gen}, n_ref={n_ref} from disjoint draws at "
            f"{', '.join(f'{a}/{b}' for a, b in sizes)} ({pool} references) by the 1/N form "
            f"{c0:.4g} + {c1:.4g} * (1/n_gen + 1/n_ref)")
    return Baseline(float(max(mid, floor)), float(max(lo, floor)), float(max(hi, floor)), n_gen, n_ref,
                    "extrapolated", fit, note)


def _scorer(metric: str, ref: list, bandwidth: float | None, seed: int, convention: str):
    """score(indices_a, indices_b): the metric between two subsets of the pool (KAD's kernels computed once)."""
    if metric == "kad" and convention == "clips":
        krr = _clip_kernel(ref, ref, 1.0 / (2.0 * (bandwidth or median_bandwidth(ref)) ** 2))
        ones = lambda n: np.ones(n)
        return lambda a, b: _kad_from(krr[np.ix_(a, a)], krr[np.ix_(b, b)], krr[np.ix_(a, b)], ones(len(a)), ones(len(b)))
    return lambda a, b: _point(metric, [ref[i] for i in a], [ref[i] for i in b], bandwidth, seed, convention)[0]


def distance(
    metric: str,
    gen_clips: Sequence[np.ndarray],
    ref_clips: Sequence[np.ndarray],
    *,
    embedding: str,
    seed: int = 0,
    n_boot: int = 200,
    groups: Sequence[str] | None = None,
    convention: str = "clips",
) -> Distance:
    """The one path every set distance takes (judge fad, judge distance, the run's per-class scores and
    the report's matched-N table): the value, its bootstrap interval, and the same-distribution baseline
    at the comparison's own (n_gen, n_ref) with its spread."""
    if metric not in METRICS:
        raise DistanceError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    gen, ref = list(gen_clips), list(ref_clips)
    bandwidth = median_bandwidth(ref) if metric == "kad" and convention == "clips" and len(ref) >= 2 else None
    try:
        value, extra = _point(metric, gen, ref, bandwidth, seed, convention)
    except (frechet.FrechetError, DistanceError) as exc:
        return Distance(metric, None, None, len(ref), len(gen), embedding, None, None, None, note=str(exc),
                        convention=convention)
    base = same_n_baseline(metric, ref, len(gen), len(ref), bandwidth=bandwidth, seed=seed, convention=convention)
    ci = bootstrap_ci(metric, gen, ref, bandwidth=bandwidth, n_boot=n_boot, seed=seed, groups=groups,
                      convention=convention)
    return Distance(
        metric, value, ci, len(ref), len(gen), embedding, base.value, base.n_gen, base.n_ref, bandwidth, extra,
        base.note, base.low, base.high, base.method, base.fit, convention,
    )


def matched(gen_clips: Sequence[np.ndarray], n: int, seed: int = 0) -> list[np.ndarray]:
    """A seeded subset of n clips: models compared at the same n_gen."""
    gen = list(gen_clips)
    if n >= len(gen):
        return gen
    return [gen[i] for i in sorted(np.random.default_rng(seed).choice(len(gen), n, replace=False))]


# --------------------------------------------------------------------------- per note


@dataclass
class NoteDistance:
    """One generated clip alone against its class's references."""

    fad: float | None  # fadtk's per-song FAD: the clip's frames against the references' statistics
    kad: float | None  # its kernel score: KAD (x100) of its frames against the reference frames
    frames: int
    embedding: str


def note_scores(
    gen_clips: Sequence[np.ndarray], ref_clips: Sequence[np.ndarray], *, embedding: str,
    bandwidth: float | None = None,
) -> list[NoteDistance]:
    """Per-note FAD and kernel score of each generated clip (embeddings) against the reference clips."""
    ref_list = list(ref_clips)
    ref = _stack(ref_list)
    if len(ref) < 2 or len(ref_list) < 2:  # no covariance, no within-reference kernel: no score, said so
        return [NoteDistance(None, None, len(np.atleast_2d(c)), embedding) for c in gen_clips]
    mu_r, s_r = frechet.stats(ref)
    root = frechet.psd_sqrt(s_r)
    width = bandwidth or median_bandwidth(ref_list)
    gamma = 1.0 / (2.0 * width * width)
    krr = _within(_clip_kernel(ref_list, ref_list, gamma), np.ones(len(ref_list)))
    out = []
    for clip in gen_clips:
        frames = np.atleast_2d(np.asarray(clip, dtype=np.float64))
        note_fad = note_kad = None
        if len(frames) >= 2:
            note_fad = frechet.frechet_distance(*frechet.stats(frames), mu_r, s_r, sqrt_s2=root)
            kgg = np.exp(-gamma * _sq_dists(frames, frames))
            within = (kgg.sum() - np.trace(kgg)) / (len(frames) * (len(frames) - 1))
            between = float(np.exp(-gamma * _sq_dists(frames, ref)).mean())
            note_kad = float(KAD_SCALE * (within + krr - 2.0 * between))
        out.append(NoteDistance(note_fad, note_kad, len(frames), embedding))
    return out


def per_note_distances(
    gen_paths: Sequence[str], ref_paths: Sequence[str], *, embedding: str = "auto", window_s: float | None = None,
) -> list[NoteDistance]:
    """Per-note FAD and kernel score of each generated file against the reference files (same order as
    gen_paths). window_s: the fixed window every clip is cut or padded to (default: the references' median
    length)."""
    from tasks.judges.embeddings import embed_files, get_embedding, reference_window

    backend = get_embedding(embedding)
    window = window_s or reference_window(list(ref_paths))
    ref = embed_files(backend, list(ref_paths), window_s=window)
    gen = embed_files(backend, list(gen_paths), window_s=window)
    return note_scores(gen, ref, embedding=f"{backend.version} {window:g}s")
