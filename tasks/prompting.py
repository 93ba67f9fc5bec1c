"""Render a probe item into the paper's prompt for its tier and method.

Templates live in `prompts/<tier>.<method>.txt`: the appendix text of the paper as extracted into
shared/paper.txt, words and line breaks kept (including its extraction scars such as "wellorganized"
and the speech prompt's trailing "..."), with one change: the markdown escape `\\{sound_id\\}` became a
plain placeholder. Placeholders are `{name}`; a placeholder the tier does not know, or one whose value
the item lacks, is an error, never an empty string, so a prompt cannot silently lose a fact.

"Detailed Prompt + Description" appends the class description to every input placeholder, as the
paper says; its template spells this as `{input} - {description}` (the appendix's "Alarm - A loud ...").

The optional output-contract line is appended after the paper's text, so with it off the rendered text
is the paper's byte for byte; `RenderedPrompt.contract_line` records it when used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from audioprobe.schema import ProbeItem, RenderedPrompt
from audioprobe.settings import PROMPTS_DIR
from tasks.tiers import UnknownTier, get_tier

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
STRAY_BRACE = re.compile(r"[{}]")


class PromptError(ValueError):
    """A template or an item cannot make a faithful prompt."""


@dataclass(frozen=True)
class OutputContract:
    file_name: str
    sample_rate: int
    duration_s: float

    def line(self) -> str:
        dur = f"{self.duration_s:g}"
        return (
            f"Output contract: save exactly one mono WAV file named {self.file_name} in the current "
            f"working directory, with a sample rate of {self.sample_rate} Hz and a duration of {dur} seconds."
        )


def template_path(tier: str, method: str) -> Path:
    try:
        methods = get_tier(tier).methods
    except UnknownTier as exc:
        raise PromptError(str(exc)) from exc
    if method not in methods:
        raise PromptError(f"tier {tier!r} has no method {method!r}; known: {', '.join(methods)}")
    return PROMPTS_DIR / f"{tier}.{method}.txt"


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def sound_id(item: ProbeItem) -> str:
    """A file-name-safe id: the NSynth note string when there is one (e.g. guitar_acoustic_010-060-100)."""
    raw = item.note_id or item.id
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", raw).strip("_-")[:96]
    if not safe:
        raise PromptError(f"item {item.id!r}: no usable characters for a file name")
    return safe


def _values(item: ProbeItem) -> dict[str, str | None]:
    """Every placeholder a template may use, from the item's own fields (None = the item lacks it)."""
    return {**get_tier(item.tier).prompt_values(item), "sound_id": sound_id(item)}


def default_contract(item: ProbeItem) -> OutputContract:
    """The tier's own numbers (tasks/tiers): environmental says 2-3 s (3 is used), speech names no rate."""
    spec = get_tier(item.tier).contract
    return OutputContract(f"{sound_id(item)}{spec.suffix}", spec.sample_rate, spec.seconds)


def render(
    item: ProbeItem,
    tier: str,
    method: str,
    contract: bool = False,
    contract_spec: OutputContract | None = None,
) -> RenderedPrompt:
    if item.tier != tier:
        raise PromptError(f"item {item.id!r} is tier {item.tier!r}, asked to render as {tier!r}")
    path = template_path(tier, method)
    raw = path.read_bytes()
    template = raw.decode("utf-8")
    values = _values(item)

    unknown = placeholders(template) - values.keys()
    if unknown:
        raise PromptError(f"{path.name}: unknown placeholder(s) {sorted(unknown)}")
    missing = sorted(n for n in placeholders(template) if values[n] is None or not str(values[n]).strip())
    if missing:
        raise PromptError(f"item {item.id!r}: no value for {missing} needed by {path.name}")
    if STRAY_BRACE.search(PLACEHOLDER.sub("", template)):
        raise PromptError(f"{path.name}: a brace that is not a {{placeholder}}")

    text = PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    # A prompt that names its file (notes, tones) expects it; the others leave the name to the model.
    output_name = f"{values['sound_id']}{get_tier(tier).contract.suffix}" if "{sound_id}" in template else None
    contract_line = None
    if contract:
        spec = contract_spec or default_contract(item)
        contract_line = spec.line()
        text = text.rstrip("\n") + "\n\n" + contract_line + "\n"
        output_name = spec.file_name
    return RenderedPrompt(
        template=path.name,
        template_sha256=hashlib.sha256(raw).hexdigest(),
        method=method,
        text=text,
        output_name=output_name,
        contract_line=contract_line,
    )
