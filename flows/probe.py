"""The pipeline of the paper's Figure 1 for a tier's items: prompt -> LLM -> code -> sandbox -> WAV ->
gate -> judge -> record. Wiring only; the work is in tasks.pipeline.

Items stream through the stages. Generation is a task run per item that asks the model (on Dask, where
a task run is dear, an `ask` task run per task_workers / 2 items, asked at once: flows.runners.
ask_batch_size); answers the response store already holds (a replayed or resumed run) are recalled
RECALL_BATCH at a time, one task run per batch, since nothing is asked. Execution and evaluation each take the items that reached them in
batches (as many programs as the sandbox runs at once; `judge_batch` clips), so the orchestration pays
one task run per batch and a GPU judge runs at batch speed. A stage that is idle gets what waits at once;
a busy one gets a batch when it is full, when nothing upstream could still join it, or after
BATCH_WAIT_S. The item is recorded by the flow the moment its evaluation returns, so records arrive
steadily, the thread pool never holds a thread waiting on another task, and a killed client, server or
machine loses only the items in flight. Threads stay free for every stage: at most task_workers / 2
questions to the model at once (enough to keep a hosted model busy), one recall, and two execution
batches (one in the sandbox, the next queued for its slots). The flow wakes the moment a task ends, not
on a timer, so a stage never idles waiting to be noticed. Task arguments go through `no_futures`: they
are finished values (the loop waited for them), and Prefect would otherwise walk every field of every
item, prompt and execution looking for futures, twice per task run; `wait_for` keeps the UI's lineage.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from prefect.futures import PrefectFuture

from audioprobe.console import warn
from audioprobe.prefect_server import orchestration_lost
from audioprobe.schema import ItemOutcome, ProbeItem, RenderedPrompt
from audioprobe.settings import get_settings
from flows.runners import ask_batch_size, no_futures
from flows.ui import Progress
from tasks import pipeline, repair
from tasks.generation.breaker import open_breakers
from tasks.records import Run, outcome_key
from tasks.taxonomy import is_final

POLL_S = 0.05  # where the task runner's futures cannot be waited on together (Dask)
WAKE_S = 0.2  # the longest the flow sleeps while a batch is gathering (BATCH_WAIT_S counts in these)
BATCH_WAIT_S = 5.0
RECALL_BATCH = 32


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
    """One (item, sample) on its way through the stages. Recall, execution and evaluation futures are
    shared by the items of a batch; `*_index` is this item's place in the batch's result list (None: a
    generate task run of its own)."""

    item: ProbeItem
    sample: int
    prompt: RenderedPrompt
    generation: PrefectFuture
    generation_index: int | None = None
    asked: bool = False  # its generation is an `ask` batch (the model asked), not a `recall` one
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

    def generated(self):
        result = self.generation.result()
        return result if self.generation_index is None else result[self.generation_index]

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
    round_ = work[0].round
    progress = Progress(f"{model} {method}: items recorded" + (f" (repair round {round_})" if round_ else ""),
                        total=len(work))
    ask, stored = _split_by_store(work, model, samples)
    flying: list[InFlight] = []
    while ask or stored or flying:
        if not orchestration_lost():
            _start_generations(flying, ask, stored, model, samples, max(1, settings.task_workers // 2))
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
                _record(run, model, method, entry, entry.generated(), entry.executed(), gate_result, judgements)
                flying.remove(entry)
                progress.advance()
        started = _start_batches(flying, settings, refresh, dataset_root)
        if not done and not started:
            _wait_for_a_task(flying)


def _split_by_store(work: deque, model: str, samples: int) -> tuple[deque, deque]:
    """The attempts that need the model, and those whose answers the response store already holds."""
    from tasks.generation.llm import is_answered

    ask, stored = deque(), deque()
    for attempt in work:
        (stored if is_answered(attempt.prompt, model, attempt.sample, samples) else ask).append(attempt)
    return ask, stored


def _start_generations(flying: list[InFlight], ask: deque, stored: deque, model: str, samples: int,
                       at_once: int) -> None:
    """Ask the model for the next items while fewer than `at_once` questions are out; recall the next
    RECALL_BATCH stored answers, in one task run, when fewer than half a batch wait for the sandbox."""
    asking = sum((f.generation_index is None or f.asked) and f.execution is None and not f.waiting for f in flying)
    per_task = ask_batch_size()
    while ask and asking < at_once * (2 if per_task > 1 else 1):
        if per_task > 1:  # two batches out at most: one is answered while the other waits for its slowest
            batch = [ask.popleft() for _ in range(min(per_task, len(ask)))]
            asked = pipeline.ask.submit(no_futures([a.prompt for a in batch]), model, [a.sample for a in batch],
                                        no_futures([a.item for a in batch]), samples,
                                        unavailable=open_breakers().get(model))
            flying += [InFlight(a.item, a.sample, a.prompt, asked, index, asked=True, round=a.round,
                                repaired_from=a.repaired_from) for index, a in enumerate(batch)]
            asking += len(batch)
            continue
        a = ask.popleft()
        generation = pipeline.generate.submit(no_futures(a.prompt), model, a.sample, no_futures(a.item), samples,
                                              unavailable=open_breakers().get(model))
        flying.append(InFlight(a.item, a.sample, a.prompt, generation, round=a.round, repaired_from=a.repaired_from))
        asking += 1
    recalling = any(f.generation_index is not None and not f.asked and not f.waiting and f.execution is None
                    for f in flying)
    queued = sum(f.waiting and f.execution is None for f in flying)
    if stored and not recalling and queued < RECALL_BATCH // 2:
        batch = [stored.popleft() for _ in range(min(RECALL_BATCH, len(stored)))]
        recalled = pipeline.recall.submit(no_futures([a.prompt for a in batch]), model, [a.sample for a in batch],
                                          no_futures([a.item for a in batch]), samples)
        flying += [InFlight(a.item, a.sample, a.prompt, recalled, index, round=a.round, repaired_from=a.repaired_from)
                   for index, a in enumerate(batch)]


def _start_batches(flying: list[InFlight], settings, refresh: str | None, dataset_root: str | None) -> bool:
    """Submit the execution and evaluation batches that are ready; True when one was."""
    generated = [f for f in flying if f.waiting and f.execution is None]
    executing = [f for f in flying if f.execution is not None and f.evaluation is None and not f.waiting]
    # An execute batch is what the sandbox runs at once: a bigger one would hold its first results back
    # until its last program had waited for a slot. Two at most: one running, the next queued for its slots.
    slots = settings.sandbox_concurrency
    batch = []
    if len({id(f.execution) for f in executing}) < 2:
        batch = _batch_ready(generated, slots, busy=len(executing) >= slots,
                             could_join=any(f.execution is None and not f.waiting for f in flying))
    if batch:
        execution = pipeline.execute.submit(no_futures([e.generated() for e in batch]),
                                            no_futures([e.prompt for e in batch]), refresh=refresh == "execution",
                                            wait_for=list({id(e.generation): e.generation for e in batch}.values()))
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


def _wait_for_a_task(flying: list[InFlight]) -> None:
    """Until one of the running tasks ends, or WAKE_S has passed (a gathering batch may be due). The
    thread pool's futures are waited on together; others (Dask's) are polled."""
    running = {id(f.current): getattr(f.current, "wrapped_future", None) for f in flying if not f.waiting}
    if running and all(isinstance(w, Future) for w in running.values()):
        wait(list(running.values()), timeout=WAKE_S, return_when=FIRST_COMPLETED)
    else:
        time.sleep(POLL_S)


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
    generation = entry.generated() if entry.execution is not None else None
    execution = entry.executed() if entry.evaluation is not None else None
    if entry.execution is None:  # the generate, ask or recall task itself broke: still the model's stage
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
