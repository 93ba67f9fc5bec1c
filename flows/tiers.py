"""One flow per tier, built from the registry (tasks/tiers): it probes the tier's items with flows.probe,
scores the controls, then the tier's set-level judges (notes: FAD)."""

from functools import cache

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TagsContext
from prefect.states import Completed, Failed, State

from audioprobe.prefect_server import orchestration_lost
from audioprobe.schema import ItemOutcome
from flows.probe import probe_items
from flows.ui import best_effort
from tasks import pipeline, runs
from tasks.records import Run
from tasks.tiers import get_tier


def untagged_task_runs() -> TagsContext:
    """Task runs carry no tags: for every tag of every task run Prefect asks the server for a tag-based
    concurrency limit (one API call per task run, and this project sets none; its limits are global
    ones, tasks/limits.py). The flow runs carry the model, tier and method tags the UI filters by."""
    return TagsContext(current_tags=set())


@cache
def tier_flow(name: str) -> Flow:
    """The flow of a registered tier, built once: Prefect names a flow per tier (`notes`, its runs
    `notes-{model}-{method}`), so the UI filters by tier while one function does the work."""
    tier = get_tier(name)

    def probe_tier(run: Run, model: str, method: str = tier.default_method, refresh: str | None = None) -> State:
        with untagged_task_runs():
            items = runs.items_for(run, tier.name)
            outcomes = probe_items(run, model, method, items, refresh)
            pipeline.reference_points(run, tier.name, items)
            tier.set_judges(run, outcomes, model, method)
            return conclude(run, tier.name, model, method, outcomes)

    probe_tier.__name__ = probe_tier.__qualname__ = f"{tier.name}_flow"
    return flow(name=tier.name, flow_run_name=tier.name + "-{model}-{method}", log_prints=True)(probe_tier)


def conclude(run: Run, tier: str, model: str, method: str, outcomes: list[ItemOutcome]) -> State:
    """The flow run's final state: Failed, with the one-line reason, when items were left unfinished
    (programs that fail are results, not failures); Completed with the counts otherwise."""
    publish(run.run_id, tier, model, method, outcomes)
    expected = runs.expected_count(run, model, tier, method)
    unfinished = runs.why_unfinished(outcomes, expected, orchestration_lost())
    if unfinished:
        line = f"{tier} · {model} · {method}: {unfinished}"
        get_run_logger().error(line)
        return Failed(message=line)
    line = runs.counts_line(outcomes)
    get_run_logger().info(f"{tier} · {model} · {method}: {line}")
    return Completed(message=line)


def tally(outcomes: list[ItemOutcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.failure or "ok"] = counts.get(outcome.failure or "ok", 0) + 1
    return counts


def outcome_row(outcome: ItemOutcome) -> dict:
    """The UI's columns of the record's stored row: the item, its status and each judge's verdict."""
    keep = ("item_id", "label", "sample", "round", "status", "failure_detail")
    return {k: v for k, v in outcome.row.items() if k in keep or k.endswith(("_correct", "_score"))}


def publish(run_id: str, tier: str, model: str, method: str, outcomes: list[ItemOutcome]) -> None:
    """The UI's view of a tier: a table of items and a short summary."""
    key = f"{tier}-{model}-{method}".lower().replace("/", "-").replace(".", "-").replace("_", "-")
    best_effort("publish the item table", create_table_artifact, [outcome_row(o) for o in outcomes],
                key=key[:100], description=f"run {run_id}")
    failures = tally(outcomes)
    lines = [f"### {tier} · {model} · {method}", f"run `{run_id}`, {len(outcomes)} items", ""]
    lines += [f"- {name}: {count}" for name, count in sorted(failures.items())]
    best_effort("publish the summary", create_markdown_artifact, "\n".join(lines), key=f"summary-{key}"[:100])
