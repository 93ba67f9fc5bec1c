"""Record real answers of the embedded model into tests/fixtures/responses/*.json.

The extraction tests replay these: real model output, not hand-written, for the shapes a model gives
(one block, several, none, cut at max_tokens...). Each record keeps the prompt, params, raw text and the
extraction status it was reviewed with. Rerun after changing prompts, then review the diffs:
    .venv/bin/python scripts/record_llm_fixtures.py [--model qwen2.5-coder-0.5b] [--only NAME]
    .venv/bin/python scripts/record_llm_fixtures.py --model qwen2.5-coder-1.5b --repair 2   # repair rounds
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audioprobe.schema import ProbeItem
from audioprobe.settings import ModelSettings, Settings
from tasks.generation import llm, local_server
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


REPAIR_FIRST = "notes_paper"  # a recorded first answer that fails in the sandbox (pydub has no from_array)
REPAIR_PARAMS = {"temperature": 0.0, "max_tokens": 700, "seed": 0}  # the first answer's own params


def record_repair(model: str, rounds: int) -> int:
    """Record a repair conversation: the recorded first answer runs in the real sandbox, its feedback
    (tasks.repair) goes back to the real model, and each answer is run again; tests/test_repair_flow.py
    replays it. Writes <model>.repair.json with every turn and what each program did."""
    from audioprobe.schema import ItemOutcome
    from sandbox.client import run_program
    from tasks import repair
    from tasks.generation.extract import extract
    from tasks.judging import gate_for_tier
    from tasks.pipeline import case_insensitive_glob
    from tasks.taxonomy import classify_failure

    first = json.loads((OUT / f"{model}.{REPAIR_FIRST}.json").read_text())
    prompt = render(NOTE, "notes", "paper")
    assert first["prompt"] == prompt.text, "the first answer was recorded for another prompt: record it again"
    # A response store of an earlier recording (--data) answers the rounds it already asked: more rounds
    # cost only the new ones.
    data = Path(os.environ.get("RECORD_DATA_DIR") or tempfile.mkdtemp(prefix="record-llm-"))
    base = Settings()
    turns = []
    port = int(os.environ.get("AUDIOPROBE_TEST_LLM_PORT", "0")) or None  # a shared machine: a port of one's own
    with local_server.LocalServer(model, Settings(cache_dir=base.cache_dir, local_model=model), port=port) as server:
        s = Settings(cache_dir=base.cache_dir, data_dir=data, local_model=model, local_port=server.port,
                     models={"local": ModelSettings(**REPAIR_PARAMS)})
        raw, finish = first["raw_text"], first["finish_reason"]
        for round_ in range(rounds + 1):
            ex = extract(raw)
            gen = llm.Generation(response_id="-", model=f"openai/{model}", raw_text=raw, code=ex.code,
                                 extraction_status=ex.status, finish_reason=finish, params=REPAIR_PARAMS)
            out_dir = data / f"round{round_}"
            exe = run_program(ex.code, expect=[case_insensitive_glob(prompt.output_name)], out_dir=out_dir) \
                if ex.code else None
            clip = next((Path(f.path) for f in exe.files if f.path), None) if exe and exe.status == "ok" else None
            outcome = ItemOutcome(run_id="record", item=NOTE, model="local", method="paper", round=round_,
                                  prompt=prompt, generation=gen, execution=exe,
                                  gate=gate_for_tier(clip, "notes") if clip else None)
            outcome.failure = classify_failure(outcome)
            turns.append({"round": round_, "prompt": prompt.text, "template": prompt.template,
                          "history": prompt.history, "raw_text": raw, "finish_reason": finish,
                          "execution_status": exe.status if exe else None, "failure": outcome.failure,
                          "stderr_tail": exe.stderr_tail[-600:] if exe else None,
                          "gate_problems": outcome.gate.problems if outcome.gate else None})
            print(f"round {round_}: {outcome.failure or 'valid audio'}", flush=True)
            if outcome.failure is None or round_ == rounds or repair.repair_reason(outcome) is None:
                break
            prompt = repair.next_prompt(outcome)
            answer = llm.generate(prompt, "local", settings=s)
            raw, finish = answer.raw_text, answer.finish_reason
    rec = {"name": "repair", "model": f"openai/{model}", "recorded": datetime.date.today().isoformat(),
           "item": NOTE.model_dump(mode="json"), "params": REPAIR_PARAMS, "turns": turns}
    path = OUT / f"{model}.repair.json"
    path.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")
    print(f"-> {path.name}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--only", action="append")
    ap.add_argument("--repair", type=int, default=0, metavar="R",
                    help="record a repair conversation of up to R rounds instead (needs the sandbox image)")
    args = ap.parse_args()
    if args.repair:
        return record_repair(args.model, args.repair)
    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="record-llm-"))
    base = Settings()
    with local_server.LocalServer(
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
