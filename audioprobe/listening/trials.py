"""Trials for the listening page: which generated clip is played beside which reference, and what is asked.

Trials are drawn across the whole range of distances the judges produced, stratified (equal-width bins
over each tier's range, drawn round-robin) so that every part of the range is rated, wherever the bands
turn out to lie; a share of trials is shown a second time, later, to measure each rater's consistency.
The draw is written once to listening/trials.json, so reloading the page or restarting the server keeps
every rater's place.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from audioprobe import stored
from audioprobe.listening.distances import note_distances
from tasks.judges.audio import sha256_file
from tasks.records import Run, atomic_write, outcome_key
from tasks.tiers import get_tier

SIMILARITY = ("highly", "moderately", "not")  # the paper's bands: highly / moderately similar, distinct
CLIP_LENGTHS = (
    (1.0, "<1 s"),
    (2.0, "1-2 s"),
    (4.5, "2-4 s"),
    (math.inf, "4 s+"),
)  # 4.0 s notes land in 2-4 s


class Trial(BaseModel):
    id: str  # 12 hex digits, "-r1" on a repeat
    base: str  # the id of the trial's first showing
    repeat: int = 0
    key: str  # the outcome's key
    tier: str
    label: str
    model: str
    question: Literal["similarity", "label"]  # "label": 5-way label first, then similarity
    choices: list[str] = []
    gen_path: str  # run-relative
    ref_path: str  # run-relative copy under listening/refs/
    gen_sha256: str
    ref_sha256: str
    embedding: str
    distances: dict[str, float]
    clip_length: str
    stratum: int
    judge: str | None = None
    judge_label: str | None = None  # the 5-way judge's choice
    format_version: int = 1  # stored record: a change bumps it and adds a migration (audioprobe/stored.py)

    def public(self) -> dict:
        """What the page may see: nothing that gives the answer (label, model, distance) away."""
        # a forced-choice trial's class is the question; a similarity trial names it
        shown = "" if get_tier(self.tier).forced_choice else self.label.replace("_", " ")
        return {
            "id": self.id,
            "tier": self.tier,
            "question": self.question,
            "choices": self.choices,
            "class": shown,
        }


def clip_length(seconds: float | None) -> str:
    return next(name for limit, name in CLIP_LENGTHS if (seconds or 0.0) < limit)


def trial_id(key: str, ref_sha: str) -> str:
    return hashlib.sha1(f"{key}\n{ref_sha}".encode()).hexdigest()[:12]


def _generated_clip(run: Run, key: str, audio_path: str | None) -> Path | None:
    root = run.dir.resolve()
    for candidate in ([run.dir / audio_path] if audio_path else []) + [run.files_dir(key) / "output.wav"]:
        p = candidate.resolve()
        if p.is_file() and p.is_relative_to(root):
            return p
    return None


def candidates(run: Run, embedding: str = "logmel-stats") -> list[Trial]:
    """Every valid generated clip with a reference of its class, and its per-note distances."""
    by_class: dict[tuple[str, str], list] = defaultdict(list)
    labels: dict[str, set[str]] = defaultdict(set)
    for o in run.outcomes():
        labels[o.item.tier].add(o.item.display_name or o.item.label)
        if not (o.gate and o.gate.ok):
            continue
        key = outcome_key(o.model, o.method, o.item.id, o.sample)
        gen = _generated_clip(run, key, o.audio_path)
        refs = [r for r in o.item.references if Path(r).is_file()]
        if gen and refs:
            by_class[(o.item.tier, o.item.label)].append((o, key, gen, refs))
    trials = []
    for (tier, label), members in sorted(by_class.items()):
        class_refs = sorted({r for *_, refs in members for r in refs})
        measured = note_distances([str(g) for _, _, g, _ in members], class_refs, embedding=embedding)
        for (o, key, gen, refs), (emb, dist) in zip(members, measured):
            if not dist:  # the judge could not measure this clip: nothing to place it on the scale
                continue
            judged = next((j for j in o.judgements if "chosen" in j.values and not j.error), None)
            target = o.item.display_name or o.item.label
            choices = list(judged.values.get("choices") or []) if judged else []
            if get_tier(tier).forced_choice and target not in choices:
                others = sorted(labels[tier] - {target})
                choices = [target] + random.Random(key).sample(others, min(4, len(others)))
            random.Random(key).shuffle(choices)
            ref_sha = sha256_file(refs[0])
            trials.append(
                Trial(
                    id=trial_id(key, ref_sha),
                    base=trial_id(key, ref_sha),
                    key=key,
                    tier=tier,
                    label=target,
                    model=o.model,
                    question="label" if get_tier(tier).forced_choice else "similarity",
                    choices=choices if get_tier(tier).forced_choice else [],
                    gen_path=gen.relative_to(run.dir.resolve()).as_posix(),
                    ref_path=f"listening/refs/{ref_sha}{Path(refs[0]).suffix.lower() or '.wav'}",
                    gen_sha256=sha256_file(gen),
                    ref_sha256=ref_sha,
                    embedding=emb,
                    distances=dist,
                    clip_length=clip_length(o.gate.duration_s),
                    stratum=0,
                    judge=judged.judge if judged else None,
                    judge_label=judged.values.get("chosen") if judged else None,
                )
            )
    return trials


def stratified(pool: list[Trial], n: int, strata: int, rng: random.Random) -> list[Trial]:
    """n trials from pool, round-robin over equal-width bins of its first metric's range."""
    if not pool:
        return []
    values = [next(iter(t.distances.values())) for t in pool]
    lo, hi = min(values), max(values)
    width = (hi - lo) / strata or 1.0
    bins: list[list[Trial]] = [[] for _ in range(strata)]
    for t, v in zip(pool, values):
        t.stratum = min(strata - 1, int((v - lo) / width))
        bins[t.stratum].append(t)
    for b in bins:
        rng.shuffle(b)
    picked = []
    while len(picked) < min(n, len(pool)):
        for b in bins:
            if b and len(picked) < n:
                picked.append(b.pop())
    return picked


def sample_trials(
    pool: list[Trial], n: int = 60, strata: int = 3, repeat_share: float = 0.15, seed: int = 0
) -> list[Trial]:
    """About n trials over all tiers (each tier in proportion, at least `strata`), plus repeats."""
    rng = random.Random(seed)
    by_tier: dict[str, list[Trial]] = defaultdict(list)
    for t in pool:
        by_tier[t.tier].append(t)
    picked = []
    for tier in sorted(by_tier):
        share = max(strata, round(n * len(by_tier[tier]) / len(pool)))
        picked += stratified(by_tier[tier], share, strata, rng)
    rng.shuffle(picked)
    n_rep = min(len(picked), max(1 if len(picked) >= 2 else 0, round(repeat_share * len(picked))))
    order = list(picked)
    for original in rng.sample(picked, n_rep):
        again = original.model_copy(update={"id": f"{original.id}-r1", "repeat": 1})
        first = order.index(original)
        order.insert(rng.randint(min(first + 2, len(order)), len(order)), again)  # never straight after
    return order


def trials_path(run: Run) -> Path:
    return run.dir / "listening" / "trials.json"


def prepare(
    run: Run, *, n: int = 60, embedding: str = "logmel-stats", resample: bool = False, seed: int = 0
) -> list[Trial]:
    """The run's trials: drawn once (copying each reference into the run), then read back."""
    path = trials_path(run)
    if path.exists() and not resample:
        return private_copies(run, load(run))
    pool = candidates(run, embedding)
    trials = sample_trials(pool, n=n, seed=seed)
    if not trials:
        raise ValueError(f"run {run.run_id}: no valid generated clip with a reference file to listen to")
    sources = {}
    for o in run.outcomes():
        for r in o.item.references:
            if Path(r).is_file():
                sources.setdefault(r, None)
    by_sha = {sha256_file(r): r for r in sources}
    for t in trials:
        target = run.dir / t.ref_path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(by_sha[t.ref_sha256], target)
    every = [
        {k: getattr(t, k) for k in ("key", "model", "tier", "label", "embedding", "distances", "clip_length")}
        for t in pool
    ]  # every valid clip's distances: the report bands them all, not just the sample
    atomic_write(run.dir / "listening" / "distances.json", json.dumps(every, indent=1))
    atomic_write(path, json.dumps([stored.dump(t) for t in trials], indent=1))
    return private_copies(run, trials)


def private_copies(run: Run, trials: list[Trial]) -> list[Trial]:
    """Each generated clip copied to listening/clips/<sha256>.wav, the file the server plays.

    A run's clips are hard links into the audio store, and the server plays only files with one link
    (a hard link planted in the run could name any file of the host); the copy is checked against the
    hash recorded when the trials were drawn. trials.json is rewritten when a path changed."""
    changed = False
    for t in trials:
        target = f"listening/clips/{t.gen_sha256}.wav"
        dest = run.dir / target
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".part")
            shutil.copyfile(run.dir / t.gen_path, tmp)
            if sha256_file(tmp) != t.gen_sha256:
                tmp.unlink()
                raise ValueError(f"trial {t.id}: {t.gen_path} changed since the trials were drawn")
            tmp.replace(dest)
        if t.gen_path != target:
            t.gen_path, changed = target, True
    if changed:
        atomic_write(trials_path(run), json.dumps([stored.dump(t) for t in trials], indent=1))
    return trials


def load(run: Run) -> list[Trial]:
    path = trials_path(run)
    if not path.exists():
        return []
    return stored.load_all(Trial, json.loads(path.read_text()))
