"""Which engine runs the tasks: Prefect's thread pool here, or a Dask cluster for scale-out."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

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


def no_futures(value):
    """A task argument that holds no futures, marked so that Prefect does not walk every field of it
    looking for some (twice per task run: 0.6 s of CPU per 24 items here). Not on Dask: its pickling
    turns Prefect's `quote` (a named tuple) into a plain tuple, and the task would get that tuple."""
    if get_settings().task_runner == "dask":
        return value
    return quote(value)
