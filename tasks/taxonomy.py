"""Where an item stopped, named the same way everywhere: records, retries, the UI and the report."""

from __future__ import annotations

from audioprobe.schema import ItemOutcome

# In pipeline order; the report lists them in this order.
FAILURES = (
    "not_attempted",  # the model was unavailable (its circuit breaker opened): a rerun asks again
    "llm_error",  # the model call failed (no key, unknown model, unreachable, server died, bad response)
    "no_code",  # an answer with nothing runnable: empty, refusal, prose only
    "truncated",  # max_tokens cut the answer (finish_reason "length") and what was kept did not run
    "syntax",
    "missing_module",
    "bad_import",  # a real module, a name it does not have (an invented or removed API)
    "runtime",
    "timeout",
    "memory",
    "no_output",
    "output_rejected",
    "invalid_audio",  # the gate refused the clip
    "judge_error",
    "infrastructure",  # Docker or orchestration failed after its retries (never the model): rerun retries it
)

# Which pipeline stage each failure belongs to, for `audioprobe retry --only`.
STAGE_OF_FAILURE = {
    "not_attempted": "generation",
    "llm_error": "generation",
    "no_code": "generation",
    "truncated": "generation",
    "syntax": "execution",
    "missing_module": "execution",
    "bad_import": "execution",
    "runtime": "execution",
    "timeout": "execution",
    "memory": "execution",
    "no_output": "execution",
    "output_rejected": "execution",
    "invalid_audio": "execution",
    "judge_error": "judging",
    "infrastructure": "execution",
}

# Failures a plain rerun of the same command tries again; every other failure is a result.
RETRIED_ON_RERUN = {"infrastructure", "not_attempted"}


def classify_failure(outcome: ItemOutcome) -> str | None:
    """The first thing that went wrong for this item, or None when it reached a judgement."""
    gen = outcome.generation
    if gen is None:
        return None
    if gen.error_kind == "not_attempted":
        return "not_attempted"
    if gen.error or gen.extraction_status == "llm_error":
        return "llm_error"
    cut = gen.finish_reason == "length"
    if not gen.code:
        return "truncated" if cut else "no_code"
    exe = outcome.execution
    if exe is None:
        return None
    if exe.status == "error":
        if exe.error_type in ("SyntaxError", "IndentationError", "TabError"):
            return "truncated" if cut else "syntax"
        if exe.missing_module or exe.error_type == "ModuleNotFoundError":
            return "missing_module"
        if exe.error_type == "ImportError":
            return "bad_import"
        return "runtime"
    if exe.status != "ok":
        return "truncated" if cut and exe.status == "no_output" else exe.status  # timeout, memory, ...
    if outcome.gate is not None and not outcome.gate.ok:
        return "invalid_audio"
    if any(j.error for j in outcome.judgements):
        return "judge_error"
    return None


# Model failures that say nothing about the model's answer: a rerun asks again.
TRANSIENT_LLM_KINDS = {"transient", "timeout", "connection", "unreachable", "rate_limit", "server_error",
                       "server_down", "server_died", "not_attempted"}


def is_final(outcome: ItemOutcome | None) -> bool:
    """True when the same command run again should keep this outcome rather than redo it."""
    if outcome is None:
        return False
    if outcome.failure in RETRIED_ON_RERUN:
        return False
    if outcome.failure == "llm_error" and outcome.generation is not None:
        return outcome.generation.error_kind not in TRANSIENT_LLM_KINDS
    return outcome.failure is not None or outcome.stage_reached == "done"
