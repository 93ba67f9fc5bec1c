"""Orchestration against real parts: Prefect server, Docker sandbox, local LLM server, judges.

Sizes are small (2-3 items a run) so the module stays within a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures_flows import wait_for

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.llm, pytest.mark.judges]


def outcomes_of(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "outcomes").glob("*.json"))}


def stored_responses(data_dir: Path) -> int:
    return sum(1 for _ in (data_dir / "responses").rglob("*.json"))


def flow_runs(cli, name_like: str) -> list[dict]:
    return cli.api("/flow_runs/filter", {"flow_runs": {"name": {"like_": name_like}}, "limit": 50})


def task_run_names(cli, run_id: str) -> set[str]:
    """The names (without their counters) of the task runs of a run's tier flows, once the server has
    recorded every one of them in a final state (its recorder writes them within seconds)."""
    (parent,) = cli.api("/flow_runs/filter", {"flow_runs": {"name": {"any_": [f"benchmark-{run_id}"]}}})
    tiers = cli.api("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent["id"]]}}})

    def recorded():
        runs = cli.api("/task_runs/filter", {"flow_runs": {"id": {"any_": [f["id"] for f in tiers]}}, "limit": 200})
        return runs if runs and all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs) else None

    return {r["name"].rsplit("-", 1)[0] for r in wait_for(recorded, 60, f"the task runs of {run_id}")}


def test_run_records_every_item_and_the_ui_shows_it(cli):
    proc = cli("run", "--tier", "notes", "--model", "local", "--limit", "2", "--new")
    result = cli.last_json(proc)
    run_dir = Path(result["run_dir"])
    outcomes = outcomes_of(run_dir)
    items = json.loads((run_dir / "items-notes.json").read_text())["items"]

    assert len(items) == 2 and len(outcomes) == 2, "every item ends with a recorded outcome"
    for outcome in outcomes.values():
        assert outcome["generation"]["raw_text"], "the raw answer is kept"
        assert outcome["failure"] is not None or outcome["judgements"], "a failure or a judgement, never neither"
        if outcome["failure"]:
            assert outcome["item"]["id"] in outcome["error"], "the error names the item"
    table = pd.read_parquet(run_dir / "items.parquet")
    assert sorted(table["item_id"]) == sorted(i["id"] for i in items)
    assert Path(result["report"]).is_file()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["finished"] and manifest["versions"]["prefect"]

    runs = flow_runs(cli, "notes-local-paper")
    assert runs and all(r["state_type"] == "COMPLETED" for r in runs)
    assert any("model:local" in r["tags"] and "tier:notes" in r["tags"] for r in runs)
    artifacts = cli.api("/artifacts/filter", {"artifacts": {"key": {"any_": ["notes-local-paper"]}}})
    assert artifacts and artifacts[0]["type"] == "table"
    rows = json.loads(artifacts[0]["data"]) if isinstance(artifacts[0]["data"], str) else artifacts[0]["data"]
    assert {row["item_id"] for row in rows} == {i["id"] for i in items}
    assert {"generate", "execute", "evaluate"} <= task_run_names(cli, result["run_id"]), "the model was asked"


def test_second_run_reuses_responses_and_executions(cli):
    first = cli.last_json(cli("run", "--tier", "notes", "--model", "local", "--limit", "2", "--new"))
    before = stored_responses(cli.data_dir)
    second = cli.last_json(cli("run", "--tier", "notes", "--model", "local", "--limit", "2", "--new"))
    assert second["run_id"] != first["run_id"]
    assert stored_responses(cli.data_dir) == before, "no new model call"
    again = outcomes_of(Path(second["run_dir"]))
    assert again and all(o["generation"]["cached"] for o in again.values())
    executed = [o["execution"] for o in again.values() if o["execution"]]
    assert executed and all(e["cached"] for e in executed), "no program runs twice"
    originals = outcomes_of(Path(first["run_dir"]))
    for key, outcome in again.items():
        assert outcome["failure"] == originals[key]["failure"], "cached work gives the same result"
    names = task_run_names(cli, second["run_id"])
    assert "recall" in names and "generate" not in names, f"stored answers are recalled in batches: {names}"


def test_killed_run_resumes_without_repeating_model_calls(cli):
    command = ("run", "--tier", "environmental", "--method", "detailed", "--model", "local", "--limit", "3")
    runs_dir = cli.data_dir / "runs"
    earlier = set(runs_dir.glob("*"))
    responses_before = stored_responses(cli.data_dir)  # the module's data dir holds earlier tests' answers
    proc = cli.start(*command)

    def first_outcome_of_the_new_run():
        return next((p for p in runs_dir.glob("*/outcomes/*.json") if p.parent.parent not in earlier), None)

    run_dir = wait_for(first_outcome_of_the_new_run, 400, "a first outcome").parent.parent
    cli.kill(proc)
    at_kill = {key: json.dumps(o, sort_keys=True) for key, o in outcomes_of(run_dir).items()}
    responses_at_kill = stored_responses(cli.data_dir) - responses_before
    assert 1 <= len(at_kill) < 3 or pytest.skip("the run finished before it could be killed")
    assert json.loads((run_dir / "run.json").read_text())["finished"] is None

    result = cli.last_json(cli(*command))
    assert result["run_id"] == run_dir.name, "the same command resumes the unfinished run"
    after = outcomes_of(run_dir)
    assert len(after) == 3, "nothing is lost"
    for key, snapshot in at_kill.items():
        assert json.dumps(after[key], sort_keys=True) == snapshot, "finished work is kept as it was"
    new_calls = [o for k, o in after.items() if k not in at_kill and not o["generation"]["cached"]]
    assert len(new_calls) == 3 - responses_at_kill, "only items with no stored response asked the model"
    assert stored_responses(cli.data_dir) - responses_before == 3


def test_retry_reruns_only_the_matching_failures(cli):
    tight = cli.env | {"AUDIOPROBE_LIMITS__TIMEOUT_S": "0.05"}
    proc = subprocess.run([*cli_args(cli), "run", "--tier", "notes", "--model", "local", "--limit", "2", "--new"],
                          env=tight, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    failed = outcomes_of(run_dir)
    timed_out = {k for k, o in failed.items() if o["failure"] == "timeout"}
    assert timed_out, f"a 0.05 s limit times programs out: {[o['failure'] for o in failed.values()]}"

    nothing = cli("retry", run_dir.name, "--only", "execution", "--status", "memory")
    assert "retrying 0" in nothing.stderr
    assert outcomes_of(run_dir) == failed, "a retry that matches nothing changes nothing"

    cli("retry", run_dir.name, "--only", "execution", "--status", "timeout")
    retried = outcomes_of(run_dir)
    for key in timed_out:
        assert retried[key]["failure"] != "timeout", "the normal limit lets the program finish"
        assert retried[key]["generation"]["cached"], "a retry of execution never asks the model again"
    for key in set(failed) - timed_out:
        assert retried[key] == failed[key], "items that did not match are untouched"
    archived = list((run_dir / "outcomes.retried").glob("*.json"))
    assert len(archived) == len(timed_out), "the replaced records are kept"


def test_flows_run_on_a_local_two_worker_dask_cluster(cli):
    started = datetime.now(timezone.utc).isoformat()
    dask = cli.env | {"AUDIOPROBE_TASK_RUNNER": "dask", "AUDIOPROBE_DASK_WORKERS": "2"}
    proc = subprocess.run([*cli_args(cli), "run", "--tier", "notes", "--model", "local", "--limit", "2", "--new"],
                          env=dask, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    outcomes = outcomes_of(run_dir)
    assert len(outcomes) == 2
    salvaged = [o["error"] for o in outcomes.values() if o["failure"] in ("infrastructure", "judge_error")]
    assert not salvaged, f"every task ran on the Dask workers; none was salvaged: {salvaged}"
    assert all(o["generation"]["raw_text"] for o in outcomes.values()), "the workers reached the model"

    flows = cli.api("/flow_runs/filter", {"flow_runs": {"name": {"like_": "notes-local-paper"},
                                                        "start_time": {"after_": started}}})
    assert flows and all(f["state_type"] == "COMPLETED" for f in flows)

    def task_runs_final():
        runs = cli.api("/task_runs/filter", {"flow_runs": {"id": {"any_": [f["id"] for f in flows]}}, "limit": 200})
        return runs if runs and all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs) else None

    runs = wait_for(task_runs_final, 120, "the Dask task runs' final states")
    assert all(r["state_type"] == "COMPLETED" for r in runs), [(r["name"], r["state_type"]) for r in runs]
    names = {r["name"].split("-")[0] for r in runs}
    assert {"execute", "evaluate"} <= names and names & {"generate", "recall", "ask"}, names


def test_compose_file_validates():
    assert shutil.which("docker-compose"), "scripts/setup.sh docker installs Debian's docker-compose"
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(["docker-compose", "-f", str(root / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_compose_server_has_the_embedded_server_s_tuning():
    import yaml

    from audioprobe.prefect_server import SERVER_TUNING

    root = Path(__file__).resolve().parent.parent
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    server_env = compose["services"]["prefect-server"]["environment"]
    assert {k: server_env.get(k) for k in SERVER_TUNING} == SERVER_TUNING


def test_embedded_server_tuning_yields_to_the_environment():
    from audioprobe.prefect_server import server_environment

    env = server_environment({"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1", "HOME": "/root"})
    assert env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] == "1"
    assert env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE"] == "50"
    assert env["HOME"] == "/root"


def cli_args(cli) -> list[str]:
    return [sys.executable, "-m", "audioprobe"]


def test_local_dask_workers_run_without_the_profiler():
    """The local cluster's workers do not sample their threads (flows/runners.local_cluster_address): in
    CPython 3.11 the profiler's sys._current_frames() and a thread start can wait on each other for good."""
    from distributed import Client

    from flows import runners

    address = runners.local_cluster_address()
    try:
        assert runners.local_cluster_address() == address, "one cluster per process"
        with Client(address) as client:
            import dask

            enabled = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
            assert enabled and not any(enabled.values()), enabled
    finally:
        runners.close_local_cluster()
