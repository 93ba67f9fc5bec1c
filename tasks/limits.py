"""Limits that hold across processes, each at the scope of what it protects.

A `threading.BoundedSemaphore` bounds the threads of one process; with two Dask worker processes (or
two `audioprobe run`s on one machine) every such limit doubles. So, when several processes share the
work (`global_limits_on`):

- a machine's resources are bounded on the machine, by lock files (`MachineSlots`): `audioprobe-sandbox`
  (containers running at once on this machine's Docker engine, settings.sandbox_concurrency) and
  `audioprobe-judge` (judge calls at once on its CPU or GPU, settings.judge_concurrency). A slot is
  taken the moment one is free, costs no API call, and is freed by the kernel when its holder dies;
- a model's limits hold wherever its callers run, in the Prefect server, as global concurrency limits:
  `audioprobe-llm-<model>` (requests in flight to one model, its max_concurrency) and
  `audioprobe-llm-rate-<model>` (its requests_per_minute, a limit whose slots decay: Prefect's rate
  limit, a slot taken is freed by time, not by the holder).

Why not every limit in the server: at the paper's size a sandbox slot per program, polled by every
waiting thread, made the concurrency-limit endpoints the server's largest single cost, and a denied
waiter sleeps for the server's Retry-After (the limit's mean occupancy) while a slot stands free
(docs/orchestration.md, "Machine slots").

`ensure_limits` creates or updates the server's (idempotent; the settings are the source of truth, so a
changed setting changes the server's limit). `slot()` and `throttle()` are strict: a limit that does
not exist is an error, never a silent "no limit".
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


MACHINE_SCOPED = (SANDBOX, JUDGE)


def wanted(settings, models: Iterable[str] = ()) -> list[LimitSpec]:
    """The server-held limits these settings ask for: each model's (named as settings.models keys them)."""
    specs = []
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


class MachineSlots:
    """At most `size` holders of `name` at once among all processes of this machine: slot i is an
    exclusive `flock` on `<dir>/<name>.<i>.lock`. The kernel frees a dead holder's lock, so a killed
    worker leaks nothing; two runs with different sizes share slots 0..min-1 (each keeps its own bound)."""

    POLL_S = (0.005, 0.1)  # first and longest wait between two looks, when every slot is held

    def __init__(self, directory: Path, name: str, size: int) -> None:
        self.paths = [directory / f"{name}.{i}.lock" for i in range(max(1, size))]
        directory.mkdir(parents=True, exist_ok=True)

    def _try(self) -> int | None:
        for path in random.sample(self.paths, len(self.paths)):  # no slot is everyone's first look
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        return None

    @contextmanager
    def hold(self) -> Iterator[None]:
        wait = self.POLL_S[0]
        while (fd := self._try()) is None:
            time.sleep(wait)
            wait = min(wait * 2, self.POLL_S[1])
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases its lock


def machine_slots_dir(settings=None) -> Path:
    if settings is None:
        from audioprobe.settings import get_settings

        settings = get_settings()
    return settings.cache_dir / "slots"


@contextmanager
def bound(name: str, size: int) -> Iterator[None]:
    """Hold one of `size` slots of `name`. With global limits on: a machine's slot (`MachineSlots`) for
    the sandbox and the judges, else the Prefect global limit ensure_limits made with the same size.
    Without: this process's semaphore."""
    if global_limits_on():
        if name in MACHINE_SCOPED:
            with MachineSlots(machine_slots_dir(), name, size).hold():
                yield
            return
        with slot(name):
            yield
        return
    with _local_lock:
        sem = _local.setdefault(name, threading.BoundedSemaphore(max(1, size)))
    with sem:
        yield
