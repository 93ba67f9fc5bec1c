"""Ratings: one JSON line per answer in listening/ratings.jsonl, appended under a lock and fsynced.

The first answer of a rater to a trial is the one kept: the same answer sent again (a double click, a
retried request) is acknowledged and not written twice; a different answer to an answered trial is
refused. A line torn by a crash is skipped on reading and never glued to the next one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from audioprobe import stored
from audioprobe.listening.trials import SIMILARITY, Trial
from tasks.records import Run, now_iso

# Used with fullmatch only: `$` also matches before a trailing newline, which made "ana\n" a new rater.
RATER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
TRIAL_ID = re.compile(r"[0-9a-f]{12}")  # the page's opaque ids (server.StudyServer.public); repeats look alike
MAX_ELAPSED_MS = 24 * 3600 * 1000


class RatingError(ValueError):
    """Input the page must refuse; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Answer(BaseModel):
    """What the page posts: strict types, no other field."""

    model_config = ConfigDict(extra="forbid", strict=True)
    rater: str
    trial: str
    similarity: str
    label: str | None = None
    elapsed_ms: int | None = None

    @field_validator("rater")
    @classmethod
    def _rater(cls, v: str) -> str:
        if not RATER.fullmatch(v):
            raise ValueError(
                "rater id: 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return v

    @field_validator("trial")
    @classmethod
    def _trial(cls, v: str) -> str:
        if not TRIAL_ID.fullmatch(v):
            raise ValueError("trial id: 12 hex digits")
        return v


class Rating(BaseModel):
    rater: str
    trial: str
    base: str
    gen_sha256: str
    ref_sha256: str
    similarity: str
    label: str | None = None
    elapsed_ms: int | None = None
    time: str
    format_version: int = 1  # stored record: a change bumps it and adds a migration (audioprobe/stored.py)


def check(answer: Answer, trials: dict[str, Trial]) -> Trial:
    trial = trials.get(answer.trial)
    if trial is None:
        raise RatingError(f"trial {answer.trial!r}: not a trial of this run", 404)
    if answer.similarity not in SIMILARITY:
        raise RatingError(f"trial {answer.trial}: similarity must be one of {', '.join(SIMILARITY)}")
    if trial.question == "label" and answer.label not in trial.choices:
        raise RatingError(f"trial {answer.trial}: label must be one of the trial's choices")
    if trial.question != "label" and answer.label is not None:
        raise RatingError(f"trial {answer.trial}: this trial asks no label")
    if answer.elapsed_ms is not None and not 0 <= answer.elapsed_ms <= MAX_ELAPSED_MS:
        raise RatingError(f"trial {answer.trial}: elapsed_ms out of range")
    return trial


class BlindLabel(BaseModel):
    """The label of a 5-way trial, posted before its reference may be played."""

    model_config = ConfigDict(extra="forbid", strict=True)
    rater: str
    trial: str
    label: str
    format_version: int = 1  # stored in listening/blind_labels.jsonl: a change adds a migration

    _rater = field_validator("rater")(Answer._rater.__func__)
    _trial = field_validator("trial")(Answer._trial.__func__)


def parse_answer(body: bytes, model: type[BaseModel] = Answer):
    """The body as `model`; any parse failure (bad UTF-8, bad JSON, 2,000 nested '[', a 5,000-digit
    number) is a RatingError, answered 400."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RatingError(f"body is not JSON: {type(exc).__name__}: {str(exc)[:100]}") from None
    if not isinstance(data, dict):
        raise RatingError("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise RatingError(f"{where}: {first['msg']}") from None


def read_lines(path: Path) -> tuple[list[Rating], int]:
    """The ratings in a JSONL file and how many lines were unreadable (torn by a crash, or edited)."""
    if not path.exists():
        return [], 0
    ratings, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            ratings.append(stored.load(Rating, line))
        except (ValueError, AttributeError):  # torn or edited: bad JSON, not an object, not a rating
            bad += 1
    return ratings, bad


class RatingLog:
    def __init__(self, run: Run):
        self.path = run.dir / "listening" / "ratings.jsonl"
        self._lock = threading.Lock()

    def ratings(self) -> list[Rating]:
        return read_lines(self.path)[0]

    def answered(self, rater: str) -> list[str]:
        return [r.trial for r in self.ratings() if r.rater == rater]

    def add(self, answer: Answer, trial: Trial) -> tuple[Rating, bool]:
        """(the kept rating, whether it is new); a changed answer to an answered trial is refused."""
        rating = Rating(
            rater=answer.rater,
            trial=trial.id,
            base=trial.base,
            gen_sha256=trial.gen_sha256,
            ref_sha256=trial.ref_sha256,
            similarity=answer.similarity,
            label=answer.label,
            elapsed_ms=answer.elapsed_ms,
            time=now_iso(),
        )
        written = self.append([rating])
        if written:
            return rating, True
        kept = next(r for r in self.ratings() if (r.rater, r.trial) == (rating.rater, rating.trial))
        if (kept.similarity, kept.label) != (rating.similarity, rating.label):
            raise RatingError(f"trial {trial.id}: already answered by {answer.rater}", 409)
        return kept, False

    def append(self, ratings: Iterable[Rating]) -> list[Rating]:
        """Append the ratings not yet in the log (by rater and trial); return those written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another `listen` process on the same run
            seen = {(r.rater, r.trial) for r in self.ratings()}
            new = []
            for r in ratings:
                if (r.rater, r.trial) not in seen:
                    seen.add((r.rater, r.trial))
                    new.append(r)
            if new:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    torn = os.fstat(fd).st_size and not self._ends_with_newline()
                    payload = ("\n" if torn else "") + "".join(stored.dumps(r) + "\n" for r in new)
                    os.write(fd, payload.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return new

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"


def merge(run: Run, files: Iterable[Path], trials: dict[str, Trial]) -> dict:
    """Add other raters' JSONL files to the run's log; ratings of other clips than the trials' are refused."""
    taken, refused, unreadable = [], 0, 0
    for f in files:
        ratings, bad = read_lines(Path(f))
        unreadable += bad
        for r in ratings:
            t = trials.get(r.trial)
            if t is None or (t.gen_sha256, t.ref_sha256) != (r.gen_sha256, r.ref_sha256):
                refused += 1
            else:
                taken.append(r)
    written = RatingLog(run).append(taken)
    return {
        "merged": len(written),
        "already_there": len(taken) - len(written),
        "refused_other_clips": refused,
        "unreadable_lines": unreadable,
    }
