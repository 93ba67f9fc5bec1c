"""The one outcome writer: when an item's record is written, its derived facts are worked out once.

Failure kind (tasks.taxonomy), stage reached, the short failure detail, the message that names the item
and the reason, and the flat table row are computed here and stored in the record. The report,
items.parquet, the Prefect table artifacts and `retry` read those stored fields; none re-derives them.

Records carry `format_version`. A record of a version before these fields were stored is brought up to
date when it is read (audioprobe/stored.py `load` calls `finalize` for it, after its migrations): the derived
facts are computed from its raw parts, which every version kept.
"""

from __future__ import annotations

from typing import Any

from audioprobe import stored
from audioprobe.schema import ItemOutcome
from tasks.taxonomy import classify_failure


def where(outcome: ItemOutcome) -> str:
    """'<item> (<model>, <method>, sample k[, repair round r])': how every message names an item."""
    extra = f", repair round {outcome.round}" if outcome.round else ""
    return f"{outcome.item.id} ({outcome.model}, {outcome.method}, sample {outcome.sample}{extra})"


def stage_reached(outcome: ItemOutcome) -> str:
    if outcome.failure is None and outcome.judgements:
        return "done"
    if outcome.gate is not None:
        return "judging" if outcome.gate.ok else "gate"
    if outcome.execution is not None:
        return "execution" if outcome.execution.status != "ok" else "gate"
    if outcome.generation is not None:
        return "generation"
    return "prompt"


def status(outcome: ItemOutcome) -> str:
    """The failure kind, 'ok' for a judged clip, or 'pending' for a record not finished."""
    if outcome.failure:
        return outcome.failure
    return "ok" if outcome.gate is not None and outcome.gate.ok else "pending"


def failure_detail(outcome: ItemOutcome) -> str:
    """The short specific: the module, the exception type, the gate's problems, the model's error."""
    kind, g, e = outcome.failure, outcome.generation, outcome.execution
    if kind is None:
        return (
            "" if status(outcome) == "ok" else ("not executed" if g and e is None else outcome.stage_reached)
        )
    if kind in ("llm_error", "not_attempted") and g:
        return ": ".join(x for x in (g.error_kind, g.error) if x)
    if kind == "no_code" and g:
        return g.extraction_status
    if kind == "missing_module":
        return (e.missing_module if e else None) or "?"
    if kind == "bad_import" and e:
        last = e.stderr_tail.strip().splitlines()[-1:]
        return last[0][:160] if last else "ImportError"
    if kind in ("syntax", "runtime") and e:
        return e.error_type or f"exit {e.exit_code}"
    if kind in ("timeout", "memory") and e:
        return f"{e.wall_s:.1f} s"
    if kind in ("no_output", "output_rejected") and e:
        return "; ".join(e.rejected)
    if kind == "invalid_audio" and outcome.gate:
        return ", ".join(outcome.gate.problems)
    if kind == "judge_error":
        return "; ".join(f"{j.judge}: {j.error}" for j in outcome.judgements if j.error)
    return (outcome.error or "").split(": ", 1)[-1]


def describe_failure(outcome: ItemOutcome) -> str:
    """A clear message naming the item and the reason."""
    gen, exe, gate = outcome.generation, outcome.execution, outcome.gate
    reason = outcome.failure or "unknown"
    if reason == "not_attempted" and gen:
        reason = gen.error or "not attempted"
    elif reason == "llm_error" and gen:
        reason = f"LLM call failed [{gen.error_kind}]: {gen.error}"
    elif reason == "no_code" and gen:
        reason = f"no code in the answer ({gen.extraction_status})"
    elif reason == "missing_module" and exe:
        reason = f"program imports a module the sandbox lacks: {exe.missing_module}"
    elif exe and reason in ("syntax", "runtime", "bad_import"):
        last = exe.stderr_tail.strip().splitlines()[-1:] or [exe.error_type or f"exit code {exe.exit_code}"]
        reason = f"program failed: {last[0][:300]}"
    elif exe and reason in ("timeout", "memory", "no_output", "output_rejected"):
        reason = f"execution {reason}" + (f": {'; '.join(exe.rejected)}" if exe.rejected else "")
    elif reason == "invalid_audio" and gate:
        reason = f"audio refused by the gate: {', '.join(gate.problems)}"
    elif reason == "judge_error":
        reason = "; ".join(j.error for j in outcome.judgements if j.error)
    return f"{where(outcome)}: {reason}"


def flat_row(outcome: ItemOutcome) -> dict[str, Any]:
    """The outcome as one table row: items.parquet, the Prefect table artifact and the report's items."""
    gen, exe, gate = outcome.generation, outcome.execution, outcome.gate
    row: dict[str, Any] = {
        "run_id": outcome.run_id,
        "model": outcome.model,
        "method": outcome.method,
        "tier": outcome.item.tier,
        "item_id": outcome.item.id,
        "label": outcome.item.label,
        "sample": outcome.sample,
        "round": outcome.round,
        "repaired_from": outcome.repaired_from,
        "prompt_template": outcome.prompt.template if outcome.prompt else None,
        "status": status(outcome),
        "stage_reached": outcome.stage_reached,
        "failure": outcome.failure,
        "failure_detail": outcome.failure_detail,
        "error": outcome.error,
        "extraction_status": gen.extraction_status if gen else None,
        "finish_reason": gen.finish_reason if gen else None,
        **{k: (gen.params.get(k) if gen else None) for k in ("temperature", "max_tokens", "seed")},
        "dropped_params": ",".join(gen.dropped_params) if gen else None,
        "tokens_in": gen.tokens_in if gen else None,
        "tokens_out": gen.tokens_out if gen else None,
        "latency_s": gen.latency_s if gen else None,
        "cost": gen.cost if gen else None,
        "cached": gen.cached if gen else None,
        "execution_status": exe.status if exe else None,
        "error_type": exe.error_type if exe else None,
        "missing_module": exe.missing_module if exe else None,
        "wall_s": exe.wall_s if exe else None,
        "gate_ok": gate.ok if gate else None,
        "gate_problems": ",".join(gate.problems) if gate else None,
        "duration_s": gate.duration_s if gate else None,
        "audio_path": outcome.audio_path,
    }
    for judgement in outcome.judgements:
        name = judgement.judge.split("/")[0]
        row[f"{name}_judge"] = judgement.judge
        row[f"{name}_correct"] = judgement.correct
        row[f"{name}_score"] = None if judgement.score is None else round(judgement.score, 4)
    return row


def finalize(outcome: ItemOutcome) -> ItemOutcome:
    """Work out every derived fact of a record from its raw parts; a salvaged item keeps its failure."""
    if outcome.failure is None:
        outcome.failure = classify_failure(outcome)
    outcome.stage_reached = stage_reached(outcome)
    outcome.failure_detail = failure_detail(outcome)
    if outcome.failure and not outcome.error:
        outcome.error = describe_failure(outcome)
    outcome.row = flat_row(outcome)
    return stored.stamp(outcome)
