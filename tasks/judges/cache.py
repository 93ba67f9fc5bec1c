"""Judgements cached on disk: a judgement is a function of (audio sha256, judge, judge version, params).

A rerun with the same key reads the stored Judgement back (with `cached=True`) and never recomputes.
Anything that can change the answer belongs in the judge version (model, preprocessing) or the params
(seed, target, distractor vocabulary). Errors are cached too: a judge that fails deterministically on
a clip fails the same way next time, and costs nothing to say so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from audioprobe.schema import Judgement
from tasks.fileio import atomic_write


_refreshing: ContextVar[bool] = ContextVar("refreshing_judgements", default=False)


@contextmanager
def refreshed(on: bool = True) -> Iterator[None]:
    """Inside, judges judge again instead of reading the cache (and store the new judgement):
    `audioprobe retry --only judging` after a judge was fixed, or its error was the machine's."""
    token = _refreshing.set(on)
    try:
        yield
    finally:
        _refreshing.reset(token)


def cache_key(audio_sha256: str, judge: str, judge_version: str, params: dict[str, Any]) -> str:
    blob = json.dumps([audio_sha256, judge, judge_version, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgementCache:
    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from audioprobe.settings import get_settings

            root = get_settings().judgements_dir
        self.root = Path(root)

    def path(self, key: str, judge: str) -> Path:
        return self.root / re.sub(r"[^A-Za-z0-9_.-]+", "_", judge) / key[:2] / f"{key}.json"

    def get(self, audio_sha256: str, judge: str, judge_version: str, params: dict[str, Any]) -> Judgement | None:
        path = self.path(cache_key(audio_sha256, judge, judge_version, params), judge)
        if _refreshing.get() or not path.is_file():
            return None
        j = Judgement.model_validate_json(path.read_text())
        j.cached = True
        return j

    def put(self, j: Judgement) -> None:
        path = self.path(cache_key(j.audio_sha256, j.judge, j.judge_version, j.params), j.judge)
        atomic_write(path, j.model_copy(update={"cached": False}).model_dump_json())

    def get_or_compute(
        self, audio_sha256: str, judge: str, judge_version: str, params: dict[str, Any],
        compute: Callable[[], Judgement],
    ) -> Judgement:
        hit = self.get(audio_sha256, judge, judge_version, params)
        if hit is not None:
            return hit
        j = compute()
        self.put(j)
        return j
