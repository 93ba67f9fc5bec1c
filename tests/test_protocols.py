"""Beyond single shot, without servers: truncation, feedback prompts, round planning, the template
baseline's programs (run in a real Python), the protocol tables and the paired verdicts."""

from __future__ import annotations

import subprocess
import sys
import wave

import pytest

from audioprobe.report.sections import protocols
from audioprobe.schema import (
    ExecutionResult,
    GateResult,
    Generation,
    ItemOutcome,
    Judgement,
    ProbeItem,
    RenderedPrompt,
    RunManifest,
)
from tasks import repair, runs
from tasks.generation import baseline, llm
from tasks.records import Run
from tasks.taxonomy import classify_failure

NOTE = ProbeItem(id="notes/guitar_acoustic_010-060-100", tier="notes", label="guitar_acoustic", dataset="x",
                 note_id="guitar_acoustic_010-060-100", pitch=60, amplitude=0.5, instrument_family="guitar")
PROMPT = RenderedPrompt(template="notes.paper.txt", template_sha256="0" * 64, method="paper", text="make a note",
                        output_name="guitar_acoustic_010-060-100.WAV")


def gen(code="x = 1", finish="stop", raw=None):
    return Generation(response_id="g", model="local", raw_text=raw or f"```python\n{code}\n```", code=code,
                      extraction_status="single_block" if code else "no_code", finish_reason=finish,
                      params={"temperature": 0.0, "max_tokens": 64, "seed": 0})


def outcome(item=NOTE, generation=None, execution=None, gate=None, judgements=(), sample=0, round_=0, model="local",
            repaired_from=None):
    o = ItemOutcome(run_id="r1", item=item, model=model, method="paper", sample=sample, round=round_, prompt=PROMPT,
                    generation=generation or gen(), execution=execution, gate=gate, judgements=list(judgements),
                    repaired_from=repaired_from)
    o.failure = classify_failure(o)
    o.stage_reached = "done" if o.failure is None and o.judgements else "execution"
    return o


OK_EXE = ExecutionResult(status="ok")


def pitch(correct, f0=300.0):
    return Judgement(judge="pitch/x", judge_version="1", audio_sha256="s", correct=correct,
                     values={"f0_hz": f0, "target_hz": 261.626, "cents_error": 240.0})


def test_an_answer_cut_at_max_tokens_is_truncated_not_syntax():
    syntax = ExecutionResult(status="error", error_type="SyntaxError")
    assert classify_failure(outcome(generation=gen(finish="length"), execution=syntax)) == "truncated"
    assert classify_failure(outcome(generation=gen(finish="stop"), execution=syntax)) == "syntax"
    assert classify_failure(outcome(generation=gen(code="", finish="length"))) == "truncated"
    runtime = ExecutionResult(status="error", error_type="ValueError")
    assert classify_failure(outcome(generation=gen(finish="length"), execution=runtime)) == "runtime"


def test_samples_raise_the_temperature_and_conversations_key_the_store():
    from audioprobe.settings import ModelSettings, Settings

    settings = Settings(models={"m/x": ModelSettings(temperature=0.0)}, sample_temperature=0.3)
    assert llm.request_of("p", "m/x", 0, settings).params["temperature"] == 0.0
    assert llm.request_of("p", "m/x", 0, settings, samples=2).params["temperature"] == 0.3
    follow = PROMPT.model_copy(update={"history": [{"role": "user", "content": "a"},
                                                   {"role": "assistant", "content": "b"}]})
    assert llm.messages_for(follow)[-1] == {"role": "user", "content": "make a note"}
    assert len(llm.messages_for(follow)) == 3
    assert llm.request_of(follow, "m/x", 0, settings).key != llm.request_of(PROMPT, "m/x", 0, settings).key


@pytest.mark.parametrize(
    ("execution", "gate", "judgements", "template", "says"),
    [
        (ExecutionResult(status="error", error_type="ModuleNotFoundError", missing_module="gtts"), None, (),
         "repair.missing_module.txt", ["`gtts`", "numpy", "scipy"]),
        (ExecutionResult(status="error", error_type="AttributeError",
                         stderr_tail="Traceback...\n  File x\nAttributeError: module 'scipy.signal' has no attribute 'sine'"),
         None, (), "repair.error.txt", ["has no attribute 'sine'", "runtime"]),
        (OK_EXE, GateResult(ok=False, problems=["silent: peak 0.00e+00"]), (), "repair.gate.txt",
         ["silent", "4 seconds at 16000 Hz"]),
        (OK_EXE, GateResult(ok=True), [pitch(False)], "repair.pitch.txt", ["300.0 Hz", "MIDI 60", "261.6 Hz", "+240"]),
        (ExecutionResult(status="no_output"), None, (), "repair.no_output.txt", ["guitar_acoustic_010-060-100.WAV"]),
    ],
)
def test_feedback_says_what_went_wrong(execution, gate, judgements, template, says):
    failed = outcome(execution=execution, gate=gate, judgements=judgements)
    follow = repair.next_prompt(failed)
    assert follow.template == template and len(follow.template_sha256) == 64
    for phrase in says:
        assert phrase in follow.text
    assert follow.history == [{"role": "user", "content": "make a note"},
                              {"role": "assistant", "content": failed.generation.raw_text}]
    assert follow.output_name == PROMPT.output_name


def test_environmental_feedback_gives_the_judges_choice():
    bell = ProbeItem(id="env/Bell", tier="environmental", label="Bell", dataset="x")
    judged = Judgement(judge="classify/x", judge_version="1", audio_sha256="s", correct=False,
                       values={"choices": ["Bell", "Bark", "Rain", "Wind", "Drill"], "chosen": "Rain",
                               "confidence": 0.61, "target_probability": 0.1})
    text = repair.next_prompt(outcome(item=bell, execution=OK_EXE, gate=GateResult(ok=True),
                                      judgements=[judged])).text
    assert '"Rain" (confidence 0.61), not "Bell"' in text and '"Drill"' in text


def test_nothing_to_repair_after_success_or_a_failed_call():
    assert repair.repair_reason(outcome(execution=OK_EXE, gate=GateResult(ok=True), judgements=[pitch(True)])) is None
    failed_call = Generation(response_id="g", model="m", error="no key", error_kind="auth", extraction_status="llm_error")
    assert repair.repair_reason(outcome(generation=failed_call)) is None
    with pytest.raises(ValueError, match="nothing to repair"):
        repair.feedback(outcome(generation=failed_call))


def test_rounds_are_planned_from_the_records(tmp_path):
    manifest = RunManifest(run_id="r1", created="now", config_hash="h", models=["local"], tiers=["notes"],
                           methods={"notes": ["paper"]}, repair_rounds=2)
    store = Run.create(manifest, runs_dir=tmp_path)
    first = lambda item: PROMPT  # noqa: E731
    plan = repair.next_attempts(store, "local", "paper", [NOTE], 1, 2, first)
    assert [(a.round, a.prompt.template) for a in plan] == [(0, "notes.paper.txt")]
    store.save_outcome(outcome(execution=ExecutionResult(status="error", error_type="ModuleNotFoundError",
                                                         missing_module="gtts")))
    plan = repair.next_attempts(store, "local", "paper", [NOTE], 1, 2, first)
    assert [(a.round, a.prompt.template, a.repaired_from) for a in plan] == [(1, "repair.missing_module.txt",
                                                                              "missing_module")]
    store.save_outcome(outcome(execution=OK_EXE, gate=GateResult(ok=True), judgements=[pitch(True)], round_=1))
    assert repair.next_attempts(store, "local", "paper", [NOTE], 1, 2, first) == [], "a success ends the chain"
    assert [o.round for o in store.outcomes()] == [0], "the paper's sections read first answers only"
    assert sorted(o.round for o in store.outcomes(all_rounds=True)) == [0, 1]
    assert repair.rounds_for("baseline/template", 2) == 0
    rows = sorted((o.row for o in store.outcomes(all_rounds=True)), key=lambda r: r["round"])
    assert [(r["round"], r["repaired_from"], r["failure"]) for r in rows] == [(0, None, "missing_module"),
                                                                             (1, None, None)]


@pytest.mark.parametrize(
    "item",
    [
        NOTE,
        ProbeItem(id="env/Bell", tier="environmental", label="Bell", dataset="x"),
        ProbeItem(id="speech/yes", tier="speech", label="yes", dataset="x", description="Y EH1 S: a glide"),
    ],
    ids=["notes", "environmental", "speech"],
)
def test_template_baseline_writes_the_asked_clip(tmp_path, item):
    from tasks.tiers import get_tier

    answer = baseline.generate(item, PROMPT if item.tier == "notes" else PROMPT.model_copy(update={"output_name": None}),
                               "baseline/template")
    assert answer.extraction_status == "single_block" and answer.params["template"] == "template"
    proc = subprocess.run([sys.executable, "-c", answer.code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    (path,) = tmp_path.glob("*.wav") if item.tier != "notes" else tmp_path.glob("*.WAV")
    rate, seconds, _ = get_tier(item.tier).asked
    with wave.open(str(path)) as w:
        assert (rate is None or w.getframerate() == rate) and w.getnframes() / w.getframerate() == pytest.approx(
            seconds, rel=0.01)
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline.generate(item, PROMPT, "baseline/nope")


def _store_with(tmp_path, outcomes, rounds=1, run_id="r1"):
    manifest = RunManifest(run_id=run_id, created="now", config_hash="h", models=["local", "baseline/template"],
                           tiers=["notes"], methods={"notes": ["paper"]}, repair_rounds=rounds)
    store = Run.create(manifest, runs_dir=tmp_path)
    for o in outcomes:
        store.save_outcome(o)
    return store


def test_protocol_tables_count_pass_at_k_repair_and_paired_verdicts(tmp_path):
    items = [NOTE.model_copy(update={"id": f"notes/n{i}", "instrument_family": "guitar"}) for i in range(12)]
    good = dict(execution=OK_EXE, gate=GateResult(ok=True), judgements=[pitch(True)])
    missing = dict(execution=ExecutionResult(status="error", error_type="ModuleNotFoundError", missing_module="gtts"))
    records = []
    for i, item in enumerate(items):
        # the LLM fails every first answer; feedback fixes half of them in round 1
        records.append(outcome(item, **missing))
        records.append(outcome(item, round_=1, repaired_from="missing_module", **(good if i % 2 else missing)))
        # the baseline is right on every item, first time
        records.append(outcome(item, model="baseline/template", **good))
    store = _store_with(tmp_path, records)
    t = protocols.build([store])

    llm_code = t["pass_at_k"].query("model == 'local' and stage == 'correct'").iloc[0]
    assert (llm_code["items"], llm_code["pass_at_1"], llm_code["never"]) == (12, 0.0, 12)
    curve = t["repair_curve"].query("model == 'local'").set_index("round")
    assert list(curve.index) == [0, 1]
    assert (curve.loc[0, "correct_k"], curve.loc[1, "correct_k"], curve.loc[1, "correct_n"]) == (0, 6, 12)
    assert len(t["repair_curve"].query("model == 'baseline/template'")) == 1, "a baseline answers once"
    fixes = t["repair_fixes"].iloc[0]
    assert (fixes["feedback_on"], fixes["attempts"], fixes["now_correct"]) == ("missing_module", 12, 6)
    paired = t["paired"].query("stage == 'correct'").iloc[0]
    assert (paired["a_only"], paired["b_only"]) == (12, 0) or (paired["a_only"], paired["b_only"]) == (0, 12)
    assert paired["p"] == pytest.approx(2 / 2**12)
    assert "baseline/template better than local at p<0.01" == paired["verdict"]
    code = t["paired"].query("stage == 'code'").iloc[0]
    assert code["verdict"].startswith("no difference"), "both wrote code for every item"
    assert t["truncation"].set_index("model").loc["local", "answers"] == 24


def test_report_page_shows_the_protocol_section(tmp_path):
    from audioprobe.report import build_report

    records = [outcome(NOTE.model_copy(update={"id": f"notes/n{i}"}), execution=OK_EXE, gate=GateResult(ok=True),
                       judgements=[pitch(i % 2 == 0)], generation=gen(finish="length" if i == 0 else "stop"))
               for i in range(4)]
    page = build_report(_store_with(tmp_path, records)).read_text()
    assert "8. Beyond single shot" in page and "repair@r" in page and "cut at max_tokens" in page
    assert "notes.paper.txt (000000000000)" in page


def test_params_a_provider_drops_are_named():
    from audioprobe.settings import Settings

    params = {"temperature": 0.2, "max_tokens": 64, "seed": 3}
    assert llm.dropped_params(llm.resolve("anthropic/claude-3-5-sonnet-20240620", Settings()), params) == ["seed"]
    assert llm.dropped_params(llm.resolve("openai/gpt-4o", Settings()), params) == []
    assert llm.dropped_params(llm.resolve("anthropic/x", Settings()), params | {"seed": None}) == []


def test_compare_runs_pairs_the_same_model_across_runs(tmp_path):
    from audioprobe.report import build_report

    items = [NOTE.model_copy(update={"id": f"notes/n{i}"}) for i in range(30)]
    good = dict(execution=OK_EXE, gate=GateResult(ok=True), judgements=[pitch(True)])
    silent = dict(execution=OK_EXE, gate=GateResult(ok=False, problems=["silent"]))
    before = _store_with(tmp_path / "a", [outcome(i, **silent) for i in items], rounds=0, run_id="before")
    after = _store_with(tmp_path / "b", [outcome(i, **(good if n < 27 else silent)) for n, i in enumerate(items)],
                        rounds=0, run_id="after")
    paired = protocols.build([before, after])["paired"].set_index("stage")
    assert (paired.loc["valid_audio", "a"], paired.loc["valid_audio", "b"]) == ("local (after)", "local (before)")
    assert paired.loc["valid_audio", "test"] == "McNemar (chi2-cc)", "27 discordant items: the chi-square"
    assert paired.loc["valid_audio", "verdict"] == "local (after) better than local (before) at p<0.001"
    assert paired.loc["executed", "verdict"].startswith("no difference")
    page = build_report(before, compare=[after]).read_text()
    assert "local (after) better than local (before) at p&lt;0.001" in page


def test_fad_interval_resamples_items_whole():
    import numpy as np

    from tasks.judges import frechet

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(400, 4))
    # 3 items, 8 samples each: samples of an item are near-copies, items differ
    centres = [np.full(4, c) for c in (-1.0, 0.0, 1.5)]
    clips = [rng.normal(loc=c, scale=0.05, size=(5, 4)) for c in centres for _ in range(8)]
    groups = [f"item{i}" for i in range(3) for _ in range(8)]
    as_clips = frechet.bootstrap_ci(clips, ref, n_boot=300)
    as_items = frechet.bootstrap_ci(clips, ref, n_boot=300, groups=groups)
    assert as_items[1] - as_items[0] > 1.5 * (as_clips[1] - as_clips[0]), (as_clips, as_items)
    assert frechet.bootstrap_ci(clips[:8], ref, groups=groups[:8]) is None, "one item: no interval"


def test_a_retried_first_answer_takes_its_repair_rounds_along(tmp_path):
    failed = outcome(execution=ExecutionResult(status="timeout"))
    store = _store_with(tmp_path, [failed, outcome(execution=OK_EXE, gate=GateResult(ok=True),
                                                   judgements=[pitch(True)], round_=1, repaired_from="timeout")])
    runs.prepare_retry(store, [failed])
    assert store.outcomes(all_rounds=True) == []
    assert len(list((store.dir / "outcomes.retried").glob("*.json"))) == 2


def test_protocol_intervals_are_never_zero_wide(tmp_path):
    """A real run's pass_at_k.csv showed pass@1 = 0 with CI [0.0, 0.0] on 2 items."""
    items = [NOTE.model_copy(update={"id": f"notes/n{i}"}) for i in range(2)]
    store = _store_with(tmp_path, [outcome(i, execution=ExecutionResult(status="timeout")) for i in items])
    t = protocols.build([store])
    row = t["pass_at_k"].query("stage == 'valid_audio'").iloc[0]
    assert row["pass_at_1_rate"] == 0.0 and row["pass_at_1_ci_method"] == "wilson"
    assert row["pass_at_1_ci_hi"] > 0.5, "0 of 2 items: Wilson's upper bound is 0.66"
    for _, r in t["pass_at_k"].iterrows():
        assert r["pass_at_1_ci_hi"] > r["pass_at_1_ci_lo"]


def test_one_judged_correct_definition_and_holm_over_the_whole_report(tmp_path):
    """An unmeasurable note (valid audio, no verdict) is left out of "judged correct" everywhere, as the
    pitch table leaves it; Holm's family is every test of the report, its size beside each."""
    items = [NOTE.model_copy(update={"id": f"notes/n{i}"}) for i in range(6)]
    unmeasurable = Judgement(judge="pitch/x", judge_version="1", audio_sha256="s", correct=None,
                             values={"measurable": False})
    good = dict(execution=OK_EXE, gate=GateResult(ok=True), judgements=[pitch(True)])
    odd = dict(execution=OK_EXE, gate=GateResult(ok=True), judgements=[unmeasurable])
    records = [outcome(i, **(odd if n < 2 else good)) for n, i in enumerate(items)]
    records += [outcome(i, model="baseline/template", **good) for i in items]
    t = protocols.build([_store_with(tmp_path, records)])
    local = t["pass_at_k"].query("model == 'local' and stage == 'correct'").iloc[0]
    assert (local["items"], local["pass_at_1"]) == (4, 1.0), "2 unmeasurable notes: left out, not failed"
    paired = t["paired"].set_index("stage")
    assert paired.loc["correct", "items"] == 4 and paired.loc["correct", "a_only"] + paired.loc["correct", "b_only"] == 0
    family = len(t["paired"]) + len(t["paired_labels"])
    assert set(t["paired"]["family_size"]) == {family} and set(t["paired_labels"]["family_size"]) == {family}


def test_sections_one_to_seven_give_each_item_one_vote_and_the_summary_no_nan(tmp_path):
    """--samples 3: three clips of one item are one item in sections 1-7 (sample 0), not three, so their
    Wilson intervals are over items. A model with no scored clip reads "—" in the summary, never nan."""
    from audioprobe.report.build import summary_markdown
    from audioprobe.report.tables import build_tables
    from audioprobe.schema import FADResult

    items = [NOTE.model_copy(update={"id": f"notes/n{i}"}) for i in range(3)]
    good = dict(execution=OK_EXE, gate=GateResult(ok=True), judgements=[pitch(True)])
    records = [outcome(i, sample=s, **(good if s == 0 else {"execution": ExecutionResult(status="timeout")}))
               for i in items for s in range(3)]
    store = _store_with(tmp_path, records)
    store.save_fad([FADResult(label="guitar", fad=None, n_gen=0, n_ref=5, embedding="logmel-stats-v1",
                              model="local", method="paper", group="instrument", note="no generated clips")])
    rt = build_tables(store)
    overview = rt["overview"].iloc[0]
    assert (overview["items"], overview["valid_audio"]) == (3, 3), "sample 0 of each item, one vote each"
    assert rt["pass_at_k"].query("stage == 'valid_audio'").iloc[0]["items"] == 3  # section 8 sees all samples
    md = summary_markdown(store, rt)
    assert "nan" not in md.lower() and "— (no valid clip scored)" in md


def test_human_calibration_says_where_the_papers_bands_apply():
    import inspect

    from audioprobe.report import html_human_calibration as human_calibration

    text = inspect.getsource(human_calibration)
    assert "whole classes" not in text and "single notes' VGGish FAD at 4 s" in text
