"""Repair rounds end to end, replayed from recorded answers of the real embedded model.

The recording (tests/fixtures/responses/<model>.repair.json; scripts/record_llm_fixtures.py --repair R)
starts from the model's recorded first answer, which calls an API pydub does not have and fails in the
real sandbox; each round's feedback went back to the real model in the same conversation. Recorded
2026-12-02 with the 1.5B model: round 1 moved to pydub's real `from_raw` (then missed `sample_width`),
round 2 added it (then missed `frame_rate`): no valid audio within 2 rounds. The test replays whatever
was recorded and checks each round against it; where the last recorded round ran, it also requires valid
audio. The run goes through the real CLI, Prefect server, Docker sandbox, gate and pitch judge; the model
is never called: the answers are in the response store under the keys the run asks for, and the model's
address is a closed port, so a key that does not match fails the test instead of calling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures_flows import PREFECT_TEST_PORT
from tests.fixtures_llm import free_port

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.judges]

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
RECORDED = FIXTURES / "qwen2.5-coder-1.5b.repair.json"
MODEL = "openai/qwen2.5-coder-1.5b"


def _write_nsynth(root: Path, notes: dict[str, dict]) -> None:
    (root / "audio").mkdir(parents=True)
    (root / "examples.json").write_text(json.dumps(notes))
    t = np.arange(64000) / 16000
    for name, entry in notes.items():
        tone = 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((entry["pitch"] - 69) / 12) * t) * np.exp(-t)
        with wave.open(str(root / "audio" / f"{name}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes((tone * 32767).astype("<i2").tobytes())


def _note(name: str, pitch: int) -> dict:
    return {"note_str": name, "instrument_family_str": "guitar", "instrument_source_str": "acoustic",
            "pitch": pitch, "velocity": 100, "qualities_str": ["bright"]}


def _seed_store(recorded: dict, data_dir: Path, dataset: Path, model_settings: dict) -> None:
    """Put each recorded answer in the response store under the key of the conversation that asked it."""
    from audioprobe.schema import Generation
    from audioprobe.settings import ModelSettings, Settings
    from tasks.generation.extract import extract
    from tasks.generation.llm import request_of
    from tasks.generation.store import ResponseStore
    from tasks.probesets.loaders import load_items
    from tasks.prompting import render

    settings = Settings(data_dir=data_dir, models={MODEL: ModelSettings(**model_settings)})
    (item,), _ = load_items("notes", dataset, 1, 0)
    prompt = render(item, "notes", "paper")
    assert prompt.text == recorded["turns"][0]["prompt"], "the run's item renders the recorded prompt"
    store = ResponseStore(settings.responses_dir)
    for turn in recorded["turns"]:
        asked = prompt.model_copy(update={"text": turn["prompt"], "history": turn["history"]})
        _, _, params, key = request_of(asked, MODEL, 0, settings)
        assert params == recorded["params"]
        ex = extract(turn["raw_text"])
        store.put(Generation(response_id=key, model=MODEL, api_base=model_settings["api_base"], params=params,
                             raw_text=turn["raw_text"], extraction_status=ex.status, code=ex.code,
                             extraction_note=ex.note, finish_reason=turn["finish_reason"]))


def test_a_failed_first_answer_is_repaired_by_feedback(tmp_path, prefect_server):
    if not RECORDED.exists():
        pytest.skip(f"{RECORDED.name} not recorded yet: scripts/record_llm_fixtures.py --model "
                    "qwen2.5-coder-1.5b --repair 2 (needs the embedded model and the sandbox image)")
    recorded = json.loads(RECORDED.read_text())
    assert recorded["turns"][0]["failure"], "the recording starts from a failed first answer"
    fixed = recorded["turns"][-1]["failure"] is None  # whether the real model's last recorded round ran
    root = tmp_path / "datasets"
    _write_nsynth(root / "nsynth", {"guitar_acoustic_010-060-100": _note("guitar_acoustic_010-060-100", 60),
                                    "guitar_acoustic_010-062-100": _note("guitar_acoustic_010-062-100", 62)})
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: a key mismatch cannot call a model
    model_settings = recorded["params"] | {"api_base": closed, "max_retries": 0}
    data_dir = tmp_path / "data"
    _seed_store(recorded, data_dir, root / "nsynth", model_settings)
    env = {**os.environ, "AUDIOPROBE_DATA_DIR": str(data_dir), "AUDIOPROBE_PREFECT_API_URL": prefect_server,
           "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT), "AUDIOPROBE_MODELS": json.dumps({MODEL: model_settings}),
           "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)
    rounds = len(recorded["turns"]) - 1
    proc = subprocess.run(
        [sys.executable, "-m", "audioprobe", "run", "--tier", "notes", "--model", MODEL, "--limit", "1",
         "--repair-rounds", str(rounds), "--dataset-root", str(root), "--new"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])

    records = sorted((json.loads(p.read_text()) for p in (run_dir / "outcomes").glob("*.json")),
                     key=lambda o: o["round"])
    assert [o["round"] for o in records] == list(range(rounds + 1)), "one record per round"
    assert all(o["generation"]["cached"] for o in records), "replayed: no model call"
    assert [o["failure"] for o in records] == [t["failure"] for t in recorded["turns"]], "the recording, replayed"
    for before, after in zip(records, records[1:]):
        assert after["repaired_from"] == before["failure"], "each round says what its feedback addressed"
        assert after["prompt"]["history"][-1]["content"] == before["generation"]["raw_text"], "same conversation"
    first, last = records[0], records[-1]
    assert first["repaired_from"] is None
    progress = [line for line in proc.stderr.splitlines() if line.startswith(f"run {run_dir.name}: ")]
    assert progress and not any("\r" in line for line in progress), "plain lines off a terminal"
    assert progress[-1].startswith(f"run {run_dir.name}: {rounds + 1}/{rounds + 1} records"), \
        "the total counts the repair rounds, and the bar ends at it"
    if fixed:
        assert last["gate"]["ok"], "the repaired program makes valid audio"
    assert last["prompt"]["template"].startswith("repair.") and len(last["prompt"]["history"]) == 2 * rounds

    table = pd.read_parquet(run_dir / "items.parquet")
    assert {"round", "sample", "repaired_from", "finish_reason", "temperature"} <= set(table.columns)
    assert sorted(table["round"]) == list(range(rounds + 1))

    curve = pd.read_csv(run_dir / "report" / "repair_curve.csv").set_index("round")
    assert list(curve.index) == list(range(rounds + 1))
    assert curve.loc[0, "valid_audio_k"] == 0 and curve.loc[rounds, "valid_audio_k"] == int(fixed)
    fixes = pd.read_csv(run_dir / "report" / "repair_fixes.csv")
    assert fixes["attempts"].sum() == rounds and fixes["now_valid_audio"].sum() == int(fixed)
    page = (run_dir / "report" / "index.html").read_text()
    assert "repair@r" in page and last["prompt"]["template"] in page


def test_template_baseline_runs_through_sandbox_gate_and_judges(tmp_path, prefect_server):
    """`--model baseline/template` needs no LLM: its sine is judged at the asked pitch; repair rounds asked
    of a baseline are not run (it answers the same whatever it is told)."""
    root = tmp_path / "datasets"
    _write_nsynth(root / "nsynth", {"guitar_acoustic_010-060-100": _note("guitar_acoustic_010-060-100", 60),
                                    "guitar_acoustic_010-067-100": _note("guitar_acoustic_010-067-100", 67)})
    env = {**os.environ, "AUDIOPROBE_DATA_DIR": str(tmp_path / "data"), "AUDIOPROBE_PREFECT_API_URL": prefect_server,
           "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT), "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "audioprobe", "run", "--tier", "notes", "--model", "baseline/template", "--limit", "2",
         "--repair-rounds", "1", "--dataset-root", str(root), "--new"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    records = [json.loads(p.read_text()) for p in (run_dir / "outcomes").glob("*.json")]
    assert len(records) == 2 and {o["round"] for o in records} == {0}
    for o in records:
        assert o["failure"] is None and o["gate"]["ok"], o["error"]
        (judgement,) = o["judgements"]
        assert judgement["judge"].startswith("pitch/") and judgement["correct"], judgement["values"]
        assert o["generation"]["params"]["template"] == "template"
    passk = pd.read_csv(run_dir / "report" / "pass_at_k.csv").set_index("stage")
    assert passk.loc["correct", "pass_at_1"] == 1.0 and passk.loc["correct", "items"] == 2
