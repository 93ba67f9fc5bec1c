"""The deployments: the nightly benchmark (a schedule, `prefect deployment run` or the UI's Run button
start it) and the selective retry (the UI's form). Each does what `audioprobe run` / `audioprobe retry`
do with the same options, through the same checks, and records the same outcomes.

Served by `audioprobe serve` (or `make serve`) in one process, or deployed to a process work pool with
`prefect deploy` from prefect.yaml and run by `prefect worker start --pool audioprobe`.
"""

import os
import shlex
import sys
from datetime import timedelta
from pathlib import Path

from prefect import flow, get_run_logger, tags
from prefect.states import Completed, Failed, State

from audioprobe.cli import UserError
from audioprobe.schema import RunRequest
from flows.benchmark import benchmark_flow
from tasks import runs
from tasks.records import Run

NIGHTLY = "nightly-benchmark/nightly"
RETRY = "retry/retry"


@flow(name="nightly-benchmark", flow_run_name="nightly-{tiers}", log_prints=True)
def nightly_flow(
    models: list[str],
    tiers: list[str] | None = None,
    methods: list[str] | None = None,
    limit: int | None = None,
    samples: int = 1,
    repair_rounds: int = 0,
    seed: int = 0,
    dataset_root: str | None = None,
    split: str | None = None,
) -> State:
    """Starts (or resumes, after a crash) the night's run, then runs it. tiers None: the paper's three (`all`)."""
    request = RunRequest(
        models=models,
        tiers=tiers or ["all"],
        methods=methods,
        limit=limit,
        samples=samples,
        repair_rounds=repair_rounds,
        seed=seed,
        dataset_root=dataset_root,
        split=split,
    )
    try:
        run = runs.start_request(runs.check_request(request))
    except UserError as exc:
        return _refused(f"nightly run refused: {exc}")
    _rename_flow_run(f"nightly-{run.run_id}")
    get_run_logger().info(f"run {run.run_id} ({run.dir})")
    return run_in_this_process(run, refresh=None)


@flow(name="retry", flow_run_name="retry-{run_id}", log_prints=True)
def retry_flow(run_id: str, only: str | None = None, status: list[str] | None = None) -> State:
    """Rerun the failed items of a run: `only` a stage (generation, execution, judging), `status` the
    failure, execution status or model error names to match (none: every failure of that stage)."""
    try:
        run = Run.open(run_id)
        chosen, refresh = runs.plan_retry(run, only, status)
    except FileNotFoundError as exc:
        return _refused(f"retry refused: {exc}")
    except UserError as exc:
        return _refused(f"retry refused: {exc}")
    get_run_logger().info(f"retrying {len(chosen)} failed item(s) of run {run.run_id}")
    if not chosen:
        return Completed(message=f"run {run.run_id}: no failed item matches")
    runs.prepare_retry(run, chosen)
    return run_in_this_process(run, refresh)


def run_in_this_process(run: Run, refresh: str | None) -> State:
    """What `audioprobe run` does around the benchmark flow, minus the terminal: one client per run
    directory, the global limits, crashed flow runs of dead clients marked, this process's tag."""
    from flows import orphans
    from tasks import limits

    with orphans.run_lock(run):
        if limits.global_limits_on():
            limits.ensure_limits(models=run.manifest.models)
        run.manifest.incomplete = None
        run.save_manifest()
        orphans.crash_orphaned_flow_runs()
        with tags(orphans.client_tag()):
            state = benchmark_flow(run=run, refresh=refresh, return_state=True)
    # A new state with the benchmark's one line: Prefect would summarise it as "All states completed."
    return Completed(message=state.message) if state.is_completed() else Failed(message=state.message)


def _refused(line: str) -> State:
    get_run_logger().error(line)
    return Failed(message=line)


def _rename_flow_run(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from flows.ui import best_effort

    def rename():
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=name)

    best_effort("name the flow run after its run", rename)


# --------------------------------------------------------------------------- serving


def schedule(cron: str | None, interval_s: float | None, timezone: str | None):
    from prefect.schedules import Cron, Interval

    if interval_s:
        return Interval(timedelta(seconds=interval_s), timezone=timezone)
    return Cron(cron, timezone=timezone) if cron else None


def trigger_line(deployment: str, api_url: str, params: dict | None = None) -> str:
    """A command that starts the deployment from any shell: the server's URL and prefect's full path."""
    prefect = str(Path(sys.executable).with_name("prefect"))
    words = [prefect, "deployment", "run", deployment]
    for key, value in (params or {}).items():
        words += ["--param", f"{key}={value}"]
    return f"PREFECT_API_URL={api_url} " + shlex.join(words)


def serve_deployments(
    request: RunRequest, cron: str | None, interval_s: float | None, timezone: str | None, api_url: str
) -> None:
    """Serve both deployments from this process until Ctrl-C; flow runs execute in subprocesses.
    `request` is the checked one (`runs.check_request`): the nightly deployment's parameters."""
    from prefect import serve
    from prefect.deployments.runner import EntrypointType

    parameters = request.model_dump(exclude_defaults=True)
    when = schedule(cron, interval_s, timezone)
    nightly = nightly_flow.to_deployment(
        name="nightly",
        schedules=[when] if when else None,
        parameters=parameters,
        tags=["audioprobe", "nightly"],
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="audioprobe benchmark over models x tiers; parameters as `audioprobe run` takes them",
    )
    retry = retry_flow.to_deployment(
        name="retry",
        tags=["audioprobe", "retry"],
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="rerun the failed items of a run, as `audioprobe retry RUN_ID --only STAGE --status ...`",
    )
    ui = api_url.removesuffix("/api")
    print(
        f"serving {NIGHTLY} ({_when(cron, interval_s, timezone)}) and {RETRY}; Prefect UI: {ui}/deployments",
        file=sys.stderr,
    )
    print(f"start the nightly run now:  {trigger_line(NIGHTLY, api_url)}", file=sys.stderr)
    print(
        f"retry a run's failures:     {trigger_line(RETRY, api_url, {'run_id': 'RUN_ID'})}",
        file=sys.stderr,
        flush=True,
    )
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "5")
    serve(nightly, retry, print_starting_message=False)


def _when(cron: str | None, interval_s: float | None, timezone: str | None) -> str:
    if interval_s:
        return f"every {interval_s:g} s"
    return f"cron {cron!r} {timezone or 'UTC'}" if cron else "no schedule"
