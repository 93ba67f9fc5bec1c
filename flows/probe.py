"""The pipeline of the paper's Figure 1, for a batch of items: prompt -> LLM -> code -> sandbox ->
WAV -> gate -> judge -> record. Wiring only; the work is in tasks.pipeline."""

from __future__ import annotations

from prefect import unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture

from audioprobe.schema import ItemOutcome, ProbeItem
from audioprobe.settings import get_settings
from tasks import pipeline
from tasks.records import RunStore, outcome_key
from tasks.taxonomy import is_final


WAVE_PER_WORKER = 4  # items in flight per task worker: enough to overlap LLM, sandbox and judges


def pending_work(store: RunStore, model: str, method: str, items: list[ProbeItem], samples: int):
    """(item, sample) pairs without a final outcome: a rerun picks up exactly what is left."""
    work = []
    for item in items:
        for sample in range(samples):
            if not is_final(store.load_outcome(outcome_key(model, method, item.id, sample))):
                work.append((item, sample))
    return work


def probe_items(run_id: str, model: str, method: str, items: list[ProbeItem], samples: int,
                refresh: str | None = None) -> list[ItemOutcome]:
    """Probe the items that have no final outcome; `refresh` re-runs that stage instead of reusing it."""
    store = RunStore.open(run_id)
    work = pending_work(store, model, method, items, samples)
    if not work:
        return _all_outcomes(store, model, method, items, samples)
    execute = pipeline.execute.with_options(refresh_cache=refresh == "execution")
    judge = pipeline.judge.with_options(refresh_cache=refresh in ("execution", "judging"))
    dataset_root = store.manifest().dataset_root
    progress = create_progress_artifact(0.0, description=f"{model} {method}: items recorded")
    # Waves: Prefect's pool runs mapped tasks in submission order, so one map over 1,500 items would
    # make every LLM call before the first program runs and write no record until the very end.
    wave = max(1, get_settings().task_workers * WAVE_PER_WORKER)
    for start in range(0, len(work), wave):
        _probe_wave(run_id, model, method, work[start:start + wave], execute, judge, dataset_root)
        update_progress_artifact(progress, 100.0 * min(start + wave, len(work)) / len(work))
    return _all_outcomes(store, model, method, items, samples)


def _probe_wave(run_id, model, method, work, execute, judge, dataset_root) -> None:
    todo_items = [item for item, _ in work]
    todo_samples = [sample for _, sample in work]
    prompts = [pipeline.render_prompt(item, method) for item in todo_items]

    generations = pipeline.generate.map(prompts, model=unmapped(model), sample=todo_samples)
    executions = execute.map(generations, prompts)
    gates = pipeline.gate.map(executions, todo_items)
    judgements = judge.map(executions, gates, todo_items, dataset_root=unmapped(dataset_root))
    records = pipeline.record.map(
        unmapped(run_id), todo_items, unmapped(model), unmapped(method), todo_samples,
        prompts, generations, executions, gates, judgements,
    )
    for index, future in enumerate(records):
        future.wait()
        if not future.state.is_completed():
            _salvage(run_id, model, method, todo_items[index], todo_samples[index], prompts[index],
                     generations[index], executions[index], future)


def _salvage(run_id, model, method, item, sample, prompt, generation, execution, record_future) -> None:
    """A stage failed for good (after its retries): record what was reached and why, lose nothing."""
    def value(future: PrefectFuture):
        return future.result() if future.state.is_completed() else None

    gen, exe = value(generation), value(execution)
    failed = next((f for f in (generation, execution, record_future) if not f.state.is_completed()), record_future)
    outcome = ItemOutcome(run_id=run_id, item=item, model=model, method=method, sample=sample,
                          prompt=prompt, generation=gen, execution=exe)
    pipeline.save_outcome(outcome)  # classifies what it can
    outcome.failure = outcome.failure or "infrastructure"
    outcome.error = f"{item.id} ({model}, {method}, sample {sample}): {failed.state.message or failed.state.name}"
    RunStore.open(run_id).save_outcome(outcome)


def _all_outcomes(store: RunStore, model, method, items, samples) -> list[ItemOutcome]:
    found = (store.load_outcome(outcome_key(model, method, item.id, s)) for item in items for s in range(samples))
    return [o for o in found if o is not None]
