"""Outages against real processes: a model endpoint that refuses connections, the real llama.cpp server
killed with SIGSEGV, the Prefect server killed mid-run. Each asserts the classification, the exit code,
the one-line message, and that a rerun resumes only what was left once the part is back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tasks.runs import EXIT_INCOMPLETE, EXIT_ORCHESTRATION_LOST
from tests.fixtures_flows import wait_for
from tests.fixtures_llm import free_port

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.llm, pytest.mark.judges]

SPEECH = ("run", "--tier", "speech", "--limit", "3")


def outcomes_of(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "outcomes").glob("*.json"))}


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def run_dirs(data_dir: Path) -> set[Path]:
    return set((data_dir / "runs").glob("*")) if (data_dir / "runs").exists() else set()


class Forwarder(threading.Thread):
    """A TCP forwarder from `port` to the real LLM server: the endpoint 'comes back' on the same address."""

    def __init__(self, port: int, target: int):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.target = target

    def run(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_unreachable_model_is_named_quickly_and_resumes_when_back(cli, local_server):
    port = free_port()
    model = "openai/qwen2.5-coder-0.5b"
    env = cli.env | {
        "AUDIOPROBE_MODELS": json.dumps({model: {"api_base": f"http://127.0.0.1:{port}/v1", "max_tokens": 200,
                                                 "max_retries": 1}}),
        "AUDIOPROBE_BREAKER_THRESHOLD": "2",
        "AUDIOPROBE_TASK_WORKERS": "2",  # one generation at a time: items fail in a known order
    }
    command = [sys.executable, "-m", "audioprobe", *SPEECH, "--model", model, "--new"]
    t0 = time.monotonic()
    down = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    assert down.returncode == EXIT_INCOMPLETE, down.stderr[-3000:]
    line = last_line(down.stderr)
    assert line.startswith("audioprobe: run ") and "incomplete" in line
    assert model in line and f"connection refused at http://127.0.0.1:{port}/v1" in line
    assert "Docker" not in line and "infra" not in line
    assert "resume: audioprobe run --tier speech --limit 3 --model" in line and "--new" not in line
    print(f"unreachable model: exit {down.returncode} after {took:.1f} s")

    run_dir = Path(cli.last_json(down)["run_dir"])
    failures = [o["failure"] for o in outcomes_of(run_dir).values()]
    assert len(failures) == 3 and set(failures) <= {"llm_error", "not_attempted"} and "not_attempted" in failures
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["finished"] is None and "connection refused" in manifest["incomplete"]
    report = (run_dir / "report" / "index.html").read_text()
    assert "id=incomplete" in report and "connection refused" in report
    flows = cli.api("/flow_runs/filter", {"flow_runs": {"name": {"like_": f"speech-{model}"}}, "limit": 20})
    assert flows and all(f["state_type"] == "FAILED" for f in flows)
    assert all("connection refused" in f["state"]["message"] for f in flows)

    forwarder = Forwarder(port, local_server.port)  # the endpoint is back, at the same address
    forwarder.start()
    try:
        back = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=900)
    finally:
        forwarder.close()
    assert back.returncode == 0, back.stderr[-3000:]
    assert cli.last_json(back)["run_id"] == run_dir.name, "the same command resumes the unfinished run"
    after = outcomes_of(run_dir)
    assert len(after) == 3 and all(o["failure"] not in ("llm_error", "not_attempted") for o in after.values())
    assert json.loads((run_dir / "run.json").read_text())["finished"]


def _llama_pids(port: int) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"llama_cpp.server .*--port {port}"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _responses(data_dir: Path) -> int:
    return sum(1 for _ in (data_dir / "responses").rglob("*.json"))


def test_llama_server_killed_mid_run_restarts_once_then_is_named(cli, tmp_path):
    """The run's own server: killed once, it is restarted and the run goes on; killed again, the model is
    unavailable for the rest of the run, named with the signal and the log."""
    port = free_port()
    env = cli.env | {"AUDIOPROBE_LOCAL_PORT": str(port), "AUDIOPROBE_DATA_DIR": str(tmp_path / "data"),
                     "AUDIOPROBE_MODELS": json.dumps({"local": {"max_tokens": 120, "max_retries": 1}})}
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "audioprobe", "run", "--tier", "notes", "--limit", "6", "--model", "local"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        first = wait_for(lambda: _responses(data_dir) >= 1 and _llama_pids(port), 600, "a first answer")
        os.kill(first[0], signal.SIGSEGV)
        # the restarted server answers (the run goes on), then dies too
        second = wait_for(lambda: _responses(data_dir) >= 2 and [p for p in _llama_pids(port) if p not in first],
                          300, "an answer from the restarted server")
        os.kill(second[0], signal.SIGSEGV)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INCOMPLETE, err[-3000:]
    assert "died with SIGSEGV" in err and "restarting it once" in " ".join(err.split()), "the restart is announced"
    line = last_line(err)
    assert "model 'local' unavailable: llama.cpp server died with SIGSEGV" in line and "log: " in line
    assert "Docker" not in line
    run_dir = Path(json.loads(out.strip().splitlines()[-1])["run_dir"])
    outcomes = outcomes_of(run_dir).values()
    kinds = {o["generation"]["error_kind"] for o in outcomes if o["failure"] in ("llm_error", "not_attempted")}
    assert kinds and kinds <= {"server_died", "not_attempted", "unreachable"}
    answered = [o for o in outcomes if o["generation"] and o["generation"]["raw_text"]]
    assert len(answered) >= 2, "items before and after the restart were answered and recorded"
    assert not [o for o in outcomes if o["failure"] == "infrastructure"]
    assert not _llama_pids(port), "no server is left behind"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["run_id"] == run_dir.name
    assert all(o["failure"] not in ("llm_error", "not_attempted") for o in outcomes_of(run_dir).values())


def _start_prefect(env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "audioprobe", "server", "start"], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["api_url"]


def _kill_prefect(port: int) -> None:
    subprocess.run(["pkill", "-9", "-f", f"prefect server start --host 127.0.0.1 --port {port}"], check=False)


def _first_outcome(data_dir: Path, earlier: set[Path]):
    return next((p for p in (data_dir / "runs").glob("*/outcomes/*.json") if p.parent.parent not in earlier), None)


def _break_mid_run(data_dir: Path, command: list[str], env: dict, break_it):
    """Start `command`, call `break_it()` once its first record is on disk, wait for the run to stop:
    (process, its stderr, seconds from the break to its exit, that first record)."""
    earlier = run_dirs(data_dir)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        record = wait_for(lambda: _first_outcome(data_dir, earlier), 600, "a first outcome")
        break_it()
        broken_at = time.monotonic()
        _, err = proc.communicate(timeout=300)
        return proc, err, time.monotonic() - broken_at, record
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_external_prefect_server_lost_stops_at_once_and_keeps_records(cli, tmp_path):
    port = free_port()
    server_env = {**os.environ, "AUDIOPROBE_DATA_DIR": str(tmp_path / "server"),
                  "AUDIOPROBE_PREFECT_PORT": str(port)}
    server_env.pop("PREFECT_API_URL", None)
    api_url = _start_prefect(server_env)
    env = cli.env | {"AUDIOPROBE_PREFECT_API_URL": api_url, "AUDIOPROBE_PREFECT_PORT": str(port)}
    command = [sys.executable, "-m", "audioprobe", "run", "--tier", "notes", "--limit", "4", "--model", "local",
               "--new"]
    try:
        proc, err, took, record = _break_mid_run(cli.data_dir, command, env, lambda: _kill_prefect(port))
    finally:
        _kill_prefect(port)
    assert proc.returncode == EXIT_ORCHESTRATION_LOST, err[-3000:]
    line = last_line(err)
    assert f"the Prefect server at {api_url}: it stopped answering" in line and "resume: audioprobe run" in line
    assert line.count("the Prefect server at") == 1, "the cause is said once"
    assert took < 90, f"stopped {took:.0f} s after the server died"
    run_dir = record.parent.parent
    kept = outcomes_of(run_dir)
    assert kept and all(o["failure"] != "infrastructure" for o in kept.values()), "finished items are recorded"
    assert json.loads((run_dir / "run.json").read_text())["finished"] is None

    _start_prefect(server_env)  # back: the same command without --new resumes the run
    try:
        again = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout.strip().splitlines()[-1])["run_id"] == run_dir.name
        for key, outcome in kept.items():
            assert outcomes_of(run_dir)[key] == outcome, "finished items are kept as they were"
        crashed = cli_api(api_url, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}})
        assert not crashed, "no flow run of the killed client stays Running"
    finally:
        _kill_prefect(port)


def test_a_server_whose_database_is_gone_stops_the_run_with_one_line(cli, tmp_path):
    """A Prefect server on PostgreSQL keeps answering /health when its database goes, and 503s every
    other call: the run must not wait on those retries for good (a paper-size bench hung so)."""
    import asyncio

    from tests.bench import bench_pg

    port = free_port()
    server, api_url = bench_pg.start(port, tmp_path / "prefect-pg")
    env = cli.env | {"AUDIOPROBE_PREFECT_API_URL": api_url, "AUDIOPROBE_PREFECT_PORT": str(port)}
    command = [sys.executable, "-m", "audioprobe", "run", "--tier", "notes", "--limit", "4", "--model", "local",
               "--seed", "23", "--new"]  # items and asks of their own: no stored answer ends the run first
    def drop() -> None:
        asyncio.run(bench_pg._sql(f"DROP DATABASE {bench_pg.database(port)} WITH (FORCE)"))

    try:
        proc, err, took, record = _break_mid_run(cli.data_dir, command, env, drop)
    finally:
        bench_pg.stop(server, port)
    assert proc.returncode == EXIT_ORCHESTRATION_LOST, err[-3000:]
    line = last_line(err)
    assert f"the Prefect server at {api_url}: its database does not answer (GET /ready: 503)" in line, line
    assert "resume: audioprobe run" in line and "Traceback" not in err and line.count("/ready") == 1
    assert took < 90, f"stopped {took:.0f} s after the database was dropped"
    assert outcomes_of(record.parent.parent), "finished items are recorded"



def test_embedded_prefect_server_killed_is_restarted_and_the_run_goes_on(cli, tmp_path):
    port = free_port()
    env = {k: v for k, v in cli.env.items() if k != "AUDIOPROBE_PREFECT_API_URL"}
    env |= {"AUDIOPROBE_PREFECT_PORT": str(port), "AUDIOPROBE_DATA_DIR": str(tmp_path / "data")}
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if (cli.data_dir / "responses").exists():  # the module's paid answers: the point here is the server
        subprocess.run(["cp", "-a", str(cli.data_dir / "responses"), str(data_dir / "responses")], check=True)
    command = [sys.executable, "-m", "audioprobe", "run", "--tier", "notes", "--limit", "4", "--model", "local"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_for(lambda: _first_outcome(data_dir, set()), 600, "a first outcome")
        _kill_prefect(port)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_prefect(port)
    assert proc.returncode == 0, err[-3000:]
    assert "embedded Prefect server" in err and "restarting it" in err
    run_dir = Path(json.loads(out.strip().splitlines()[-1])["run_dir"])
    assert len(outcomes_of(run_dir)) == 4


def cli_api(api_url: str, path: str, body: dict):
    import urllib.request

    request = urllib.request.Request(api_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)
