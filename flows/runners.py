"""Which engine runs the tasks: Prefect's thread pool here, or a Dask cluster for scale-out."""

from __future__ import annotations

import atexit
import os
import threading

from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from audioprobe.settings import get_settings

_cluster = None
_cluster_lock = threading.Lock()


def task_runner():
    settings = get_settings()
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.dask_address or local_cluster_address())
    return ThreadPoolTaskRunner(max_workers=settings.task_workers)


def local_cluster_address() -> str:
    """This process's one local Dask cluster, started on first use and closed at exit. Every sub-flow's
    runner connects to it: a cluster per sub-flow cost 10-30 s of worker start-up each, 12 times a run
    at the paper's size, and side-by-side sub-flows would have started a cluster each."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            import dask
            from distributed import LocalCluster

            # Dask's worker profiler calls sys._current_frames() every 10 ms. In CPython 3.11 that holds
            # the interpreter's thread-list lock while it allocates; a garbage collection then runs Dask's
            # GC-diagnosis callback, which reads /proc and lets go of the GIL, and a task thread that takes
            # the GIL to start a thread (Prefect starts one per concurrency lease) waits for that lock:
            # both wait for good. It froze a worker for 6 minutes, twice, in a paper-size run
            # (docs/orchestration.md). The variable reaches the worker processes the nannies spawn.
            os.environ["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = "False"
            dask.config.set({"distributed.worker.profile.enabled": False})
            settings = get_settings()
            _cluster = LocalCluster(n_workers=settings.dask_workers,
                                    threads_per_worker=settings.dask_threads, processes=True,
                                    dashboard_address=None)
            atexit.register(close_local_cluster)
        return _cluster.scheduler_address


def close_local_cluster() -> None:
    global _cluster
    with _cluster_lock:
        if _cluster is not None:
            _cluster.close()
            _cluster = None


def ask_batch_size(settings=None) -> int:
    """Items asked of a model per task run: 1 on threads, where a task run costs ~3 ms of CPU and the UI
    shows an item's own `generate` run; task_workers / 2 on Dask, where one costs ~0.1 CPU-s between the
    client and a worker (Prefect serialises its settings context and pickles the call for every submit:
    300 no-op task runs measured here, 2026-12-06) and a run of 5,800 items spent a third of its CPU so."""
    settings = settings or get_settings()
    return max(1, settings.task_workers // 2) if settings.task_runner == "dask" else 1


def no_futures(value):
    """A task argument that holds no futures, marked so that Prefect does not walk every field of it
    looking for some (twice per task run: 0.6 s of CPU per 24 items here). Not on Dask: its pickling
    turns Prefect's `quote` (a named tuple) into a plain tuple, and the task would get that tuple."""
    if get_settings().task_runner == "dask":
        return value
    return quote(value)
