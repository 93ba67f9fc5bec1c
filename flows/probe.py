"""The pipeline of the paper's Figure 1, for a batch of items: prompt -> LLM -> code -> sandbox ->
WAV -> gate -> judge -> record. Wiring only; the work is in tasks.pipeline."""

from __future__ import annotations

from prefect import unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture

from audioprobe.schema import ItemOutcome, ProbeItem
from audioprobe.settings import get_settings
from tasks import pipeline, repair
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
    """Probe the items that have no final outcome; `refresh` re-runs that stage instead of reusing it.
    With repair rounds, each round asks again, with feedback, for the items whose last round failed."""
    store = RunStore.open(run_id)
    execute = pipeline.execute.with_options(refresh_cache=refresh == "execution")
    judge = pipeline.judge.with_options(refresh_cache=refresh in ("execution", "judging"))
    manifest = store.manifest()
    rounds = repair.rounds_for(model, manifest.repair_rounds)
    for round_ in range(rounds + 1):
        work = [a for a in repair.next_attempts(store, model, method, items, samples, rounds,
                                                lambda item: pipeline.render_prompt(item, method))
                if a.round == round_]
        if not work:
            continue
        if round_ > 0:
            _ensure_model(model, work, samples)
        progress = create_progress_artifact(0.0, description=f"{model} {method} round {round_}: items recorded")
        # Waves: Prefect's pool runs mapped tasks in submission order, so one map over 1,500 items would
        # make every LLM call before the first program runs and write no record until the very end.
        wave = max(1, get_settings().task_workers * WAVE_PER_WORKER)
        for start in range(0, len(work), wave):
            _probe_wave(run_id, model, method, work[start:start + wave], execute, judge, manifest.dataset_root,
                        samples)
            update_progress_artifact(progress, 100.0 * min(start + wave, len(work)) / len(work))
    return _all_outcomes(store, model, method, items, samples)


def _ensure_model(model: str, work: list[repair.Attempt], samples: int) -> None:
    """Repair rounds ask what no earlier run stored: start the embedded model when an answer is missing."""
    from tasks.generation import local_model
    from tasks.generation.llm import request_of
    from tasks.generation.store import ResponseStore

    if not local_model.is_local(model):
        return
    responses = ResponseStore(get_settings().responses_dir)
    if any(not responses.path(request_of(a.prompt, model, a.sample, samples=samples)[3]).exists() for a in work):
        local_model.ensure_server(model)


def _probe_wave(run_id, model, method, work, execute, judge, dataset_root, samples=1) -> None:
    todo_items = [a.item for a in work]
    todo_samples = [a.sample for a in work]
    prompts = [a.prompt for a in work]

    generations = pipeline.generate.map(prompts, model=unmapped(model), sample=todo_samples, item=todo_items,
                                        samples=unmapped(samples))
    executions = execute.map(generations, prompts)
    gates = pipeline.gate.map(executions, todo_items)
    judgements = judge.map(executions, gates, todo_items, dataset_root=unmapped(dataset_root))
    records = pipeline.record.map(
        unmapped(run_id), todo_items, unmapped(model), unmapped(method), todo_samples,
        prompts, generations, executions, gates, judgements,
        round=[a.round for a in work], repaired_from=[a.repaired_from for a in work],
    )
    for index, future in enumerate(records):
        future.wait()
        if not future.state.is_completed():
            _salvage(run_id, model, method, todo_items[index], todo_samples[index], prompts[index],
                     generations[index], executions[index], future, work[index].round)


def _salvage(run_id, model, method, item, sample, prompt, generation, execution, record_future, round_=0) -> None:
    """A stage failed for good (after its retries): record what was reached and why, lose nothing."""
    def value(future: PrefectFuture):
        return future.result() if future.state.is_completed() else None

    gen, exe = value(generation), value(execution)
    failed = next((f for f in (generation, execution, record_future) if not f.state.is_completed()), record_future)
    outcome = ItemOutcome(run_id=run_id, item=item, model=model, method=method, sample=sample, round=round_,
                          prompt=prompt, generation=gen, execution=exe)
    pipeline.save_outcome(outcome)  # classifies what it can
    outcome.failure = outcome.failure or "infrastructure"
    outcome.error = f"{item.id} ({model}, {method}, sample {sample}): {failed.state.message or failed.state.name}"
    RunStore.open(run_id).save_outcome(outcome)


def _all_outcomes(store: RunStore, model, method, items, samples) -> list[ItemOutcome]:
    found = (store.load_outcome(outcome_key(model, method, item.id, s)) for item in items for s in range(samples))
    return [o for o in found if o is not None]
