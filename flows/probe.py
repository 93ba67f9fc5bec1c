"""The pipeline of the paper's Figure 1 for a tier's items: prompt -> LLM -> code -> sandbox -> WAV ->
gate -> judge -> record. Wiring only; the work is in tasks.pipeline.

Items stream through the stages. Generation is a task run per item; execution and evaluation each take
the items that reached them in batches (as many programs as the sandbox runs at once; `judge_batch`
clips), so the orchestration pays one task run per batch and a GPU judge runs at batch speed. A stage
that is idle gets what waits at once; a busy one gets a batch when it is full, when nothing upstream
could still join it, or after BATCH_WAIT_S. The item is recorded by the flow the moment its evaluation
returns, so records arrive steadily, the thread pool never holds a thread waiting on another task, and a
killed client, server or machine loses only the items in flight. At most task_workers / 2 items are
between asking the model and reaching the sandbox: enough to keep a hosted model busy, few enough that
execute and evaluate tasks always find a free thread. Task arguments go through `no_futures`: they are
finished values (the loop waited for them), and Prefect would otherwise walk every field of every item,
prompt and execution looking for futures, twice per task run; `wait_for` keeps the UI's lineage.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from prefect.futures import PrefectFuture

from audioprobe.console import warn
from audioprobe.prefect_server import orchestration_lost
from audioprobe.schema import ItemOutcome, ProbeItem, RenderedPrompt
from audioprobe.settings import get_settings
from flows.runners import no_futures
from flows.ui import Progress
from tasks import pipeline, repair
from tasks.records import Run, outcome_key
from tasks.taxonomy import is_final

POLL_S = 0.05
BATCH_WAIT_S = 5.0


def pending_work(run: Run, model: str, method: str, items: list[ProbeItem], samples: int):
    """(item, sample) pairs without a final outcome: a rerun picks up exactly what is left."""
    work = []
    for item in items:
        for sample in range(samples):
            if not is_final(run.load_outcome(outcome_key(model, method, item.id, sample))):
                work.append((item, sample))
    return work


@dataclass(eq=False)
class InFlight:
    """One (item, sample) on its way through the stages. Execution and evaluation futures are shared by
    the items of a batch; `index` is this item's place in the batch's result list."""

    item: ProbeItem
    sample: int
    prompt: RenderedPrompt
    generation: PrefectFuture
    execution: PrefectFuture | None = None
    execution_index: int = 0
    evaluation: PrefectFuture | None = None
    evaluation_index: int = 0
    waiting_since: float = 0.0  # its stage is done; waiting for the next stage's batch to fill
    round: int = 0
    repaired_from: str | None = None

    @property
    def current(self) -> PrefectFuture:
        return self.evaluation or self.execution or self.generation

    @property
    def waiting(self) -> bool:
        return self.waiting_since > 0

    def executed(self):
        return self.execution.result()[self.execution_index]

    def evaluated(self):
        return self.evaluation.result()[self.evaluation_index]


def probe_items(run: Run, model: str, method: str, items: list[ProbeItem],
                refresh: str | None = None) -> list[ItemOutcome]:
    """Probe the items that have no final outcome; `refresh` re-runs that stage instead of reusing it.
    With repair rounds (tasks.repair), round r asks again, with feedback, where round r-1 failed."""
    samples = run.manifest.samples
    rounds = repair.rounds_for(model, run.manifest.repair_rounds)
    for round_ in range(rounds + 1):
        work = [a for a in repair.next_attempts(run, model, method, items, samples, rounds,
                                                lambda item: pipeline.render_prompt(item, method))
                if a.round == round_]
        if work and not orchestration_lost():
            if round_ > 0:
                _ensure_model(model, work, samples)
            _probe_round(run, model, method, deque(work), samples, refresh)
    return _all_outcomes(run, model, method, items, samples)


def _ensure_model(model: str, work: list[repair.Attempt], samples: int) -> None:
    """Repair rounds ask what no earlier run stored: start the embedded model when an answer is missing."""
    from tasks.generation import local_model, local_server
    from tasks.generation.llm import is_answered

    if not local_model.is_local(model):
        return
    if any(not is_answered(a.prompt, model, a.sample, samples) for a in work):
        local_server.ensure_server(model)


def _probe_round(run: Run, model: str, method: str, work: deque, samples: int, refresh: str | None) -> None:
    dataset_root = run.manifest.dataset_root
    settings = get_settings()
    window = max(1, settings.task_workers // 2)
    round_ = work[0].round
    progress = Progress(f"{model} {method}: items recorded" + (f" (repair round {round_})" if round_ else ""),
                        total=len(work))
    flying: list[InFlight] = []
    while work or flying:
        while work and sum(f.execution is None for f in flying) < window and not orchestration_lost():
            a = work.popleft()
            generation = pipeline.generate.submit(no_futures(a.prompt), model, a.sample, no_futures(a.item),
                                                  samples)
            flying.append(InFlight(a.item, a.sample, a.prompt, generation, round=a.round,
                                   repaired_from=a.repaired_from))
        if not flying:
            break  # the Prefect server is gone: nothing more is started; the caller says why
        done = [f for f in flying if not f.waiting and _finished(f.current)]
        for entry in done:
            entry.current.wait()  # done already: this sets the future's final state from its own result
            if not entry.current.state.is_completed():
                _salvage(run, model, method, entry)
                flying.remove(entry)
                progress.advance()
            elif entry.evaluation is None:
                entry.waiting_since = time.monotonic()  # for the next stage's batch
            else:
                gate_result, judgements = entry.evaluated()
                _record(run, model, method, entry, entry.generation.result(), entry.executed(), gate_result,
                        judgements)
                flying.remove(entry)
                progress.advance()
        started = _start_batches(flying, settings, refresh, dataset_root)
        if not done and not started:
            time.sleep(POLL_S)


def _start_batches(flying: list[InFlight], settings, refresh: str | None, dataset_root: str | None) -> bool:
    """Submit the execution and evaluation batches that are ready; True when one was."""
    generated = [f for f in flying if f.waiting and f.execution is None]
    executing = [f for f in flying if f.execution is not None and f.evaluation is None and not f.waiting]
    # An execute batch is what the sandbox runs at once: a bigger one would hold its first results back
    # until its last program had waited for a slot.
    slots = settings.sandbox_concurrency
    batch = _batch_ready(generated, slots, busy=len(executing) >= slots,
                         could_join=any(f.execution is None and not f.waiting for f in flying))
    if batch:
        execution = pipeline.execute.submit(no_futures([e.generation.result() for e in batch]),
                                            no_futures([e.prompt for e in batch]), refresh=refresh == "execution",
                                            wait_for=[e.generation for e in batch])
        for index, entry in enumerate(batch):
            entry.execution, entry.execution_index, entry.waiting_since = execution, index, 0.0
        return True
    executed = [f for f in flying if f.waiting and f.execution is not None]
    evaluations = {id(f.evaluation) for f in flying if f.evaluation is not None}
    batch = _batch_ready(executed, settings.judge_batch, busy=len(evaluations) >= settings.judge_concurrency,
                         could_join=bool(executing))
    if batch:
        upstream = list({id(e.execution): e.execution for e in batch}.values())  # the UI's lineage
        evaluation = pipeline.evaluate.submit(no_futures([e.executed() for e in batch]),
                                              no_futures([e.item for e in batch]), dataset_root,
                                              refresh=refresh == "judging", wait_for=upstream)
        for index, entry in enumerate(batch):
            entry.evaluation, entry.evaluation_index, entry.waiting_since = evaluation, index, 0.0
        return True
    return False


def _batch_ready(waiting: list[InFlight], size: int, busy: bool, could_join: bool) -> list[InFlight]:
    """The items to send to the next stage now. While that stage is idle, whatever waits goes at once (a
    sandbox or judge with nothing to do is lost time); while it is busy, items gather into a batch that
    goes when it is full, when nothing upstream could still join it, or after BATCH_WAIT_S."""
    if not waiting:
        return []
    oldest = min(f.waiting_since for f in waiting)
    if not busy or len(waiting) >= size or not could_join or time.monotonic() - oldest > BATCH_WAIT_S:
        return waiting[:size]
    return []


def _finished(future: PrefectFuture) -> bool:
    wrapped = getattr(future, "wrapped_future", None)
    if wrapped is not None and hasattr(wrapped, "done"):
        return wrapped.done()  # no API call: the thread pool's (or Dask's) own future
    return future.state.is_final()


def _record(run, model, method, entry: InFlight, generation, execution, gate_result, judgements,
            **fields) -> ItemOutcome:
    return pipeline.record(run, entry.item, model, method, entry.sample, entry.prompt, generation,
                           execution, gate_result, judgements, round=entry.round, repaired_from=entry.repaired_from,
                           **fields)


def _salvage(run, model, method, entry: InFlight) -> None:
    """A stage's task failed for good (after its retries): record what was reached, named by the stage
    that failed, and lose nothing. The model's own failures never get here (they are results)."""
    failed = entry.current
    reason = f"{failed.state.name}: {failed.state.message or ''}".strip(": ")
    generation = entry.generation.result() if entry.execution is not None else None
    execution = entry.executed() if entry.evaluation is not None else None
    if entry.execution is None:  # the generate task itself broke: still the model's stage
        kind = "llm_error"
    elif entry.evaluation is None:
        kind = "infrastructure"  # Docker or the orchestration, after execute's retries
    else:
        kind = "judge_error"  # the whole batch's evaluation broke: each of its items says so
    where = f"{entry.item.id} ({model}, {method}, sample {entry.sample}" + (
        f", repair round {entry.round})" if entry.round else ")")
    warn(f"audioprobe: {where}: {kind}: {reason}")
    _record(run, model, method, entry, generation, execution, None, [], failure=kind,
            error=f"{where}: {kind} ({reason})")


def _all_outcomes(run: Run, model, method, items, samples) -> list[ItemOutcome]:
    found = (run.load_outcome(outcome_key(model, method, item.id, s)) for item in items for s in range(samples))
    return [o for o in found if o is not None]
