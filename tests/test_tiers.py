"""The tier registry (tasks/tiers): lookups, the paper's order, what each tier declares, and that no
module outside the tier modules and the dataset loaders tests a tier's name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from audioprobe.cli import UserError
from audioprobe.schema import ProbeItem, RunRequest
from audioprobe.settings import PROMPTS_DIR
from tasks import runs
from tasks.tiers import UnknownTier, all_tiers, get_tier, names, paper_tiers

REPO = Path(__file__).resolve().parents[1]


def test_lookup_and_order():
    assert [t.name for t in paper_tiers()] == ["notes", "environmental", "speech"]
    assert names()[:3] == ["notes", "environmental", "speech"] and "tones" in names()
    assert get_tier("notes").title and get_tier("environmental").default_method == "detailed"
    with pytest.raises(
        UnknownTier, match=r"unknown tier 'chords'; valid: notes, environmental, speech, tones"
    ):
        get_tier("chords")


@pytest.mark.parametrize("tier", all_tiers(), ids=lambda t: t.name)
def test_each_tier_declares_what_the_pipeline_asks(tier):
    for method in tier.methods:
        assert (PROMPTS_DIR / f"{tier.name}.{method}.txt").is_file(), f"{tier.name}.{method}.txt"
    assert tier.asked.seconds > 0 and 0 < tier.asked.tolerance < 1
    assert tier.contract.suffix.lower() == ".wav" and tier.headline
    assert "silence" in tier.controls
    assert tier.paper == bool(tier.offline_dir), "the paper's tiers come from datasets; tones makes its own"


def test_all_means_the_papers_tiers_and_tones_is_asked_for_by_name():
    def tiers(*asked: str) -> list[str]:
        return runs.check_request(
            RunRequest(models=["baseline/template"], tiers=list(asked), dataset_root=None, limit=1)
        ).tiers

    try:
        assert tiers("all") == ["notes", "environmental", "speech"]
        assert tiers("tones", "all") == ["notes", "environmental", "speech", "tones"]
    except UserError as exc:  # no offline reference sets on this machine: the checks after still hold
        assert "refs build" in str(exc)
    assert tiers("tones") == ["tones"], "tones needs no dataset"
    with pytest.raises(
        UserError, match="unknown --tier 'chords'; valid: notes, environmental, speech, tones, all"
    ):
        tiers("chords")
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^RUN_ARGS \?= --tier all ", make, re.MULTILINE), (
        "make run's tiers stay the paper's three"
    )


def test_a_tier_answers_for_its_items():
    note = ProbeItem(
        id="n",
        tier="notes",
        label="guitar_acoustic",
        dataset="x",
        pitch=60,
        velocity=127,
        note_name="C4",
        instrument_family="guitar",
        instrument_source="acoustic",
    )
    word = ProbeItem(id="w", tier="speech", label="yes", dataset="x", description="Y EH1 S: a glide")
    assert get_tier("notes").prompt_values(note)["amplitude"] == "1"
    assert get_tier("speech").prompt_values(word) == {"word": "yes", "description": "Y EH1 S: a glide"}
    assert "440.0 * 2 ** ((PITCH - 69) / 12)" in get_tier("notes").baseline_program(note, "n.WAV")
    assert "(530, 1840, 2480)" in get_tier("speech").baseline_program(word, "w.wav"), "EH's formants"


# The modules that look a tier up instead of naming it (issue 24). Dataset readers (nsynth.py, ...) make
# one tier's items and name it; the report and listening pages have their own owners.
LOOK_UP = [
    "tasks/judging.py",
    "tasks/prompting.py",
    "tasks/pipeline.py",
    "tasks/repair.py",
    "tasks/runs.py",
    "tasks/generation/baseline.py",
    "tasks/probesets/loaders.py",
    "tasks/probesets/cli.py",
    "tasks/probesets/refs.py",
    "tasks/judges/controls.py",
    "tasks/comparisons.py",
    "tasks/probesets/descriptions.py",
    "audioprobe/listening/",
    "flows/",
]


def test_no_module_branches_on_a_tier_name():
    pattern = (
        r'\.tier [!=]= "|tier [!=]= "|\["(notes|environmental|speech)"\]|"(notes|environmental|speech)": '
    )
    out = subprocess.run(
        ["git", "grep", "-nE", pattern, "--", *LOOK_UP], cwd=REPO, capture_output=True, check=False, text=True
    ).stdout
    assert not out, "look the tier up (tasks.tiers.get_tier) instead:\n" + out
    # The report's tables are named after the paper's (rt["speech"]); what it must not do is test a tier.
    out = subprocess.run(
        [
            "git",
            "grep",
            "-nE",
            r'tier [!=]= "|tier"\] == "|"(notes|environmental|speech)" in ',
            "--",
            "audioprobe/",
        ],
        cwd=REPO,
        capture_output=True,
        check=False,
        text=True,
    ).stdout
    assert not out, "ask the tier (Tier.report_section, distances_per_class, ...) instead:\n" + out


def test_a_resume_with_the_same_clips_keeps_the_stored_fad(tmp_path, monkeypatch):
    """The notes tier's FAD (a bootstrap of minutes at paper size) is computed again only when its inputs
    changed: a resumed or retried run that brought no new clip keeps the stored records."""
    import shutil

    from audioprobe.schema import FADResult
    from tasks import judging, pipeline
    from tasks.records import Run

    fixture = next((REPO / "tests/fixtures/runs").glob("v2-*/*/run.json")).parent
    run = Run(dir=Path(shutil.copytree(fixture, tmp_path / fixture.name)))
    outcomes = [o for o in run.outcomes() if o.item.tier == "notes"]
    model, method = outcomes[0].model, outcomes[0].method
    computed = []

    def fad_per_class(outs, model, method):
        computed.append(judging.fad_inputs_key(outs))
        return [FADResult(label="x", fad=1.0, n_gen=1, n_ref=1, embedding="e", model=model, method=method)]

    monkeypatch.setattr(pipeline, "fad_per_class", fad_per_class)
    notes = get_tier("notes")
    notes.set_judges(run, outcomes, model, method)
    notes.set_judges(run, outcomes, model, method)
    assert len(computed) == 1, "the same inputs: the stored FAD stands"
    stored = [r for r in run.fad() if (r.model, r.method) == (model, method)]
    assert [r.inputs_sha256 for r in stored] == computed

    changed = outcomes[0].model_copy(deep=True)
    changed.item.references.append("/elsewhere/another-reference.wav")
    notes.set_judges(run, [changed, *outcomes[1:]], model, method)
    assert len(computed) == 2 and computed[1] != computed[0], "another reference: computed again"
