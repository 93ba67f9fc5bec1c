"""Limits that hold across processes: Prefect global concurrency and rate limits, made by the project.

A `threading.BoundedSemaphore` bounds the threads of one process; with two Dask worker processes (or
two `audioprobe run`s on one machine) every such limit doubles. A Prefect global concurrency limit
lives in the server, so every process that asks the same server shares it:

- `audioprobe-sandbox`: containers running at once (settings.sandbox_concurrency);
- `audioprobe-judge`: judge calls at once (settings.judge_concurrency);
- `audioprobe-llm-<model>`: requests in flight to one model (its max_concurrency);
- `audioprobe-llm-rate-<model>`: its requests_per_minute, as a limit whose slots decay (Prefect's
  rate limit: a slot taken is freed by time, not by the holder).

`ensure_limits` creates or updates them (idempotent; the settings are the source of truth, so a
changed setting changes the server's limit). `slot()` and `throttle()` are strict: a limit that does
not exist is an error, never a silent "no limit".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SANDBOX = "audioprobe-sandbox"
JUDGE = "audioprobe-judge"
LLM_PREFIX = "audioprobe-llm-"
LLM_RATE_PREFIX = "audioprobe-llm-rate-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # Prefect names may not hold '/', '%', ...


@dataclass(frozen=True)
class LimitSpec:
    name: str
    limit: int
    slot_decay_per_second: float = 0.0  # > 0: a rate limit

    @property
    def is_rate(self) -> bool:
        return self.slot_decay_per_second > 0


def _model_slug(model: str) -> str:
    return _UNSAFE.sub("-", model).strip("-").lower()


def llm_limit(model: str) -> str:
    return LLM_PREFIX + _model_slug(model)


def llm_rate_limit(model: str) -> str:
    return LLM_RATE_PREFIX + _model_slug(model)


def wanted(settings, models: Iterable[str] = ()) -> list[LimitSpec]:
    """The limits these settings ask for: sandbox, judge, and each model's (named as settings.models keys them)."""
    specs = [LimitSpec(SANDBOX, max(1, settings.sandbox_concurrency)),
             LimitSpec(JUDGE, max(1, settings.judge_concurrency))]
    for model in sorted(set(models)):
        ms = settings.model_settings(model)
        # the embedded model's server answers one request at a time (tasks/generation/llm.py)
        concurrency = 1 if model == "local" else max(1, ms.max_concurrency)
        specs.append(LimitSpec(llm_limit(model), concurrency))
        if rpm := ms.requests_per_minute:
            # burst as the per-process token bucket had it: at most max_concurrency at once
            specs.append(LimitSpec(llm_rate_limit(model), max(1, min(rpm, concurrency)), rpm / 60.0))
    return specs


def ensure_limits(settings=None, models: Iterable[str] = (), extra: Iterable[LimitSpec] = ()) -> list[LimitSpec]:
    """Create or update the project's limits on the Prefect server PREFECT_API_URL names."""
    from prefect.client.orchestration import get_client

    if settings is None:
        from audioprobe.settings import get_settings

        settings = get_settings()
    specs = [*wanted(settings, models), *extra]
    with get_client(sync_client=True) as client:
        for spec in specs:
            client.upsert_global_concurrency_limit_by_name(spec.name, spec.limit, spec.slot_decay_per_second)
    return specs


@contextmanager
def slot(name: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold one slot of the global limit `name` for the duration of the block, in any process."""
    from prefect.concurrency.sync import concurrency

    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True):
        yield


def throttle(name: str, timeout_s: float | None = None) -> None:
    """Wait for one slot of the rate limit `name` (freed by decay, not by us)."""
    from prefect.concurrency.sync import rate_limit

    rate_limit(name, occupy=1, timeout_seconds=timeout_s, strict=True)


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t opens)."""
    events = sorted((t, d) for a, b in intervals for t, d in ((a, 1), (b, -1)))
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


# --------------------------------------------------------------------------- what the pipeline holds

_local: dict[str, threading.BoundedSemaphore] = {}
_local_lock = threading.Lock()


def global_limits_on(settings=None) -> bool:
    """Server-held limits when several processes share the work (Dask), or when asked; else a semaphore
    per process: no API call per item, and no dependence on the server for a limit one process keeps."""
    if settings is None:
        from audioprobe.settings import get_settings

        settings = get_settings()
    return settings.global_limits if settings.global_limits is not None else settings.task_runner == "dask"


@contextmanager
def bound(name: str, size: int) -> Iterator[None]:
    """Hold one of `size` slots of `name`: the Prefect global limit when global limits are on (it was
    made by ensure_limits with the same size), else this process's semaphore."""
    if global_limits_on():
        with slot(name):
            yield
        return
    with _local_lock:
        sem = _local.setdefault(name, threading.BoundedSemaphore(max(1, size)))
    with sem:
        yield
