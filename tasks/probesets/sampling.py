"""The paper's note sampling (section 4.1): balanced over (family, source) classes, capped per class.

The paper took 1,500 NSynth notes: 16 (family, source) classes present, 12 of them with 110 notes, the
rest with what the data had. Here: each class gets min(available, cap, level), the level is the
highest that keeps the total within `total`, and the few notes left over go one each to classes that
have more, in a seeded order. Within a class the notes are ranked by a hash of (seed, key), so the
same seed and data always give the same notes, a bigger total only adds notes, and adding data to
one class never changes another class's picks. Items come out interleaved across classes, so any
prefix of the list is itself balanced.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")
PAPER_TOTAL = 1500
PAPER_CAP = 110
PAPER_FAMILIES = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "vocal",
)


def rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def allocate(counts: dict[Hashable, int], total: int, cap: int | None, seed: int = 0) -> dict[Hashable, int]:
    """How many to take from each class: water-filling up to `cap`, summing to at most `total`."""
    avail = {c: (min(n, cap) if cap is not None else n) for c, n in counts.items()}
    if sum(avail.values()) <= total:
        return dict(avail)
    lo, hi = 0, max(avail.values())  # the highest level L with sum(min(a, L)) <= total
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(a, mid) for a in avail.values()) <= total:
            lo = mid
        else:
            hi = mid - 1
    taken = {c: min(a, lo) for c, a in avail.items()}
    left = total - sum(taken.values())
    roomy = sorted((c for c, a in avail.items() if a > lo), key=lambda c: rank(seed, f"class:{c}"))
    for c in roomy[:left]:
        taken[c] += 1
    return taken


def balanced_sample(
    records: Sequence[T],
    class_of: Callable[[T], Hashable],
    key_of: Callable[[T], str],
    total: int = PAPER_TOTAL,
    cap: int | None = PAPER_CAP,
    seed: int = 0,
) -> tuple[list[T], dict[Hashable, tuple[int, int]]]:
    """The sample, interleaved across classes, and per class (available, taken)."""
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    groups: dict[Hashable, list[T]] = defaultdict(list)
    seen: set[str] = set()
    for r in records:
        key = key_of(r)
        if key in seen:
            raise ValueError(f"duplicate key {key!r}: item ids would not be unique")
        seen.add(key)
        groups[class_of(r)].append(r)
    taken = allocate({c: len(g) for c, g in groups.items()}, total, cap, seed)
    chosen = {c: sorted(g, key=lambda r: rank(seed, key_of(r)))[: taken[c]] for c, g in groups.items()}
    order = sorted(chosen, key=str)
    out = [chosen[c][i] for i in range(max(taken.values(), default=0)) for c in order if i < len(chosen[c])]
    return out, {c: (len(groups[c]), taken[c]) for c in order}
