"""The tones tier end to end, the proof that a tier is one module: `audioprobe run --tier tones` with the
template baseline through the real Prefect server, the Docker sandbox, the tier's DSP judge and the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tasks.tiers import get_tier
from tests.fixtures_flows import PREFECT_TEST_PORT, Cli

pytestmark = [pytest.mark.prefect, pytest.mark.docker]


def test_the_dsp_judge_hears_the_interval_and_nothing_else(tmp_path):
    tier = get_tier("tones")
    items, skipped = tier.load_items(None, limit=3, seed=0)
    assert len(items) == 3 and not skipped and items == tier.load_items(None, limit=3, seed=0)[0]
    item = items[0]
    low, high = (float(f) for f in item.label.split("+"))
    t = np.arange(32000) / 16000
    clips = {
        "right": np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t),
        "one_tone": np.sin(2 * np.pi * low * t),
        "a_semitone_off": np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * 2 ** (1 / 12) * t),
        "noise": np.random.default_rng(0).standard_normal(len(t)),
    }
    verdicts = {}
    for name, wave in clips.items():
        path = tmp_path / f"{name}.wav"
        sf.write(path, 0.4 * wave / np.max(np.abs(wave)), 16000)
        (verdicts[name],) = tier.judge([path], [item])[0]
    assert verdicts["right"].correct and verdicts["right"].score == 1.0
    assert verdicts["one_tone"].correct is False and verdicts["one_tone"].score == 0.5
    assert (
        verdicts["a_semitone_off"].correct is False and verdicts["a_semitone_off"].values["cents_off"][1] > 90
    )
    assert verdicts["noise"].correct is False


@pytest.fixture(scope="module")
def cli(tmp_path_factory, prefect_server) -> Cli:
    """The CLI with a data dir of its own; no LLM server: the template baseline asks none."""
    env = {
        **os.environ,
        "AUDIOPROBE_DATA_DIR": str(tmp_path_factory.mktemp("tones-data")),
        "AUDIOPROBE_PREFECT_API_URL": prefect_server,
        "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    return Cli(env)


def test_run_tones_with_the_baseline_end_to_end(cli):
    result = cli.last_json(
        cli("run", "--tier", "tones", "--model", "baseline/template", "--limit", "2", "--new")
    )
    run_dir = Path(result["run_dir"])
    manifest = json.loads((run_dir / "run.json").read_text())
    assert (
        manifest["tiers"] == ["tones"]
        and manifest["methods"] == {"tones": ["paper"]}
        and manifest["finished"]
    )

    items = json.loads((run_dir / "items-tones.json").read_text())["items"]
    outcomes = [json.loads(p.read_text()) for p in sorted((run_dir / "outcomes").glob("*.json"))]
    assert len(items) == 2 and len(outcomes) == 2
    for outcome in outcomes:
        assert outcome["failure"] is None and outcome["gate"]["ok"], outcome.get("error")
        (judgement,) = outcome["judgements"]
        assert judgement["judge"] == "tones/peaks" and judgement["correct"] is True, judgement
        assert outcome["prompt"]["template"] == "tones.paper.txt"
        assert f"{judgement['params']['targets_hz'][0]:g} Hz" in outcome["prompt"]["text"]

    points = json.loads((run_dir / "reference_points.json").read_text())["tones"]
    assert {p["control"] for p in points} == {"silence", "white_noise", "tone_burst"}
    judged = [p for p in points if p["judge"] == "tones/peaks"]
    assert judged and not any(p["correct"] for p in judged), "no control is the interval"

    flow_runs = cli.api("/flow_runs/filter", {"flow_runs": {"name": {"like_": "tones-baseline"}}})
    assert [r["name"] for r in flow_runs] == ["tones-baseline/template-paper"]
    assert flow_runs[0]["state_type"] == "COMPLETED"

    report = Path(result["report"])
    assert report.is_file() and get_tier("tones").title in report.read_text(), (
        "the report has a tones section"
    )


def test_tones_lists_its_items_without_a_dataset(cli):
    proc = subprocess.run(
        [sys.executable, "-m", "audioprobe", "items", "--tier", "tones", "--limit", "2"],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["tier"] for r in rows] == ["tones", "tones"] and "qualities" not in rows[0]
