"""One flow per tier. Each probes its items with flows.probe and adds what only that tier needs."""


from prefect import flow, get_run_logger
from prefect.context import TagsContext
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from audioprobe.prefect_server import orchestration_lost
from audioprobe.schema import ItemOutcome
from flows.probe import probe_items
from flows.ui import best_effort
from tasks import pipeline, runs
from tasks.records import Run


def untagged_task_runs() -> TagsContext:
    """Task runs carry no tags: for every tag of every task run Prefect asks the server for a tag-based
    concurrency limit (one API call per task run, and this project sets none; its limits are global
    ones, tasks/limits.py). The flow runs carry the model, tier and method tags the UI filters by."""
    return TagsContext(current_tags=set())


def _name(tier: str) -> str:
    return tier + "-{model}-{method}"


def _probe_tier(tier: str, run: Run, model: str, method: str, refresh: str | None) -> list[ItemOutcome]:
    items = runs.items_for(run, tier)
    outcomes = probe_items(run, model, method, items, refresh)
    pipeline.reference_points(run, tier, items)
    return outcomes


@flow(name="notes", flow_run_name=_name("notes"), log_prints=True)
def notes_flow(run: Run, model: str, method: str = "paper", refresh: str | None = None) -> State:
    with untagged_task_runs():
        outcomes = _probe_tier("notes", run, model, method, refresh)
        run.replace_fad(model, method, pipeline.fad_per_class(outcomes, model, method))
        return conclude(run, "notes", model, method, outcomes)


@flow(name="environmental", flow_run_name=_name("environmental"), log_prints=True)
def environmental_flow(run: Run, model: str, method: str = "detailed", refresh: str | None = None) -> State:
    with untagged_task_runs():
        outcomes = _probe_tier("environmental", run, model, method, refresh)
        return conclude(run, "environmental", model, method, outcomes)


@flow(name="speech", flow_run_name=_name("speech"), log_prints=True)
def speech_flow(run: Run, model: str, method: str = "paper", refresh: str | None = None) -> State:
    with untagged_task_runs():
        outcomes = _probe_tier("speech", run, model, method, refresh)
        return conclude(run, "speech", model, method, outcomes)


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


TIER_FLOWS = {"notes": notes_flow, "environmental": environmental_flow, "speech": speech_flow}


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
