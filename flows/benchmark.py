"""The benchmark: models x tiers x prompt methods x samples, each tier its own flow."""

from __future__ import annotations

from prefect import flow, tags
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from audioprobe.settings import get_settings
from flows.runners import task_runner
from flows.tiers import TIER_FLOWS
from tasks import runs
from tasks.generation import local_model
from tasks.records import RunStore


@flow(name="benchmark", flow_run_name="benchmark-{run_id}", log_prints=True)
def benchmark_flow(run_id: str, refresh: str | None = None) -> str:
    """Parameters live in the run's manifest, so a UI retry of this flow run resumes the same run.

    refresh: None, or "execution" / "judging" to redo that stage for items without a final outcome
    (what `audioprobe retry --only` sets up).
    """
    store = RunStore.open(run_id)
    manifest = store.manifest()
    for tier in manifest.tiers:
        runs.items_for(store, tier)  # sample and freeze the items once, before any model runs
    for model in manifest.models:
        if local_model.is_local(model) and _needs_calls(store, model):
            local_model.ensure_server(model)
        for tier in manifest.tiers:
            for method in manifest.methods[tier]:
                with tags(f"model:{model}", f"tier:{tier}", f"method:{method}"):
                    tier_flow = TIER_FLOWS[tier].with_options(task_runner=task_runner())
                    tier_flow(run_id=run_id, model=model, method=method, refresh=refresh)
    runs.write_table(store)
    report_path = build_and_publish_report(store)
    store.finish()
    return str(report_path)


def _needs_calls(store: RunStore, model: str) -> bool:
    """Whether any pending item lacks a stored response: a replayed or resumed run that only needs the
    store must not load the local model (tens of seconds and a GiB of memory on a 2-core machine)."""
    from flows.probe import pending_work
    from tasks import pipeline
    from tasks.generation.llm import request_of
    from tasks.generation.store import ResponseStore

    manifest, responses = store.manifest(), ResponseStore(get_settings().responses_dir)
    for tier in manifest.tiers:
        for method in manifest.methods[tier]:
            for item, sample in pending_work(store, model, method, runs.items_for(store, tier), manifest.samples):
                key = request_of(pipeline.render_prompt(item, method), model, sample, samples=manifest.samples)[3]
                if not responses.path(key).exists():
                    return True
    return False


def build_and_publish_report(store: RunStore):
    from tasks.report import build_report, summary_markdown

    path = build_report(str(store.dir))
    create_markdown_artifact(summary_markdown(store), key="benchmark-summary", description=f"run {store.run_id}")
    create_link_artifact(path.resolve().as_uri(), link_text=f"report of {store.run_id}", key="benchmark-report")
    return path
