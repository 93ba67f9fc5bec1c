"""Program baselines run as models: `--model baseline/template` answers every item, without an LLM, with
a plain program written from the item's own metadata: each tier's `baseline_program` (tasks/tiers), e.g.
a sine at the asked pitch for notes, band-limited noise bursts for environmental, a formant buzz for speech.

The program goes through the same sandbox, gate and judges as an LLM's, so every model is read against
the floor a trivial program reaches. It is a Generation like any other (raw text, code, content key),
with `params` naming the template, so the report's provenance shows what made it.
"""

from __future__ import annotations

import hashlib

from audioprobe.schema import Generation, ProbeItem, RenderedPrompt

PREFIX = "baseline/"
TEMPLATES = ("template",)
TEMPLATE_VERSION = "1"


def is_baseline(model: str) -> bool:
    return model.startswith(PREFIX)


def _check(model: str) -> str:
    name = model.removeprefix(PREFIX)
    if name not in TEMPLATES:
        raise ValueError(f"unknown baseline {model!r}; known: {', '.join(PREFIX + t for t in TEMPLATES)}")
    return name


def output_name(item: ProbeItem, prompt: RenderedPrompt) -> str:
    from tasks.prompting import sound_id

    return prompt.output_name or f"{sound_id(item)}.wav"


def program_for(item: ProbeItem, out_name: str) -> str:
    """The baseline program for one item: plain numpy/scipy, no randomness but a fixed seed."""
    from tasks.tiers import get_tier

    return get_tier(item.tier).baseline_program(item, out_name)


def generate(item: ProbeItem, prompt: RenderedPrompt, model: str, sample: int = 0) -> Generation:
    template = _check(model)
    code = program_for(item, output_name(item, prompt))
    key = hashlib.sha256(f"{model}|{TEMPLATE_VERSION}|{code}".encode()).hexdigest()
    return Generation(
        response_id=key, model=model, sample=sample,
        params={"template": template, "template_version": TEMPLATE_VERSION},
        raw_text=f"```python\n{code}```\n", extraction_status="single_block", code=code, finish_reason="stop",
        tokens_in=0, tokens_out=0, latency_s=0.0, cost=0.0,
    )
