"""The 5-way forced choice shared by CLAP, the offline classifier and speech.

Distractors are 4 labels drawn from the vocabulary without the target, by a generator seeded from
(seed, target) through sha256: the same clip, target and seed always meet the same distractors, on any
machine and Python version. Because one draw is luck, every classifier that scores the whole vocabulary
also reports the exact expected accuracy over all C(N-1, 4) draws, from the target's rank: with k other
labels scoring strictly higher than the target, P(correct) = C(N-1-k, 4) / C(N-1, 4).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from math import comb

N_DISTRACTORS = 4


def draw(target: str, vocabulary: Sequence[str], seed: int = 0, k: int = N_DISTRACTORS) -> list[str]:
    """Target plus k distractors, in a seeded order (the target's position is not fixed)."""
    others = sorted({v for v in vocabulary if v != target})
    if len(others) < k:
        raise ValueError(f"vocabulary has {len(others)} labels besides {target!r}; need {k}")
    digest = hashlib.sha256(f"{seed}|{target}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    picked = [target] + rng.sample(others, k)
    rng.shuffle(picked)
    return picked


def expected_accuracy(scores: Mapping[str, float], target: str, k: int = N_DISTRACTORS) -> float:
    """Exact mean 5-way accuracy over every distractor draw, given a score for every label."""
    t = scores[target]
    others = [s for label, s in scores.items() if label != target]
    higher = sum(1 for s in others if s > t)
    return comb(len(others) - higher, k) / comb(len(others), k)


def rank(scores: Mapping[str, float], target: str) -> int:
    """1 = best; ties count in the target's favour."""
    return 1 + sum(1 for label, s in scores.items() if label != target and s > scores[target])
