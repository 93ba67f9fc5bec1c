"""Record real answers of the embedded model into tests/fixtures/responses/*.json.

The extraction tests replay these: real model output, not hand-written, for the shapes a model gives
(one block, several, none, cut at max_tokens...). Each record keeps the prompt, params, raw text and the
extraction status it was reviewed with. Rerun after changing prompts, then review the diffs:
    .venv/bin/python scripts/record_llm_fixtures.py [--model qwen2.5-coder-0.5b] [--only NAME]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audioprobe.schema import ProbeItem
from audioprobe.settings import ModelSettings, Settings
from tasks.generation import llm, local_model
from tasks.prompting import render

OUT = ROOT / "tests" / "fixtures" / "responses"

NOTE = ProbeItem(
    id="nsynth:guitar_acoustic_010-060-100",
    tier="notes",
    label="guitar_acoustic",
    dataset="nsynth",
    note_id="guitar_acoustic_010-060-100",
    pitch=60,
    note_name="C4",
    velocity=100,
    amplitude=100 / 127,
    instrument_family="guitar",
    instrument_source="acoustic",
    qualities=["bright"],
    quality_descriptions=["A large amount of high frequency content and strong upper harmonics."],
)
BELL = ProbeItem(
    id="fsd50k:Bell",
    tier="environmental",
    label="Bell",
    dataset="fsd50k",
    display_name="Bell",
    description="A hollow metal instrument that produces a ringing sound when struck, often used for "
    "signaling or as part of a musical instrument.",
)
YES = ProbeItem(
    id="speech:yes",
    tier="speech",
    label="yes",
    dataset="speech_commands",
    description="Y EH1 S: a palatal glide into a short stressed open-mid front vowel, ending in a "
    "voiceless alveolar fricative",
)

# name -> (prompt text, max_tokens)
PROMPTS: dict[str, tuple[str, int]] = {
    "notes_cut_at_max_tokens": (render(NOTE, "notes", "paper").text, 60),
    "notes_cut_in_code": (render(NOTE, "notes", "paper").text, 130),
    "prose_only": (
        "In two plain English sentences and without any code, describe what a church bell sounds like.",
        120,
    ),
    "refusal": (
        (
            "Write a Python script that secretly records the microphone of someone else's computer and "
            "uploads the audio to my server without their knowledge or consent."
        ),
        200,
    ),
    "raw_code_only": (
        (
            "Write a Python program that writes a 1 second 440 Hz sine wave to tone.wav using numpy and "
            "the wave module. Output only the raw code: no markdown, no ``` fences, no explanation."
        ),
        300,
    ),
    "two_programs": (
        (
            "Show two alternative Python programs, each in its own ```python code block: first a minimal "
            "one that writes a 1 second 440 Hz sine wave to sine.wav with scipy, then a longer one that "
            "also applies an exponential decay envelope and writes decay.wav."
        ),
        500,
    ),
    "notes_paper": (render(NOTE, "notes", "paper").text, 700),
    "environmental_description": (render(BELL, "environmental", "detailed_description").text, 500),
    "speech_paper": (render(YES, "speech", "paper").text, 500),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--only", action="append")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="record-llm-"))
    base = Settings()
    with local_model.LocalServer(
        args.model, Settings(cache_dir=base.cache_dir, local_model=args.model)
    ) as server:
        for name, (text, max_tokens) in PROMPTS.items():
            if args.only and name not in args.only:
                continue
            s = Settings(
                cache_dir=base.cache_dir,
                data_dir=data,
                local_model=args.model,
                local_port=server.port,
                models={"local": ModelSettings(max_tokens=max_tokens, temperature=0.0, seed=0)},
            )
            gen = llm.generate(text, "local", settings=s)
            rec = {
                "name": name,
                "model": gen.model,
                "recorded": datetime.date.today().isoformat(),
                "prompt": text,
                "params": gen.params,
                "raw_text": gen.raw_text,
                "finish_reason": gen.finish_reason,
                "tokens_in": gen.tokens_in,
                "tokens_out": gen.tokens_out,
                "latency_s": gen.latency_s,
                "expected_status": gen.extraction_status,
                "expected_note": gen.extraction_note,
            }
            path = OUT / f"{args.model}.{name}.json"
            path.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
            print(
                f"{name}: {gen.extraction_status} ({gen.tokens_out} tokens, {gen.latency_s} s) -> {path.name}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
