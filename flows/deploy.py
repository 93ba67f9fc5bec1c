"""The scheduled deployment: a nightly benchmark, served by `make serve` (or `audioprobe serve`)."""

from __future__ import annotations

from prefect import flow

from flows.benchmark import benchmark_flow
from tasks import runs


@flow(name="nightly-benchmark", flow_run_name="nightly-{tiers}", log_prints=True)
def nightly_flow(models: list[str], tiers: list[str], limit: int | None = None, samples: int = 1,
                 seed: int = 0, dataset_root: str | None = None) -> str:
    """Starts (or resumes, after a crash) the night's run, then runs it."""
    run = runs.start_or_resume(models, tiers, runs.methods_for(tiers, None), samples, limit, seed, dataset_root)
    print(f"run {run.run_id}")
    return benchmark_flow(run=run)


def serve_nightly(cron: str, models: list[str], tiers: list[str], limit: int | None) -> None:
    nightly_flow.serve(
        name="nightly",
        cron=cron,
        parameters={"models": models, "tiers": tiers, "limit": limit},
        tags=["audioprobe", "nightly"],
        description="audioprobe benchmark over models x tiers, every night",
    )
