"""One flow per tier. Each probes its items with flows.probe and adds what only that tier needs."""

from __future__ import annotations

from prefect import flow, tags
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from audioprobe.prefect_server import orchestration_lost
from audioprobe.schema import ItemOutcome
from flows.probe import probe_items
from flows.ui import best_effort
from tasks import pipeline, runs
from tasks.records import RunStore


def _name(tier: str) -> str:
    return tier + "-{model}-{method}"


def _probe_tier(tier: str, run_id: str, model: str, method: str, refresh: str | None):
    store = RunStore.open(run_id)
    items = runs.items_for(store, tier)
    outcomes = probe_items(run_id, model, method, items, store.manifest().samples, refresh)
    pipeline.reference_points(run_id, tier, items)
    return store, outcomes


@flow(name="notes", flow_run_name=_name("notes"), log_prints=True)
def notes_flow(run_id: str, model: str, method: str = "paper", refresh: str | None = None) -> State:
    with tags("tier:notes", f"model:{model}", f"method:{method}"):
        store, outcomes = _probe_tier("notes", run_id, model, method, refresh)
        fad = pipeline.fad_per_class(outcomes)
        for result in fad:
            result.model, result.method = model, method
        kept = [r for r in store.fad() if (r.model, r.method) != (model, method)]
        store.save_fad(kept + fad)
        return conclude(store, "notes", model, method, outcomes)


@flow(name="environmental", flow_run_name=_name("environmental"), log_prints=True)
def environmental_flow(run_id: str, model: str, method: str = "detailed", refresh: str | None = None) -> State:
    with tags("tier:environmental", f"model:{model}", f"method:{method}"):
        store, outcomes = _probe_tier("environmental", run_id, model, method, refresh)
        return conclude(store, "environmental", model, method, outcomes)


@flow(name="speech", flow_run_name=_name("speech"), log_prints=True)
def speech_flow(run_id: str, model: str, method: str = "paper", refresh: str | None = None) -> State:
    with tags("tier:speech", f"model:{model}", f"method:{method}"):
        store, outcomes = _probe_tier("speech", run_id, model, method, refresh)
        return conclude(store, "speech", model, method, outcomes)


def conclude(store: RunStore, tier: str, model: str, method: str, outcomes: list[ItemOutcome]) -> State:
    """The flow run's final state: Failed, with the one-line reason, when items were left unfinished
    (programs that fail are results, not failures); Completed with the counts otherwise."""
    publish(store.run_id, tier, model, method, outcomes)
    expected = runs.expected_count(store, model, tier, method)
    unfinished = runs.why_unfinished(outcomes, expected, orchestration_lost())
    if unfinished:
        return Failed(message=f"{tier} · {model} · {method}: {unfinished}")
    return Completed(message=runs.counts_line(outcomes))


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
