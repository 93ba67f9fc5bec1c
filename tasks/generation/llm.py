"""Ask any litellm model for a program: cached by content, rate-limited, retried only when it can help.

Outcomes of `generate`:
- an answer (stored, then returned; later identical asks return it with `cached=True` and no call);
- a permanent failure (no API key, unknown model, bad request, auth, malformed or oversized answer):
  returned as a Generation with `error`/`error_kind` set, extraction_status "llm_error", never raised,
  so one bad item never stops a run;
- a transient failure (429, 5xx, timeout, connection refused: a server that is down) that survived
  `max_retries` retries with exponential backoff and full jitter: raises `TransientLLMError`, whose
  `.generation` holds the recorded error. An orchestrator catches it to retry the item later; callers
  that only want a record pass `raise_transient=False` and get that Generation back instead.
Only calls that returned an answer are stored (malformed and oversized ones included: they were paid
for); failures are not, so a fixed key or a restarted server is asked again.

Samples: sample k asks with seed = base seed + k, so samples at temperature > 0 differ even on servers
that honour the seed (llama.cpp does), and the sample index is part of the store key.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches its cost map otherwise

from audioprobe.schema import Generation, RenderedPrompt
from audioprobe.settings import ModelSettings, Settings, get_settings
from tasks import limits
from tasks.generation import local_model, local_server
from tasks.generation.errors import classify, unreachable_cause
from tasks.generation.breaker import breaker_for
from tasks.generation.extract import extract
from tasks.generation.store import ResponseStore, response_key

MAX_RAW_CHARS = 200_000  # a program for one sound is a few KB; 200 KB is a runaway answer
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
LOCAL_FLOOR_TOKENS_PER_S = 1.0
SELF_HOSTED_PLACEHOLDER_KEY = "sk-no-key-self-hosted"


class TransientLLMError(RuntimeError):
    """The provider kept failing transiently after all retries; retry the item later."""

    def __init__(self, message: str, generation: Generation, attempts: int):
        super().__init__(message)
        self.generation = generation
        self.attempts = attempts


@dataclass(frozen=True)
class Target:
    """Where a user-facing model name is actually sent."""

    name: str  # as the user wrote it: "local", "gpt-4o", "ollama/qwen2.5-coder"
    litellm_model: str
    api_base: str | None
    api_key: str | None
    local: bool
    key_env: str | None = None  # the env var the settings name for this model's key


def resolve(model: str, settings: Settings | None = None) -> Target:
    settings = settings or get_settings()
    ms = settings.model_settings(model)
    key = os.environ.get(ms.api_key_env) if ms.api_key_env else None
    if model == local_model.LOCAL_NAME:
        return Target(
            model,
            f"openai/{settings.local_model}",
            ms.api_base or local_server.api_base(settings),
            key or local_model.LOCAL_API_KEY,
            True,
            ms.api_key_env,
        )
    if key is None and ms.api_base and not ms.api_key_env:
        # vLLM, ollama, LM Studio and llama.cpp need no key, but the OpenAI client refuses to send
        # a request without one ("Missing credentials"): a placeholder never leaves this machine's intent.
        key = SELF_HOSTED_PLACEHOLDER_KEY
    return Target(model, model, ms.api_base, key, False, ms.api_key_env)


# --------------------------------------------------------------------------- limits


class _TokenBucket:
    def __init__(self, per_minute: int, burst: int):
        self.rate = per_minute / 60.0
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


_limits_lock = threading.Lock()
_semaphores: dict[str, threading.BoundedSemaphore] = {}
_buckets: dict[str, _TokenBucket] = {}


def _limits(model: str, target: Target, ms: ModelSettings, settings: Settings):
    """(pace, slot): wait for the model's rate, then hold one of its concurrent slots. Held by the Prefect
    server when global limits are on (several worker processes share them), else by this process."""
    if limits.global_limits_on(settings):
        rate_name = limits.llm_rate_limit(model) if ms.requests_per_minute else None
        return ((lambda: limits.throttle(rate_name)) if rate_name else (lambda: None)), (
            lambda: limits.slot(limits.llm_limit(model)))
    with _limits_lock:
        sem = _semaphores.setdefault(target.litellm_model, threading.BoundedSemaphore(max(1, ms.max_concurrency)))
        bucket = None
        if ms.requests_per_minute:
            bucket = _buckets.setdefault(
                target.litellm_model,
                _TokenBucket(ms.requests_per_minute, min(ms.requests_per_minute, ms.max_concurrency)))
    return (bucket.take if bucket else (lambda: None)), (lambda: sem)


# --------------------------------------------------------------------------- errors


def _litellm():
    import litellm

    litellm.suppress_debug_info = True  # it prints provider lists on stdout, where our JSON goes
    return litellm


def _preflight(target: Target) -> tuple[str, str] | None:
    """Problems visible without any network: an unknown provider, a missing key."""
    litellm = _litellm()

    try:
        litellm.get_llm_provider(target.litellm_model, api_base=target.api_base)
    except Exception as exc:  # noqa: BLE001 - litellm raises its BadRequestError, or worse
        if "LLM Provider NOT provided" in str(exc):
            return "unknown_model", (f"unknown model {target.name!r}: litellm knows no provider for it "
                                     "(name one, e.g. openai/gpt-4o, or set models.\"...\".api_base for a "
                                     "local server)")
        return "unknown_model", f"unknown model {target.name!r}: {str(exc).splitlines()[0][:300]}"
    if target.key_env and not target.api_key:
        return (
            "auth",
            f"no API key for {target.name!r}: the settings name ${target.key_env}, which is not set",
        )
    if target.api_key is None and target.api_base is None:
        env = litellm.validate_environment(model=target.litellm_model)
        if not env.get("keys_in_environment", True):
            missing = ", ".join(env.get("missing_keys") or []) or "the provider's key"
            return "auth", f"no API key for {target.name!r}: set {missing} in the environment"
    return None


def check_model(model: str, settings: Settings | None = None) -> str | None:
    """Why this model cannot be asked at all, in one line, or None: its provider unknown to litellm, its
    key missing, or its api_base not answering. Checked once before a run sends any item, so a mistake
    in the set-up stops the run instead of being recorded as the model's result."""
    settings = settings or get_settings()
    target = resolve(model, settings)
    problem = _preflight(target)
    if problem:
        return problem[1]
    if target.api_base and not target.local:
        return _unanswered(target.api_base, settings.model_settings(model).timeout_s)
    return None


def _unanswered(api_base: str, timeout_s: float) -> str | None:
    """None when anything answers HTTP at api_base (any status: a 401 or 404 still proves a server);
    else the connection failure in words. Sends one GET to the address the user configured."""
    import urllib.error
    import urllib.request

    url = api_base.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=min(10.0, timeout_s)):
            return None
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:
        return unreachable_cause(exc, api_base)


def dropped_params(target: Target, params: dict[str, Any]) -> list[str]:
    """The asked params this provider does not take: drop_params=True drops them silently, we say so."""
    litellm = _litellm()
    try:
        model, provider, _, _ = litellm.get_llm_provider(target.litellm_model, api_base=target.api_base)
        supported = set(litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or [])
    except Exception:  # noqa: BLE001 - a provider litellm cannot describe: nothing known to be dropped
        return []
    return sorted(k for k, v in params.items() if v is not None and k not in supported)


def retry_after_s(exc: BaseException) -> float:
    """The seconds a provider's Retry-After header asks for (0 when absent or a date), capped."""
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None),
                                                                        "headers", None) or {}
    try:
        value = float(headers.get("retry-after") or headers.get("Retry-After") or 0)
    except (TypeError, ValueError, AttributeError):
        return 0.0
    return min(max(value, 0.0), BACKOFF_CAP_S)


def _cost(response: Any) -> float | None:
    import litellm

    try:
        cost = litellm.completion_cost(completion_response=response)
    except Exception:  # noqa: BLE001 - not in its (local) price list: unpriceable, not an error
        return None
    return float(cost) if cost else None


# --------------------------------------------------------------------------- generate


def messages_for(prompt: RenderedPrompt | str) -> list[dict[str, str]]:
    """The conversation: a repair round's earlier turns, then this prompt (the store key covers all)."""
    if isinstance(prompt, RenderedPrompt):
        return [*prompt.history, {"role": "user", "content": prompt.text}]
    return [{"role": "user", "content": prompt}]


class Request(NamedTuple):
    """What one ask would send, and the response store key it is kept under."""

    target: Target
    model_settings: ModelSettings
    params: dict[str, Any]
    key: str


def request_of(
    prompt: RenderedPrompt | str, model: str, sample: int = 0, settings: Settings | None = None, samples: int = 1
) -> Request:
    """The target, settings, params and store key of an ask, computed without any call.

    With `samples` > 1 the temperature is at least settings.sample_temperature: k answers at 0 are one.
    """
    settings = settings or get_settings()
    target = resolve(model, settings)
    ms = settings.model_settings(model)
    temperature = max(ms.temperature, settings.sample_temperature) if samples > 1 else ms.temperature
    params = {
        "temperature": temperature,
        "max_tokens": ms.max_tokens,
        "seed": None if ms.seed is None else ms.seed + sample,
    }
    key = response_key(target.litellm_model, target.api_base, messages_for(prompt), params, sample)
    return Request(target, ms, params, key)


def is_answered(prompt: RenderedPrompt | str, model: str, sample: int, samples: int = 1) -> bool:
    """Whether the response store already holds this ask's answer: a replayed or resumed run needs no model."""
    settings = get_settings()
    return ResponseStore(settings.responses_dir).path(request_of(prompt, model, sample, settings, samples).key).exists()


def generate(
    prompt: RenderedPrompt | str,
    model: str,
    sample: int = 0,
    *,
    settings: Settings | None = None,
    store: ResponseStore | None = None,
    raise_transient: bool = True,
    samples: int = 1,
) -> Generation:
    settings = settings or get_settings()
    store = store or ResponseStore(settings.responses_dir)
    target, ms, params, key = request_of(prompt, model, sample, settings, samples)
    cached = store.get(key)
    if cached is not None:
        return cached

    base = Generation(
        response_id=key,
        model=target.litellm_model,
        api_base=target.api_base,
        sample=sample,
        params=params,
        extraction_status="llm_error",
    )
    breaker = breaker_for(model, settings.breaker_threshold)

    def not_attempted(reason: str) -> Generation:
        return base.model_copy(update={"error_kind": "not_attempted", "error": f"not attempted: {reason}"})

    if (reason := breaker.open_reason()) is not None:
        return not_attempted(reason)
    problem = _preflight(target)
    if problem:
        breaker.trip(problem[1])  # no item of this model can succeed: the others are not attempted
        return base.model_copy(update={"error_kind": problem[0], "error": problem[1]})
    base.dropped_params = dropped_params(target, params)

    litellm = _litellm()
    messages = messages_for(prompt)
    if target.local:
        # Its server answers one request at a time (more would only queue), and a busy 2-core machine
        # can fall to ~2 tokens/s: a timeout shorter than max_tokens at 1 token/s only makes a retry
        # that redoes the same work while the server still finishes the abandoned one.
        ms = ms.model_copy(
            update={
                "max_concurrency": 1,
                "timeout_s": max(ms.timeout_s, 60 + ms.max_tokens / LOCAL_FLOOR_TOKENS_PER_S),
            }
        )
    pace, model_slot = _limits(model, target, ms, settings)
    with store.claim(key) as claim:  # a second asker of this key waits here, then finds the answer
        if (stored := store.get(key)) is not None:
            return stored
        if (lost := claim.lost()) is not None and not target.local:  # the embedded model costs nothing
            return base.model_copy(update={"error_kind": "answer_lost", "error": (
                f"answer lost: {lost}; not asked again by itself, so that it is not paid for twice "
                "(`audioprobe retry RUN --only generation --status answer_lost` asks it again)")})
        attempts = 0
        while True:
            attempts += 1
            pace()
            with model_slot():
                # Another item may have found the model down while this one waited for the slot.
                if (reason := breaker.open_reason()) is not None:
                    return not_attempted(reason)
                t0 = time.monotonic()
                claim.mark()  # on disk before the request: what a crash mid-request leaves behind
                try:
                    response = litellm.completion(
                        model=target.litellm_model,
                        messages=messages,
                        api_base=target.api_base,
                        api_key=target.api_key,
                        timeout=ms.timeout_s,
                        num_retries=0,
                        max_retries=0,
                        drop_params=True,
                        **{k: v for k, v in params.items() if v is not None},
                    )
                except Exception as exc:
                    claim.unmark()  # the provider answered (with an error): nothing to lose
                    kind, transient = classify(exc)
                    msg = f"{type(exc).__name__}: {str(exc)[:500]}"
                    if not transient:
                        if kind in ("auth", "unknown_model"):  # a revoked key fails every later item too
                            msg = f"{kind}: {msg}"
                            breaker.trip(msg)
                        return base.model_copy(update={"error_kind": kind, "error": msg})
                    if target.local:
                        try:
                            if local_server.recover(settings) is not None:
                                continue  # our server had died and was restarted: ask it again at once
                        except local_server.ServerDied as died:
                            breaker.trip(str(died))
                            return base.model_copy(update={"error_kind": "server_died", "error": str(died)})
                    if kind == "unreachable":
                        msg = unreachable_cause(exc, target.api_base or target.litellm_model)
                    wait_at_least = retry_after_s(exc)
                    if attempts > ms.max_retries:
                        breaker.failure(msg)
                        failed = base.model_copy(
                            update={"error_kind": kind, "error": f"{msg} (after {attempts} attempts)"}
                        )
                        if raise_transient:
                            raise TransientLLMError(f"{target.name}: {msg}", failed, attempts) from exc
                        return failed
                else:
                    latency = time.monotonic() - t0
                    breaker.success()
                    break
            # Full jitter: concurrent workers hit by the same 429 do not come back in step; never before the
            # provider's Retry-After (asking sooner only earns another 429 and counts against the quota).
            jitter = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempts - 1)))
            time.sleep(max(jitter, wait_at_least))

        gen = _from_response(base, response, latency)
        store.put(
            gen,
            {
                "model": target.litellm_model,
                "api_base": target.api_base,
                "messages": messages,
                "params": params,
                "sample": sample,
            },
        )
        claim.unmark()
    return gen


def _from_response(base: Generation, response: Any, latency: float) -> Generation:
    update: dict[str, Any] = {"latency_s": round(latency, 3), "cost": _cost(response)}
    usage = getattr(response, "usage", None)
    if usage is not None:
        update["tokens_in"] = getattr(usage, "prompt_tokens", None)
        update["tokens_out"] = getattr(usage, "completion_tokens", None)
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    if message is None:
        return base.model_copy(
            update=update | {"error_kind": "malformed", "error": "the answer has no message"}
        )
    content = getattr(message, "content", None)
    if content is None:
        content = getattr(message, "refusal", None) or ""
    if not isinstance(content, str):
        return base.model_copy(
            update=update
            | {"error_kind": "malformed", "error": f"message content is {type(content).__name__}"}
        )
    update["finish_reason"] = getattr(choices[0], "finish_reason", None)
    if len(content) > MAX_RAW_CHARS:
        return base.model_copy(
            update=update
            | {
                "raw_text": content[:MAX_RAW_CHARS],
                "error_kind": "oversized",
                "error": f"answer of {len(content)} characters exceeds {MAX_RAW_CHARS}; kept the first part",
            }
        )
    ex = extract(content)
    note = ex.note
    if update["finish_reason"] == "length":
        note += "; the answer was cut at max_tokens"
    return base.model_copy(
        update=update
        | {"raw_text": content, "extraction_status": ex.status, "code": ex.code, "extraction_note": note}
    )
