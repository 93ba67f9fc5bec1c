"""Which engine runs the tasks: Prefect's thread pool here, or a Dask cluster for scale-out."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner

from audioprobe.settings import get_settings


def task_runner():
    settings = get_settings()
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 2,
                                              "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=settings.task_workers)
