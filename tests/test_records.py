"""Run records, the failure taxonomy and retry selection: pure code, no servers."""

from __future__ import annotations

import json

import pytest

from audioprobe.schema import (
    ExecutionResult,
    GateResult,
    Generation,
    ItemOutcome,
    Judgement,
    ProbeItem,
    RunManifest,
)
from tasks import runs
from tasks.records import Run, outcome_key
from tasks.taxonomy import FAILURES, STAGE_OF_FAILURE, classify_failure, is_final

ITEM = ProbeItem(id="notes/x/guitar_acoustic_024-060-100", tier="notes", label="guitar_acoustic", dataset="x")


def outcome(gen=None, exe=None, gate=None, judgements=(), sample=0, **kw) -> ItemOutcome:
    return ItemOutcome(
        run_id="r1",
        item=ITEM,
        model="local",
        method="paper",
        sample=sample,
        generation=gen,
        execution=exe,
        gate=gate,
        judgements=list(judgements),
        **kw,
    )


GOOD_GEN = Generation(
    response_id="a", model="local", raw_text="```python\nx\n```", code="x", extraction_status="single_block"
)


@pytest.mark.parametrize(
    "gen, exe, gate, judgements, expected",
    [
        (
            Generation(
                response_id="a", model="m", error="no key", error_kind="auth", extraction_status="llm_error"
            ),
            None,
            None,
            (),
            "llm_error",
        ),
        (
            Generation(response_id="a", model="m", raw_text="I cannot", extraction_status="refusal"),
            None,
            None,
            (),
            "no_code",
        ),
        (GOOD_GEN, ExecutionResult(status="error", error_type="SyntaxError"), None, (), "syntax"),
        (
            GOOD_GEN,
            ExecutionResult(status="error", error_type="ModuleNotFoundError", missing_module="midutil"),
            None,
            (),
            "missing_module",
        ),
        (GOOD_GEN, ExecutionResult(status="error", error_type="ImportError"), None, (), "bad_import"),
        (GOOD_GEN, ExecutionResult(status="error", error_type="ValueError"), None, (), "runtime"),
        (GOOD_GEN, ExecutionResult(status="timeout"), None, (), "timeout"),
        (GOOD_GEN, ExecutionResult(status="memory"), None, (), "memory"),
        (GOOD_GEN, ExecutionResult(status="no_output"), None, (), "no_output"),
        (
            GOOD_GEN,
            ExecutionResult(status="output_rejected", rejected=["symlink"]),
            None,
            (),
            "output_rejected",
        ),
        (
            GOOD_GEN,
            ExecutionResult(status="ok"),
            GateResult(ok=False, problems=["silent"]),
            (),
            "invalid_audio",
        ),
        (
            GOOD_GEN,
            ExecutionResult(status="ok"),
            GateResult(ok=True),
            [Judgement(judge="pitch/x", judge_version="1", audio_sha256="s", error="boom")],
            "judge_error",
        ),
        (
            GOOD_GEN,
            ExecutionResult(status="ok"),
            GateResult(ok=True),
            [Judgement(judge="pitch/x", judge_version="1", audio_sha256="s", correct=True)],
            None,
        ),
    ],
)
def test_every_failure_kind_is_classified(gen, exe, gate, judgements, expected):
    assert classify_failure(outcome(gen, exe, gate, judgements)) == expected
    assert expected is None or (expected in FAILURES and expected in STAGE_OF_FAILURE)


def test_transient_llm_errors_and_infrastructure_are_redone_on_rerun():
    transient = Generation(response_id="a", model="m", error="503", error_kind="transient")
    assert not is_final(outcome(transient, failure="llm_error"))
    for user_fixes in ("auth", "unknown_model"):  # a key or a model name is the set-up's, not the model's
        fixable = Generation(response_id="a", model="m", error="no key", error_kind=user_fixes)
        assert not is_final(outcome(fixable, failure="llm_error"))
    refused = Generation(response_id="a", model="m", error="400", error_kind="bad_request")
    assert is_final(outcome(refused, failure="llm_error")), "the model's own bad request is a result"
    assert not is_final(outcome(GOOD_GEN, failure="infrastructure"))
    assert not is_final(outcome(None, failure="llm_error")), "a broken generate task (no answer) is redone"
    assert is_final(outcome(GOOD_GEN, ExecutionResult(status="timeout"), failure="timeout"))
    assert not is_final(outcome(GOOD_GEN)), "an unfinished record is redone"
    assert not is_final(None)


@pytest.fixture
def store(tmp_path):
    manifest = RunManifest(
        run_id="r1",
        created="now",
        config_hash="h",
        models=["local"],
        tiers=["notes"],
        methods={"notes": ["paper"]},
    )
    return Run.create(manifest, runs_dir=tmp_path)


def test_outcomes_round_trip_with_side_files(store):
    from tasks import outcomes

    record = outcomes.finalize(
        outcome(GOOD_GEN, ExecutionResult(status="timeout", stderr_tail="slow"), failure="timeout")
    )
    store.save_outcome(record)
    key = outcome_key("local", "paper", ITEM.id, 0)
    assert store.load_outcome(key) == record
    assert (store.files_dir(key) / "program.py").read_text() == "x"
    assert (store.files_dir(key) / "stderr.txt").read_text() == "slow"
    assert not list(store.dir.rglob(".*.json*")), "no temp files are left behind"
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        Run.open("nope", runs_dir=store.dir.parent)


def test_retry_selects_only_matching_failures_and_keeps_the_old_records(store, monkeypatch):
    timeout = outcome(GOOD_GEN, ExecutionResult(status="timeout"), failure="timeout", sample=0)
    module = outcome(
        GOOD_GEN,
        ExecutionResult(status="error", error_type="ModuleNotFoundError"),
        failure="missing_module",
        sample=1,
    )
    llm = outcome(
        Generation(response_id="b", model="m", error="x", error_kind="auth"), failure="llm_error", sample=2
    )
    fine = outcome(
        GOOD_GEN, ExecutionResult(status="ok"), GateResult(ok=True), sample=3, stage_reached="done"
    )
    for record in (timeout, module, llm, fine):
        store.save_outcome(record)

    def pick(only=None, statuses=None):
        return sorted(o.sample for o in runs.select_for_retry(store, only, statuses))

    assert pick() == [0, 1, 2]
    assert pick(only="execution") == [0, 1]
    assert pick(only="generation") == [2]
    assert pick(statuses=["timeout"]) == [0]
    assert pick(statuses=["error"]) == [1], "execution statuses match too"
    assert pick(only="judging") == []

    runs.prepare_retry(store, runs.select_for_retry(store, None, ["timeout"]))
    left = sorted(json.loads(p.read_text())["sample"] for p in (store.dir / "outcomes").glob("*.json"))
    assert left == [1, 2, 3]
    assert len(list((store.dir / "outcomes.retried").glob("*.json"))) == 1
    assert store.manifest.finished is None


def test_the_writer_stores_derived_facts_and_old_records_are_migrated(store):
    """Failure kind, stage, detail, message and row are worked out once, when the record is written; a
    record of the first format (none of them stored) gets them when it is read."""
    from audioprobe import stored

    failed = ExecutionResult(
        status="error",
        error_type="ModuleNotFoundError",
        missing_module="gtts",
        stderr_tail="ModuleNotFoundError: No module named 'gtts'",
    )
    old = outcome(GOOD_GEN, failed, format_version=1)
    assert old.format_version == 1 and not old.row
    key = outcome_key(old.model, old.method, old.item.id, old.sample)
    path = store.outcome_path(key)  # written as the first format wrote it: raw parts only, no version field
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(old.model_dump_json(exclude={"format_version", "failure_detail", "row"}))
    back = store.load_outcome(path.stem)
    assert back.format_version == stored.current(ItemOutcome) == 2
    assert back.failure == "missing_module" and back.stage_reached == "execution"
    assert back.failure_detail == "gtts" and ITEM.id in back.error and "gtts" in back.error
    assert back.row["status"] == "missing_module" and back.row["item_id"] == ITEM.id
    assert back.row["missing_module"] == "gtts" and back.row["failure_detail"] == "gtts"


def test_the_run_writes_every_outcome_with_its_derived_facts_and_version(store):
    """Whoever saves through the Run gets the record finished: no caller can store one without its row."""
    failed = ExecutionResult(status="timeout", wall_s=30.0)
    path = store.save_outcome(outcome(GOOD_GEN, failed, format_version=1))
    written = json.loads(path.read_text())
    assert written["format_version"] == 2 and written["failure"] == "timeout"
    assert written["failure_detail"] == "30.0 s" and written["row"]["status"] == "timeout"


# ----------------------------------------------------------------------------- the Run object


def _manifest(run_id: str = "20261202-000000-abc123") -> RunManifest:
    return RunManifest(
        run_id=run_id,
        created="2026-12-02T00:00:00+00:00",
        config_hash="abc123",
        models=["local"],
        tiers=["notes"],
        methods={"notes": ["paper"]},
    )


def test_a_run_reads_its_manifest_once_and_writes_every_change(tmp_path):
    run = Run.create(_manifest(), runs_dir=tmp_path)
    (run.dir / "run.json").write_text("damaged")  # a reread would fail: the manifest is held, not reread
    assert run.manifest.models == ["local"]
    run.manifest.skipped = []
    run.conclude("2 of 4 items not done; model 'local' unavailable: refused")
    again = Run.open(run.run_id, runs_dir=tmp_path)
    assert again.manifest.incomplete.startswith("2 of 4") and again.manifest.finished is None
    run.conclude(None)
    assert Run.open(str(run.dir)).manifest.finished is not None


def test_a_run_is_a_flow_parameter_prefect_can_show_and_rebuild(tmp_path):
    run = Run.create(_manifest(), runs_dir=tmp_path)
    shown = json.loads(run.model_dump_json())
    assert shown == {"dir": str(run.dir)}  # the UI shows where the run lives, not its whole manifest
    rebuilt = Run.model_validate(shown)
    assert rebuilt.run_id == run.run_id and rebuilt.manifest == run.manifest
    assert Run.model_validate(run) is run  # validation keeps the instance: one manifest per process


def test_nothing_below_the_command_line_opens_a_run_by_id():
    """Flows and tasks get the Run from the CLI; opening by id is for entry points and tools over many runs."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    entry_points = {
        "flows/cli.py",
        "flows/deploy.py",
        "audioprobe/report/build.py",
        "audioprobe/listening/cli.py",
        "tasks/audio_store.py",
        "tasks/runs.py",
        "tasks/records.py",
    }
    opening = re.compile(r"\bRun\.open\(|\bRunStore\b")
    offenders = [
        str(p.relative_to(root))
        for folder in ("flows", "tasks", "audioprobe", "sandbox")
        for p in (root / folder).rglob("*.py")
        if str(p.relative_to(root)) not in entry_points and opening.search(p.read_text())
    ]
    assert offenders == []
