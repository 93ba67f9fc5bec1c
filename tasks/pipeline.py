"""The Prefect tasks of the pipeline: generate (per item; `recall` for a batch of stored answers) -> execute
-> evaluate (gate + judges), the last two per batch of items; then the record.

Each task is a small function of its inputs. Prefect keeps no task result (persist_result=False): the
caches below are the project's own, per item and content, and outlive any batch. Caching follows content,
never the run id:
- generation: the response store is the cache (content key: model, api_base, messages, params,
  sample); it keeps only real answers, so a failed call is asked again on the next run and a paid
  answer is never asked twice. Prefect's own cache would also keep failures, so it is off here.
- execution (a batch of programs per task run): each program's result is cached by its code, the
  expected output, the limits, the sandbox image and the runner (tasks/executions.py).
- evaluation (gate and judges, a batch of clips per task run): each judge caches per clip content.
Retries are for transient Docker failures only; the LLM client retries its own calls; a program that
fails is a result, not a retry. The record is written by the flow, not a task, the moment an item is
evaluated: it must land even while the Prefect server is away.
"""

from __future__ import annotations

import contextvars
import functools
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from audioprobe.schema import (
    ExecutionResult,
    FADResult,
    Generation,
    GateResult,
    ItemOutcome,
    Judgement,
    ProbeItem,
    RenderedPrompt,
)
from audioprobe.console import warn
from audioprobe.settings import get_settings
from tasks import judging, limits, outcomes, prompting
from tasks.executions import ExecutionCache, execution_key
from tasks.generation import llm
from tasks.records import Run, outcome_key


def _is_transient(task, task_run, state) -> bool:  # noqa: ANN001 - Prefect's retry_condition_fn signature
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return isinstance(exc, llm.TransientLLMError) or type(exc).__name__ in ("DockerException", "APIError")
    return False


# ----------------------------------------------------------------------------- prompt


def render_prompt(item: ProbeItem, method: str) -> RenderedPrompt:
    return prompting.render(item, item.tier, method, contract=get_settings().prompt_contract)


# ----------------------------------------------------------------------------- generate


@task(name="generate", cache_policy=NO_CACHE, persist_result=False)
def generate(prompt: RenderedPrompt, model: str, sample: int, item: ProbeItem | None = None,
             samples: int = 1, unavailable: str | None = None) -> Generation:
    """No task-level retries: llm.generate already retried with backoff, and a model that is still down
    is recorded (llm_error, kind unreachable/server_died) and asked again by the next run; the model's
    circuit breaker keeps a dead model from costing every remaining item its retries.
    `unavailable`: why the flow found the model unavailable (its breaker open), so a task run in another
    process (a Dask worker, which has breakers of its own) records the item as not attempted too.
    A program baseline (`baseline/...`) writes its program from the item's metadata, without an LLM."""
    from tasks.generation import baseline
    from tasks.generation.breaker import breaker_for

    if unavailable:
        breaker_for(model, get_settings().breaker_threshold).trip(unavailable)
    if baseline.is_baseline(model):
        return baseline.generate(item, prompt, model, sample)
    return llm.generate(prompt, model, sample, raise_transient=False, samples=samples)


def _generate_each(prompts: list[RenderedPrompt], model: str, samples_of: list[int], items: list[ProbeItem],
                   samples: int, unavailable: str | None, width: int) -> list[Generation]:
    """`generate` for each item of a batch, `width` at once (each thread in a copy of the task's context)."""
    calls = [functools.partial(generate.fn, prompt, model, sample, item, samples, unavailable)
             for prompt, sample, item in zip(prompts, samples_of, items, strict=True)]
    if width <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(width, thread_name_prefix="ask") as threads:
        futures = [threads.submit(contextvars.copy_context().run, call) for call in calls]
        return [future.result() for future in futures]


@task(name="recall", cache_policy=NO_CACHE, persist_result=False)
def recall(prompts: list[RenderedPrompt], model: str, samples_of: list[int], items: list[ProbeItem],
           samples: int = 1) -> list[Generation]:
    """`generate` for a batch of items whose answers the response store already holds (a replayed or
    resumed run): the same stored answers, one task run for the batch, since no model is asked. An answer
    gone from the store since the flow looked is asked for here, as `generate` would."""
    return _generate_each(prompts, model, samples_of, items, samples, None, width=1)


@task(name="ask", cache_policy=NO_CACHE, persist_result=False)
def ask(prompts: list[RenderedPrompt], model: str, samples_of: list[int], items: list[ProbeItem],
        samples: int = 1, unavailable: str | None = None) -> list[Generation]:
    """`generate` for a batch of items, all asked at once (a thread each; the model's concurrency limit
    holds inside llm.generate): one task run for the batch where a task run is dear (flows.runners.
    ask_batch_size). Each answer is stored the moment it comes, so a batch killed midway loses none; an
    ask it had out is claimed, so the batch run again does not send it twice (tasks/generation/store.py)."""
    return _generate_each(prompts, model, samples_of, items, samples, unavailable, width=len(prompts))


# ----------------------------------------------------------------------------- execute


@task(
    name="execute",
    cache_policy=NO_CACHE,  # cached program by program (tasks/executions.py), not batch by batch
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=3),
    retry_condition_fn=_is_transient,
    persist_result=False,
)
def execute(generations: list[Generation | None], prompts: list[RenderedPrompt],
            refresh: bool = False) -> list[ExecutionResult | None]:
    """A batch of programs through the sandbox, `sandbox_concurrency` at a time, one task run for all of
    them. `refresh` runs them again instead of reading the execution cache (`retry --only execution`).
    A retried batch reruns only the programs whose results were not stored yet."""
    settings = get_settings()
    cache = ExecutionCache()
    with ThreadPoolExecutor(max(1, settings.sandbox_concurrency), thread_name_prefix="execute") as threads:
        return list(threads.map(lambda pair: execute_one(*pair, cache=cache, refresh=refresh),
                                zip(generations, prompts)))


def execute_one(generation: Generation | None, prompt: RenderedPrompt, cache: ExecutionCache | None = None,
                refresh: bool = False) -> ExecutionResult | None:
    """Run one program in the sandbox (or read what it did); the WAV goes to a content-addressed store."""
    if generation is None or not generation.code:
        return None
    cache = cache or ExecutionCache()
    key = execution_key(generation, prompt)
    if not refresh and (hit := cache.get(key)) is not None:
        return hit
    from sandbox.client import run_program, shared_pool  # Docker is imported only where it is needed

    settings = get_settings()
    expect = [case_insensitive_glob(prompt.output_name)] if prompt.output_name else None
    audio_dir = settings.data_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    # A warm pool of fresh, pre-created containers: start-up leaves the critical path (docs/sandbox.md).
    pool = shared_pool(settings.limits, reuse=settings.sandbox_reuse)
    with limits.bound(limits.SANDBOX, settings.sandbox_concurrency), tempfile.TemporaryDirectory(dir=audio_dir) as tmp:
        result = run_program(generation.code, expect=expect, out_dir=Path(tmp), pool=pool)
        for output in result.files:
            if output.path:
                stored = audio_dir / f"{output.sha256}.wav"
                if not stored.exists():
                    shutil.move(output.path, stored)
                output.path = str(stored)
    cache.put(key, result)
    return result


def case_insensitive_glob(name: str) -> str:
    """The paper asks for `{sound_id}.WAV`; a program that writes `.wav` did what was meant."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name)


def audio_of(execution: ExecutionResult | None) -> Path | None:
    if execution is None or execution.status != "ok":
        return None
    for output in execution.files:
        if output.path and Path(output.path).exists():
            return Path(output.path)
    return None


# ----------------------------------------------------------------------------- gate and judge


@task(name="evaluate", cache_policy=NO_CACHE, persist_result=False)
def evaluate(executions: list[ExecutionResult | None], items: list[ProbeItem], dataset_root: str | None = None,
             refresh: bool = False) -> list[tuple[GateResult | None, list[Judgement]]]:
    """The gate on each clip, then the tier's judges on the clips that passed, as one batch: a GPU judge
    runs at batch speed and the orchestration pays one task run per batch. Each judge caches per clip
    content (tasks/judges/cache.py), so a rerun judges nothing twice; `refresh` judges again."""
    from tasks.judges.cache import refreshed

    audios = [audio_of(execution) for execution in executions]
    gates = [judging.gate_for_tier(audio, item.tier) if audio else None for audio, item in zip(audios, items)]
    passed = [i for i, gate_result in enumerate(gates) if gate_result is not None and gate_result.ok]
    results: list[tuple[GateResult | None, list[Judgement]]] = [(gate_result, []) for gate_result in gates]
    if passed:
        with limits.bound(limits.JUDGE, get_settings().judge_concurrency), refreshed(refresh):
            judged = judging.judge_items([audios[i] for i in passed], [items[i] for i in passed], dataset_root)
        for i, judgements in zip(passed, judged):
            results[i] = (gates[i], judgements)
    return results


@task(name="fad", cache_policy=NO_CACHE, persist_result=False)
def fad_per_class(outcomes: list[ItemOutcome], model: str, method: str) -> list[FADResult]:
    """Set-level: FAD of each instrument (and instrument x source) against its references."""
    with limits.bound(limits.JUDGE, get_settings().judge_concurrency):
        return judging.fad_for_outcomes(outcomes, model, method)


@task(name="reference-points", cache_policy=NO_CACHE, persist_result=False)
def reference_points(run: Run, tier: str, items: list[ProbeItem]) -> int:
    """Controls (silence, noise, sine or tone burst, a held-out real clip) through the tier's judges, once
    per run and tier (tasks/judges/controls.py). A failure here is logged, never fails the run."""
    from tasks.judges import controls

    if controls.has_tier(run.dir, tier):
        return 0
    try:
        with limits.bound(limits.JUDGE, get_settings().judge_concurrency):
            points = controls.reference_points(tier, items, run.dir / "controls", run.manifest.dataset_root)
    except Exception as exc:  # noqa: BLE001 - reference points are context, not the run's result
        warn(f"audioprobe: reference points for {tier} not computed: {type(exc).__name__}: {exc}")
        return 0
    controls.save(run.dir, tier, points)
    return len(points)


# ----------------------------------------------------------------------------- record


def record(run: Run, item: ProbeItem, model: str, method: str, sample: int, prompt: RenderedPrompt,
           generation: Generation | None, execution: ExecutionResult | None, gate_result: GateResult | None,
           judgements: list[Judgement] | None, **fields) -> ItemOutcome:
    """The item's record, written at once (not a task: it must land while the Prefect server is away)."""
    outcome = ItemOutcome(run_id=run.run_id, item=item, model=model, method=method, sample=sample, prompt=prompt,
                          generation=generation, execution=execution, gate=gate_result,
                          judgements=judgements or [], **fields)
    return save_outcome(run, outcome)


def save_outcome(run: Run, outcome: ItemOutcome) -> ItemOutcome:
    """Keep the clip in the run, work out the record's derived facts once, write it."""
    audio = audio_of(outcome.execution)
    if audio is not None:
        key = outcome_key(outcome.model, outcome.method, outcome.item.id, outcome.sample, outcome.round)
        outcome.audio_path = str(run.keep_audio(key, audio))
    run.save_outcome(outcomes.finalize(outcome))
    return outcome
