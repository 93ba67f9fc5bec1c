"""Self-repair rounds: after a failed answer the model gets a follow-up turn, in the same conversation,
that says what went wrong, built from the execution's and the judges' own findings.

Feedback templates live in prompts/repair.<kind>.txt beside the paper's; a repair round's prompt is a
RenderedPrompt like the first (template name and SHA-256 recorded) whose `history` holds the earlier
turns, so the response run keys the whole conversation and a rerun never pays twice.

What a round needs (`next_attempts`) is read from the run directory alone: a resumed run continues
exactly where the records stop, round by round.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from audioprobe.schema import ItemOutcome, ProbeItem, RenderedPrompt
from audioprobe.settings import PROMPTS_DIR, REPO_ROOT
from tasks.records import Run, outcome_key
from tasks.taxonomy import is_final

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# Failures feedback cannot help: the call, the judge or the machine failed, not the program.
NOT_REPAIRABLE = {"llm_error", "judge_error", "infrastructure", "not_attempted"}
WRONG_SOUND = "wrong_sound"  # valid audio the judge did not accept: a repair reason, not a failure
TRACEBACK_LINES = 8
# sandbox/requirements.txt names distributions; programs import modules
_IMPORT_NAMES = {"MIDIUtil": "midiutil", "imageio-ffmpeg": None}


@dataclass(frozen=True)
class Attempt:
    """One answer to ask for: round 0 is the paper's prompt, round r the feedback on round r-1."""

    item: ProbeItem
    sample: int
    round: int
    prompt: RenderedPrompt
    repaired_from: str | None = None


def succeeded(outcome: ItemOutcome) -> bool:
    return outcome.failure is None and any(j.correct for j in outcome.judgements)


def repair_reason(outcome: ItemOutcome) -> str | None:
    """What a follow-up turn would address, or None when there is nothing feedback can fix."""
    if succeeded(outcome) or outcome.failure in NOT_REPAIRABLE:
        return None
    if outcome.failure:
        return outcome.failure
    if any(j.correct is False for j in outcome.judgements):
        return WRONG_SOUND
    return None  # unjudged (e.g. a pitch outside the tracker's range): no verdict to feed back


@lru_cache(maxsize=1)
def sandbox_modules() -> tuple[str, ...]:
    """The import names the sandbox image installs, from the list it is built from."""
    names = []
    for line in (REPO_ROOT / "sandbox" / "requirements.txt").read_text().splitlines():
        if line.startswith("# Their dependencies"):
            break
        if "==" in line and not line.startswith("#"):
            dist = line.split("==")[0].strip()
            name = _IMPORT_NAMES.get(dist, dist.lower().replace("-", "_"))
            if name:
                names.append(name)
    return tuple(names)


def _template(name: str) -> tuple[str, str]:
    raw = (PROMPTS_DIR / name).read_bytes()
    return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()


def _fill(name: str, values: dict[str, object], outcome: ItemOutcome) -> tuple[str, str]:
    text, sha = _template(name)
    missing = sorted(set(PLACEHOLDER.findall(text)) - values.keys())
    if missing:
        raise ValueError(f"item {outcome.item.id!r}: {name} needs {missing}, which the record does not give")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text), sha


def _last_lines(text: str, n: int = TRACEBACK_LINES) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:]) or "(no error output)"


def feedback(outcome: ItemOutcome) -> tuple[str, str, str]:
    """(template file, its SHA-256, the rendered follow-up text) for a failed round."""
    reason = repair_reason(outcome)
    if reason is None:
        raise ValueError(f"item {outcome.item.id!r} round {outcome.round}: nothing to repair ({outcome.failure})")
    exe, gate = outcome.execution, outcome.gate
    expected = outcome.prompt.output_name if outcome.prompt and outcome.prompt.output_name else "a .wav file"
    if reason == "missing_module":
        module = (exe.missing_module if exe else None) or "an unavailable module"
        name, values = "repair.missing_module.txt", {"module": module, "available": ", ".join(sandbox_modules())}
    elif reason in ("truncated", "no_code"):
        name, values = f"repair.{reason}.txt", {}
    elif reason in ("no_output", "output_rejected"):
        detail = "; ".join(exe.rejected) if exe and exe.rejected else ""
        name, values = "repair.no_output.txt", {"expected": expected, "detail": detail}
    elif reason == "invalid_audio":
        from tasks.tiers import get_tier

        rate, seconds, _ = get_tier(outcome.item.tier).asked
        asked = f"{seconds:g} seconds" + (f" at {rate} Hz" if rate else "") + ", audible, not clipped"
        problems = ", ".join(gate.problems) if gate else "refused"
        name, values = "repair.gate.txt", {"problems": problems, "asked": asked}
    elif reason == WRONG_SOUND:
        name, values = _judge_feedback(outcome)
    else:  # syntax, bad_import, runtime, timeout, memory
        tail = exe.stderr_tail if exe and exe.stderr_tail.strip() else (exe.stdout_tail if exe else "")
        if reason in ("timeout", "memory"):
            tail = f"the program was stopped: {reason} (limit of the sandbox)\n" + (tail or "")
        name, values = "repair.error.txt", {"failure": reason.replace("_", " "), "traceback": _last_lines(tail)}
    text, sha = _fill(name, values, outcome)
    return name, sha, text


def _judge_feedback(outcome: ItemOutcome) -> tuple[str, dict[str, object]]:
    from tasks.tiers import get_tier

    judgement = next(j for j in outcome.judgements if j.correct is False)
    return get_tier(outcome.item.tier).wrong_sound_feedback(outcome, judgement.values)


def next_prompt(outcome: ItemOutcome) -> RenderedPrompt:
    """The follow-up turn after `outcome`, carrying the whole conversation so far."""
    if outcome.prompt is None or outcome.generation is None:
        raise ValueError(f"item {outcome.item.id!r} round {outcome.round}: no prompt or answer to follow up")
    name, sha, text = feedback(outcome)
    history = [*outcome.prompt.history, {"role": "user", "content": outcome.prompt.text},
               {"role": "assistant", "content": outcome.generation.raw_text}]
    return RenderedPrompt(template=name, template_sha256=sha, method=outcome.method, text=text,
                          output_name=outcome.prompt.output_name, history=history)


def next_attempts(run: Run, model: str, method: str, items: list[ProbeItem], samples: int, rounds: int,
                  first_prompt) -> list[Attempt]:
    """For each (item, sample), the next answer the records lack: round 0, or a repair of the last failed
    round while rounds remain. `first_prompt(item)` renders round 0."""
    todo = []
    for item in items:
        for sample in range(samples):
            previous = None
            for round_ in range(rounds + 1):
                found = run.load_outcome(outcome_key(model, method, item.id, sample, round_))
                if not is_final(found):
                    if previous is None:
                        todo.append(Attempt(item, sample, 0, first_prompt(item)))
                    else:
                        todo.append(Attempt(item, sample, round_, next_prompt(previous), repair_reason(previous)))
                    break
                if repair_reason(found) is None:
                    break
                previous = found
    return todo


def rounds_for(model: str, asked: int) -> int:
    """A program baseline answers the same whatever it is told: no conversation, no repair."""
    from tasks.generation.baseline import is_baseline

    return 0 if is_baseline(model) else asked
