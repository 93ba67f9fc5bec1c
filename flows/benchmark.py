"""The benchmark: models x tiers x prompt methods x samples, each tier its own flow, the models side by side."""

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from prefect import flow, get_run_logger, tags, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from audioprobe.prefect_server import orchestration_lost
from audioprobe.settings import get_settings
from flows.runners import task_runner
from flows.tiers import tier_flow
from flows.ui import best_effort
from tasks import comparisons, runs
from tasks.generation import breaker, local_model, local_server
from tasks.generation.breaker import breaker_for
from tasks.probesets.common import DatasetError
from tasks.records import Run


@flow(name="benchmark", flow_run_name="benchmark-{run.run_id}", log_prints=True)
def benchmark_flow(run: Run, refresh: str | None = None) -> State:
    """Parameters live in the run's manifest, so a UI retry of this flow run resumes the same run.

    refresh: None, or "execution" / "judging" to redo that stage for items without a final outcome
    (what `audioprobe retry --only` sets up). Ends Failed, with the one-line reason, when any item was
    left without a final outcome (a model unavailable, the Prefect server lost); the report says so too.
    """
    manifest = run.manifest
    breaker.reset()  # a model that was down in an earlier run in this process is asked again
    local_server.forget_deaths()
    try:
        for tier in manifest.tiers:
            runs.items_for(run, tier)  # sample and freeze the items once, before any model runs
    except DatasetError as exc:
        return _failed(run, f"the {tier} probe set cannot be read: {exc}")
    for model in manifest.models:
        if problem := _model_problem(run, model):
            # This model cannot be asked: its items are recorded as not attempted, the others go on.
            get_run_logger().error(f"model {model!r} unavailable: {problem}")
            breaker_for(model, get_settings().breaker_threshold).trip(problem)
    side_by_side(partial(probe_model, run, refresh=refresh), manifest.models)
    if orchestration_lost():  # nothing more can be shown in the UI; the CLI says why
        return Failed(message=orchestration_lost())
    runs.write_table(run)
    unfinished = runs.why_unfinished(run.outcomes(), runs.expected_count(run))
    run.conclude(unfinished)
    store_comparisons(run)
    build_and_publish_report(run)
    if unfinished:
        return _failed(run, unfinished, concluded=True)
    line = f"run {run.run_id} complete: {runs.counts_line(run.outcomes())}"
    get_run_logger().info(line)
    return Completed(message=line)


def probe_model(run: Run, model: str, refresh: str | None = None) -> None:
    """One model's sub-flows, one tier and method after another."""
    manifest = run.manifest
    for tier in manifest.tiers:
        for method in manifest.methods[tier]:
            if orchestration_lost():
                return
            with tags(f"model:{model}", f"tier:{tier}", f"method:{method}"):
                probe_tier = tier_flow(tier).with_options(task_runner=task_runner())
                probe_tier(run=run, model=model, method=method, refresh=refresh, return_state=True)


def side_by_side(probe: Callable[[str], None], models: list[str]) -> None:
    """Each model's sub-flows in a thread of their own, so one model's answer latency overlaps another's
    sandbox and judge work and every tier does not end on its own slowest item. The stages' limits
    (tasks/limits.py) are shared by the threads, so the sandbox and judge are not oversubscribed. Each
    thread runs in a copy of this flow run's context: Prefect then records its flows as sub-flows."""
    if len(models) == 1:
        probe(models[0])
        return
    with ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="model") as pool:
        futures = [pool.submit(contextvars.copy_context().run, probe, model) for model in models]
        for future in futures:
            future.result()


def _failed(run: Run, why: str, concluded: bool = False) -> State:
    """The flow run ends Failed with the one-line reason in its state and in its Logs tab."""
    if not concluded:
        run.conclude(why)
    line = f"run {run.run_id} incomplete: {why}"
    get_run_logger().error(line)
    return Failed(message=line)


def _model_problem(run: Run, model: str) -> str | None:
    """Why a model the run must ask cannot be asked at all (the embedded one is started here), or None."""
    from tasks.generation import baseline, llm

    if baseline.is_baseline(model) or not _needs_calls(run, model):
        return None
    if local_model.is_local(model):
        try:
            local_server.ensure_server(model)
        except local_model.LocalModelError as exc:
            return str(exc)
    return llm.check_model(model)


def run_benchmark(run: Run, refresh: str | None = None) -> State:
    """The benchmark flow as `audioprobe run` and the benches start it: without flow-run heartbeats. They
    only feed automations this project does not define (flows/orphans.py finds crashed runs), and each
    costs up to a second at the end of every flow run (Prefect joins its one-second sleep loop)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return benchmark_flow(run=run, refresh=refresh, return_state=True)


def _needs_calls(run: Run, model: str) -> bool:
    """Whether any pending item lacks a stored response: a replayed or resumed run that only needs the
    run must not load the local model (tens of seconds and a GiB of memory on a 2-core machine)."""
    from flows.probe import pending_work
    from tasks import pipeline
    from tasks.generation.llm import is_answered

    manifest = run.manifest
    for tier in manifest.tiers:
        for method in manifest.methods[tier]:
            for item, sample in pending_work(run, model, method, runs.items_for(run, tier), manifest.samples):
                if not is_answered(pipeline.render_prompt(item, method), model, sample, manifest.samples):
                    return True
    return False


@task(name="comparisons", cache_policy=NO_CACHE, persist_result=False)
def comparisons_task(run: Run) -> str:
    return str(comparisons.store_comparisons(run))


def store_comparisons(run: Run) -> None:
    """The cross-model tables the report shows, stored now so the report only reads. A failure is logged
    and the report says the table is missing; the run's items are judged already."""
    state = comparisons_task(run=run, return_state=True)
    if not state.is_completed():
        get_run_logger().error(f"comparisons not stored: {state.message}; `audioprobe retry {run.run_id} "
                               "--only judging` computes them")


def build_and_publish_report(run: Run):
    from audioprobe.report import build_report, report_summary
    from audioprobe.report_server import report_url

    path = build_report(run)
    url = report_url(run.run_id)
    summary = (f"{report_summary(run)}\n\n**Report over http:** [{url}]({url}) (served by `audioprobe report "
               f"--serve` or `audioprobe serve`)\n\n{_retry_hint(run)}")
    best_effort("publish the summary", create_markdown_artifact, summary, key="benchmark-summary",
                description=f"run {run.run_id}")
    best_effort("link the report", create_link_artifact, url,
                link_text=f"report of {run.run_id}", key="benchmark-report",
                description=f"served by `audioprobe report --serve` or `audioprobe serve`; the file: {path}")
    return path


def _retry_hint(run: Run) -> str:
    """How to retry this run's failures: the retry deployment's form when one is served, else the CLI."""
    from prefect.client.orchestration import get_client

    command = f"`audioprobe retry {run.run_id} --only execution --status timeout,memory`"
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("retry/retry")
            ui = str(client.api_url).rstrip("/").removesuffix("/api")
    except Exception:  # noqa: BLE001 - not served (ObjectNotFound) or the server is away: the CLI line
        return f"**Retry failed items:** {command} (or serve the `retry` deployment with `audioprobe serve`)."
    return (f"**Retry failed items:** [the retry deployment]({ui}/deployments/deployment/{deployment.id}) "
            f"(Run ▸ Custom run, run_id `{run.run_id}`, `only` a stage, `status` names), or {command}.")
