"""The paper-size bench's parts (issue 23): the dataset builder at a small fraction read by the real
loaders, its full plan against the loader's paper-structure check, and the simulated hosted model
answering, counting and rate-limiting through the real litellm client."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.bench import paper_dataset, sim_llm


def _note(label: str, i: int):
    from tasks.probesets.nsynth import Note

    family, source = label.rsplit("_", 1)
    return Note(f"{label}-{i}", family, source, 60, 100, [], Path("x.wav"), table=None)


def test_full_plan_holds_the_papers_nsynth_structure():
    from tasks.probesets.common import DatasetError
    from tasks.probesets.nsynth import check_paper_structure

    plan = paper_dataset.note_plan(1.0)
    notes = [_note(label, i) for label, (want, _) in plan.items() for i in range(want)]
    assert len(notes) == 4096
    check_paper_structure(notes, "test")  # raises when the 16 classes are not 12 x 110 + 92 + 30 + 28 + 30
    notes = [n for n in notes if n.label != "vocal_synthetic"]
    notes += [_note("bass_electronic", 1000 + i) for i in range(28)]
    with pytest.raises(DatasetError):
        check_paper_structure(notes, "test")


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paper") / "tree"
    info = paper_dataset.build(out, fraction=0.01, jobs=2)
    assert not info["cached"]
    assert paper_dataset.build(out, fraction=0.01)["cached"]  # the same key: left alone
    return out


def test_build_is_deterministic(small_tree, tmp_path):
    import hashlib

    again = tmp_path / "again"
    paper_dataset.build(again, fraction=0.01)

    def digests(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != paper_dataset.BUILD
        }

    assert digests(again) == digests(small_tree)


def test_fraction_tree_reads_as_real_data(small_tree):
    from tasks.probesets.loaders import load_items

    notes, skipped = load_items("notes", small_tree / "nsynth")
    plan = paper_dataset.note_plan(0.01)
    assert not skipped and len(notes) == sum(want for want, _ in plan.values()) == 12 * 2 + 4
    assert {i.dataset for i in notes} == {"nsynth"} and not any(i.reference_clips for i in notes)
    assert len({i.label for i in notes}) == 16
    env, skipped = load_items("environmental", small_tree / "fsd50k")
    assert not skipped and len(env) == 5 and all(len(i.references) >= 3 for i in env)
    speech, skipped = load_items("speech", small_tree / "speech_commands")
    assert len(speech) == 1 and len(speech[0].references) >= 5
    assert all(s.reason.startswith("no folder") for s in skipped) and len(skipped) == 34
    from tests.bench.paper_bench import expected_items

    assert expected_items(small_tree) == (28 + 5 * 2 + 1) * 3  # what the bench counts lost records against
    assert not list(small_tree.rglob("refs_manifest.json"))  # else the loaders would call it an offline set
    kinds = (small_tree / "fsd50k" / "PROVENANCE.csv").read_text()
    assert "recording" in kinds or "synthesised" in kinds


def _post(url: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_sim_answers_counts_and_rate_limits():
    sim = sim_llm.Sim(latency=0.01, jitter=0.5, rate_limit=1.0, retry_after=0.3)
    server = sim_llm.serve(sim)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/v1/models", timeout=5) as r:
            assert {m["id"] for m in json.loads(r.read())["data"]} == {"sim-strong", "sim-weak"}
        ask = {
            "model": "sim-strong",
            "messages": [{"role": "user", "content": "pitch - 60 amplitude - 0.5 named n.WAV"}],
            "seed": 0,
        }
        status, headers, _ = _post(base + "/v1/chat/completions", ask)
        assert status == 429 and float(headers["Retry-After"]) == 0.3
        assert _post(base + "/v1/chat/completions", ask)[0] == 429  # too early: Retry-After not honoured
        time.sleep(0.35)
        status, _, body = _post(base + "/v1/chat/completions", ask)
        assert status == 200 and body["choices"][0]["finish_reason"] in ("stop", "length")
        assert _post(base + "/v1/chat/completions", ask)[0] == 200
        assert _post(base + "/v1/chat/completions", ask | {"model": "gpt-x"})[0] == 404
        with urllib.request.urlopen(base + "/stats", timeout=5) as r:
            stats = json.loads(r.read())
        assert (stats["requests"], stats["rate_limited"], stats["early_retries"]) == (
            4,
            2,
            1,
        )  # the unknown model is not counted
        assert (stats["answered"], stats["repeated"]) == (2, 1)
    finally:
        server.shutdown()


def test_sim_mix_shares_and_correct_programs():
    import hashlib

    from tasks import pipeline
    from tasks.generation.baseline import program_for
    from tasks.probesets.loaders import load_items

    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000)]
    for model, want in (("sim-strong", 0.70), ("sim-weak", 0.25)):
        share = sum(sim_llm.kind_of(model, k) == "correct" for k in keys) / len(keys)
        assert abs(share - want) < 0.015, (model, share)
    items, _ = load_items("notes", limit=2)  # the offline refs: the prompt text is what matters here
    prompt = pipeline.render_prompt(items[0], "paper")
    text, finish = sim_llm.answer("correct", prompt.text, keys[0])
    asked = items[0].model_copy(update={"amplitude": round(items[0].amplitude, 3)})  # as the prompt says it
    assert finish == "stop" and program_for(asked, prompt.output_name) in text
    text, finish = sim_llm.answer("truncated", prompt.text, keys[0])
    assert finish == "length" and "writeframes" not in text and text.count("```") == 1
    env, _ = load_items("environmental", limit=1)
    for method in ("detailed", "detailed_description"):
        assert sim_llm.item_of(pipeline.render_prompt(env[0], method).text)[0].label == env[0].display_name
    word, _ = load_items("speech", limit=1)
    assert sim_llm.item_of(pipeline.render_prompt(word[0], "paper").text)[0].label == word[0].label


def test_real_client_retries_429s_and_asks_each_prompt_once(tmp_path):
    """litellm through tasks.generation.llm: every 429 is retried, each ask answered once, and stored."""
    from audioprobe.settings import ModelSettings, Settings
    from tasks import pipeline
    from tasks.generation import llm
    from tasks.probesets.loaders import load_items

    # Retry-After longer than the client's first backoff (at most 1 s): a client that ignores it asks early.
    sim = sim_llm.Sim(latency=0.01, jitter=0.5, rate_limit=0.5, retry_after=1.2)
    server = sim_llm.serve(sim)
    api = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings = Settings(
        data_dir=tmp_path, models={"openai/sim-weak": ModelSettings(api_base=api, max_retries=6)}
    )
    try:
        items, _ = load_items("notes", limit=6)
        prompts = [pipeline.render_prompt(i, "paper") for i in items]
        gens = [llm.generate(p, "openai/sim-weak", 0, settings=settings) for p in prompts]
        again = [llm.generate(p, "openai/sim-weak", 0, settings=settings) for p in prompts]
    finally:
        server.shutdown()
    stats = sim.snapshot()
    assert all(g.error_kind is None for g in gens) and all(g.cached for g in again)
    assert stats["answered"] == 6 and stats["repeated"] == 0 and stats["rate_limited"] >= 1
    assert stats["requests"] == 6 + stats["rate_limited"]
    assert stats["early_retries"] == 0, "every retry waited for the provider's Retry-After"
    assert {g.finish_reason for g in gens} <= {"stop", "length"}


def _cli_env(data: Path, prefect_server: str, sims: dict[str, str]) -> dict[str, str]:
    """`audioprobe run`'s environment against simulated models (model -> the sim's base URL), on threads."""
    import os

    from tests.fixtures_flows import PREFECT_TEST_PORT

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "AUDIOPROBE_DATA_DIR": str(data),
        "AUDIOPROBE_PREFECT_API_URL": prefect_server,
        "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT),
        "AUDIOPROBE_MODELS": json.dumps({m: {"api_base": base + "/v1"} for m, base in sims.items()}),
        "AUDIOPROBE_DESCRIBER_MODEL": "",  # the ontology's descriptions: no local LLM here
        "AUDIOPROBE_TASK_RUNNER": "threads",
    }


@pytest.mark.prefect
@pytest.mark.docker
@pytest.mark.judges
def test_a_killed_client_resumes_without_loss_or_repeat(small_tree, prefect_server, tmp_path):
    """SIGKILL `audioprobe run` at half its records, resume with the same command: every final record
    is kept as it was, no ask is answered twice, and no flow run of the killed client stays Running."""
    import sys

    from tests.bench import faults

    sim = sim_llm.Sim(latency=0.01, jitter=0.5, rate_limit=0.2, retry_after=0.3)
    server = sim_llm.serve(sim)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    data = tmp_path / "data"
    env = _cli_env(data, prefect_server, {"openai/sim-weak": base}) | {"PYTHONUNBUFFERED": "1"}
    # The environmental tier: the notes tier ends in a FAD bootstrap of minutes per model, paid again on resume.
    command = [
        sys.executable,
        "-m",
        "audioprobe",
        "run",
        "--dataset-root",
        str(small_tree),
        "--tier",
        "environmental",
        "--model",
        "openai/sim-weak",
        "--model",
        "baseline/template",
        "--new",
    ]
    expected = 5 * 2 * 2  # classes x methods x models

    def run_dir():
        found = sorted((data / "runs").glob("*/run.json"))
        return found[-1].parent if found else None

    try:
        with open(tmp_path / "run.log", "w") as log:
            done, (fault,), summary = faults.run_with_faults(
                command,
                env,
                Path(__file__).resolve().parents[1],
                run_dir,
                expected,
                [faults.Fault("client", 0.5)],
                prefect_server,
                base + "/stats",
                log,
                server_pid=lambda: None,
                restart_server=None,
            )
    finally:
        server.shutdown()
    why = f"{summary}; {fault.line()}\n{(tmp_path / 'run.log').read_text()[-3000:]}"
    assert fault.at_s is not None and done.returncode == 0, why
    assert 0 < len(fault.before) < expected and fault.after == expected, why
    assert fault.lost == [] and fault.repeated == 0 and sim.snapshot()["repeated"] == 0, why
    assert fault.running == 0, why  # the resumed client marked the killed one's flow runs Crashed
    assert summary.startswith("2 starts, exits [-9, 0]"), why


def test_runs_lists_twenty_runs_without_importing_prefect(tmp_path):
    """`audioprobe runs` with 20 runs on disk: each listed with its record count, and prefect (1-5 s of
    imports on this machine) left out of a command that only reads run directories and their locks."""
    import os
    import subprocess
    import sys

    from audioprobe.schema import RunManifest
    from tests.bench.paper_bench import make_run_copies

    run_dir = tmp_path / "runs" / "20261206-000000-abcdef"
    (run_dir / "outcomes").mkdir(parents=True)
    manifest = RunManifest(
        run_id=run_dir.name,
        created="2026-12-06T00:00:00+00:00",
        config_hash="abcdef0123",
        models=["baseline/template"],
        tiers=["notes"],
        methods={"notes": ["paper"]},
    )
    (run_dir / "run.json").write_text(manifest.model_dump_json())
    for i in range(156):
        (run_dir / "outcomes" / f"baseline-template__paper__n{i}__0.json").write_text("{}")
    (run_dir / "outcomes" / "baseline-template__paper__n0__0__r1.json").write_text("{}")  # a repair round
    assert make_run_copies(run_dir, 19) == 19
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "AUDIOPROBE_DATA_DIR": str(tmp_path)
    }
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "audioprobe", "runs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len({r["run_id"] for r in listed}) == 20
    assert all(r["outcomes"] == 156 and r["status"] == "incomplete" for r in listed)
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line]
    assert "prefect" not in imported, "audioprobe runs imports prefect"


@pytest.mark.prefect
def test_slots_of_dead_clients_are_released_when_no_live_client_runs(prefect_server, tmp_path):
    """The server-kill fault: a client killed with its server keeps its global-limit slots counted (the
    restarted server lost their leases). A client's start (flows/orphans) crashes the dead client's flow
    run and zeroes the slots, but not while a live client's flow run could hold them."""
    import os
    import socket
    import subprocess
    import sys

    from tests.fixtures_flows import Cli

    cli = Cli(
        {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        | {"AUDIOPROBE_DATA_DIR": str(tmp_path), "AUDIOPROBE_PREFECT_API_URL": prefect_server}
    )
    name = f"audioprobe-test-leak-{os.getpid()}"
    cli.api("/v2/concurrency_limits/", {"name": name, "limit": 2})
    cli.api("/v2/concurrency_limits/increment", {"names": [name], "slots": 2, "mode": "concurrency"})
    flow = cli.api("/flows/", {"name": "leak-test"})
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()

    def flow_run(pid: int) -> str:
        return cli.api(
            "/flow_runs/",
            {
                "flow_id": flow["id"],
                "name": f"leak-{pid}",
                "state": {"type": "RUNNING"},
                "tags": [f"audioprobe-client:{host}:{pid}"],
            },
        )["id"]

    def client_starts() -> int:
        code = (
            "from audioprobe.prefect_server import ensure_server; ensure_server(); "
            "from flows.orphans import crash_orphaned_flow_runs; crash_orphaned_flow_runs()"
        )
        subprocess.run(
            [sys.executable, "-c", code], env=cli.env, check=True, timeout=120, capture_output=True
        )
        return cli.api(f"/v2/concurrency_limits/{name}")["active_slots"]

    orphan, live = flow_run(dead.pid), flow_run(os.getpid())
    assert client_starts() == 2, "a live client's flow run is Running: its slots may be held"
    assert cli.api(f"/flow_runs/{orphan}")["state_type"] == "CRASHED"
    cli.api(f"/flow_runs/{live}/set_state", {"state": {"type": "COMPLETED"}, "force": True})
    assert client_starts() == 0, "no live client: the leaked slots are released"


@pytest.mark.prefect
@pytest.mark.docker
@pytest.mark.judges
def test_models_run_side_by_side_as_sub_flows_in_reused_sandboxes(small_tree, prefect_server, tmp_path):
    """Two models' tier sub-flows overlap in time (flows/benchmark.side_by_side), each recorded as a
    sub-flow of the one benchmark flow run; with AUDIOPROBE_SANDBOX_REUSE the engine creates fewer
    sandbox containers than there were programs."""
    import subprocess
    import sys
    from datetime import datetime, timezone

    from sandbox.engine import connect

    # Answers slow enough that the model's chain of sub-flows lasts ~10 s: on the embedded SQLite server
    # two flow runs created at once can meet "database is locked", which Prefect's client retries 2-6 s later.
    sim = sim_llm.Sim(latency=1.5, jitter=0.2, rate_limit=0.0, retry_after=0.3)
    server = sim_llm.serve(sim)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    data = tmp_path / "data"
    env = _cli_env(data, prefect_server, {"openai/sim-strong": base}) | {"AUDIOPROBE_SANDBOX_REUSE": "10"}
    since = datetime.now(timezone.utc)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "audioprobe", "run", "--dataset-root", str(small_tree), "--tier", "environmental",
             "--model", "openai/sim-strong", "--model", "baseline/template", "--new"],
            env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        server.shutdown()
    until = datetime.now(timezone.utc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = json.loads(proc.stdout.strip().splitlines()[-1])["run_id"]

    def api(path: str, body: dict) -> list[dict]:
        req = urllib.request.Request(
            prefect_server + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    (parent,) = api("/flow_runs/filter", {"flow_runs": {"name": {"any_": [f"benchmark-{run_id}"]}}})
    children = api("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent["id"]]}}})
    spans: dict[str, list[tuple[str, str]]] = {}
    for child in children:
        spans.setdefault(child["name"].split("-", 1)[1].rsplit("-", 1)[0], []).append(
            (child["start_time"], child["end_time"])
        )
    assert set(spans) == {"openai/sim-strong", "baseline/template"}, [c["name"] for c in children]
    assert all(len(s) == 2 for s in spans.values()), spans  # environmental's two methods, each a sub-flow
    chains = [(min(a for a, _ in s), max(b for _, b in s)) for s in spans.values()]
    assert max(start for start, _ in chains) < min(end for _, end in chains), f"one after another: {spans}"

    outcomes = [json.loads(p.read_text()) for p in (data / "runs" / run_id / "outcomes").glob("*.json")]
    executed = sum(1 for o in outcomes if o.get("execution"))
    events = connect().events(
        since=since, until=until, filters={"event": "create", "label": "audioprobe.sandbox"}, decode=True
    )
    created = sum(1 for _ in events)
    assert executed >= 15 and created < executed, f"{created} containers for {executed} programs"
