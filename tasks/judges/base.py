"""The Judge protocol: one verdict per clip, over a batch of clips and the items they were asked to be.

A judge has a `name` and a `version` (part of the cache key: bump it when its answers can change),
`params(item)`: what its verdict depends on of the item (the target, the distractor draw) and
`judge(clips, items)`: one Judgement per clip, in order. Judges never cache: `cached(judge)` does,
keyed by (name, version, clip sha256, params), and hands only the misses to the judge, as one batch,
so a batch judge (pitch) keeps its batch speed on a partly cached run.

Adding a judge is one class: subclass `ClipJudge`, set `name` and `version`, write `params` and
`judge_clip` (or `judge`, for a judge that hears many clips at once). A set-level judge (FAD) is not a
Judge: it scores a set of clips, not each clip.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from audioprobe.schema import Judgement, ProbeItem
from tasks.judges import audio
from tasks.judges.cache import JudgementCache, cache_key

UNREADABLE = "unreadable"  # an error that says the file, not the judge, failed: never cached


@runtime_checkable
class Judge(Protocol):
    name: str
    version: str

    def params(self, item: ProbeItem) -> dict[str, Any]: ...

    def judge(self, clips: Sequence[Path], items: Sequence[ProbeItem]) -> list[Judgement]: ...


def check_batch(clips: Sequence[Any], items: Sequence[Any], who: str) -> None:
    if len(clips) != len(items):
        raise ValueError(f"{who}: {len(clips)} clips but {len(items)} items")


class ClipJudge:
    """Base of the judges: a clip that cannot be read gets its own error instead of sinking the batch."""

    name: str
    version: str

    def params(self, item: ProbeItem) -> dict[str, Any]:
        return {}

    def judge(self, clips: Sequence[Path], items: Sequence[ProbeItem]) -> list[Judgement]:
        check_batch(clips, items, self.name)
        for item in items:  # a target the judge cannot judge is the caller's mistake: refused before any work
            self.params(item)
        out = []
        for clip, item in zip(clips, items):
            try:
                out.append(self.judge_clip(Path(clip), item))
            except (OSError, audio.AudioError) as exc:
                out.append(self.unreadable(clip, item, exc))
        return out

    def judge_clip(self, clip: Path, item: ProbeItem) -> Judgement:
        raise NotImplementedError(f"{type(self).__name__} must define judge_clip or judge")

    def verdict(self, clip: str | Path, item: ProbeItem, **fields: Any) -> Judgement:
        """A Judgement of this judge on this clip and item (correct, score, values, error in `fields`)."""
        return Judgement(
            judge=self.name,
            judge_version=self.version,
            audio_sha256=audio.sha256_file(clip),
            params=self.params(item),
            **fields,
        )

    def unreadable(self, clip: str | Path, item: ProbeItem, exc: Exception) -> Judgement:
        try:
            sha = audio.sha256_file(clip)
        except OSError:
            sha = ""
        return Judgement(
            judge=self.name,
            judge_version=self.version,
            audio_sha256=sha,
            params=self.params(item),
            error=f"{UNREADABLE}: {exc}",
        )

    def configured(self, **options: Any):
        """A copy with other options (seed, exclude_self, ...), sharing the loaded model or bank."""
        twin = copy.copy(self)
        for key, value in options.items():
            if key not in vars(twin) and not hasattr(type(twin), key):  # a property is not read
                raise AttributeError(f"{type(self).__name__} has no option {key!r}")
            setattr(twin, key, value)
        return twin


class CachedJudge:
    """A judge behind the judgement cache: hits are read back (`cached=True`), misses judged in one batch."""

    def __init__(self, judge: Judge, cache: JudgementCache | None = None) -> None:
        self.inner = judge
        self.cache = cache or JudgementCache()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def version(self) -> str:
        return self.inner.version

    def params(self, item: ProbeItem) -> dict[str, Any]:
        return self.inner.params(item)

    def judge(self, clips: Sequence[Path], items: Sequence[ProbeItem]) -> list[Judgement]:
        check_batch(clips, items, self.name)
        name, version = self.inner.name, self.inner.version
        out: list[Judgement | None] = [None] * len(clips)
        misses: dict[str, list[int]] = {}  # key -> the clips that share it: judged once
        keys: dict[int, tuple[str, dict[str, Any]]] = {}
        for i, (clip, item) in enumerate(zip(clips, items)):
            params = self.inner.params(item)
            try:
                sha = audio.sha256_file(clip)
            except OSError as exc:
                out[i] = Judgement(
                    judge=name,
                    judge_version=version,
                    audio_sha256="",
                    params=params,
                    error=f"{UNREADABLE}: {exc}",
                )
                continue
            out[i] = self.cache.get(sha, name, version, params)
            if out[i] is None:
                keys[i] = (sha, params)
                misses.setdefault(cache_key(sha, name, version, params), []).append(i)
        # samples of a deterministic program are often the same bytes: one judgement serves them all
        todo = [same[0] for same in misses.values()]
        fresh = self.inner.judge([clips[i] for i in todo], [items[i] for i in todo]) if todo else []
        for same, j in zip(misses.values(), fresh, strict=True):
            sha, params = keys[same[0]]
            # the key is the wrapper's: a judge that misnamed itself cannot store under another's key
            update = {"judge": name, "judge_version": version, "audio_sha256": sha, "params": params}
            j = j.model_copy(update={**update, "cached": False})
            if not (j.error or "").startswith(UNREADABLE):
                self.cache.put(j)
            out[same[0]] = j
            for i in same[1:]:
                out[i] = j.model_copy(update={"cached": True})
        return out  # type: ignore[return-value]


def cached(judge: Judge, cache: JudgementCache | None = None) -> CachedJudge:
    if isinstance(judge, CachedJudge) and cache is None:
        return judge
    return CachedJudge(judge.inner if isinstance(judge, CachedJudge) else judge, cache)


def judge_all(
    judges: Sequence[Judge],
    clips: Sequence[Path],
    items: Sequence[ProbeItem],
    cache: JudgementCache | None = None,
) -> list[list[Judgement]]:
    """Every judge, cached, over the whole batch: each clip's judgements, in the order of `judges`."""
    per_judge = [cached(judge, cache).judge(clips, items) for judge in judges]
    return [list(row) for row in zip(*per_judge, strict=True)] if per_judge else [[] for _ in clips]


def target_item(tier: str, label: str = "", **fields: Any) -> ProbeItem:
    """An item that carries only a target (a pitch, a label): for judging a file outside a run (the CLI,
    validation). Not validated: a CLI pitch may be fractional."""
    return ProbeItem.model_construct(
        id=f"adhoc-{tier}-{label}", tier=tier, label=label, dataset="adhoc", **fields
    )
