"""Faults during one paper-bench run (issue 23): SIGKILL a Dask worker, the Prefect server and the
client (`audioprobe run`) once each, at a share of the expected records, and resume with the same
command (without --new) after each kill that ends the client.

What each kill is checked for, after the final resume:
- lost: records that were final (tasks.taxonomy.is_final) just before the kill and are now missing or
  changed (a non-final record, e.g. `not_attempted`, is redone by design);
- repeated: the simulated models' `repeated` count (the same ask answered twice) from the kill to the
  next kill or the end;
- running: flow runs tagged with the client that was running at the kill (flows/orphans.client_tag)
  still Running or Pending in the Prefect API.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("worker", "server", "client")
ACTIVE = ["RUNNING", "PENDING"]


@dataclass
class Fault:
    kind: str
    share: float  # of the expected records, when to kill
    at_s: float | None = None  # seconds after the first start
    client_pid: int | None = None
    before: dict[str, str] = field(default_factory=dict)  # final record -> digest, just before the kill
    repeated_at: int = 0
    after: int = 0
    lost: list[str] = field(default_factory=list)
    repeated: int = 0
    running: int = 0
    note: str = ""

    def line(self) -> str:
        if self.at_s is None:
            return f"{self.kind}: not killed ({self.note or 'the run ended first'})"
        return (
            f"{self.kind} at {self.at_s:.0f} s ({self.share:.0%}): records {len(self.before)} final before, "
            f"{self.after} after, lost {len(self.lost)}, repeated {self.repeated}, flow runs left Running "
            f"{self.running}" + (f"; {self.note}" if self.note else "")
        )


def final_records(run_dir: Path) -> dict[str, str]:
    """Each final record's file name -> the digest of its bytes."""
    from audioprobe.schema import ItemOutcome
    from tasks.taxonomy import is_final

    found = {}
    for path in (run_dir / "outcomes").glob("*.json"):
        try:
            data = path.read_bytes()
            if is_final(ItemOutcome.model_validate_json(data)):
                found[path.name] = hashlib.sha256(data).hexdigest()
        except (OSError, ValueError):
            continue  # written right now (atomic_write renames, so only a vanished file lands here)
    return found


def broken_generations(run_dir: Path) -> list[str]:
    """Records of items whose generate task itself failed (flows/probe._salvage: `llm_error` with no
    answer), e.g. when its task could not reach the Prefect server: not final (tasks/taxonomy.is_final),
    so one left after the last resume is an item the resumes did not redo."""
    found = []
    for path in (run_dir / "outcomes").glob("*.json"):
        data = json.loads(path.read_text())
        if data.get("failure") == "llm_error" and not data.get("generation"):
            found.append(path.name)
    return sorted(found)


def lost_answers(run_dir: Path) -> list[str]:
    """Records of asks sent by a process that was killed before the answer came (`answer_lost`, kept
    final: tasks/generation/store.py): the price of a kill mid-request, paid in items, not in requests."""
    found = []
    for path in (run_dir / "outcomes").glob("*.json"):
        generation = json.loads(path.read_text()).get("generation") or {}
        if generation.get("error_kind") == "answer_lost":
            found.append(path.name)
    return sorted(found)


def record_count(run_dir: Path) -> int:
    return sum(1 for p in (run_dir / "outcomes").glob("*.json") if "__r" not in p.stem)


def active_flow_runs(api_url: str, tag: str | None = None) -> int:
    from tests.bench.paper_bench import get_json

    body: dict = {"flow_runs": {"state": {"type": {"any_": ACTIVE}}}, "limit": 200}
    if tag:
        body["flow_runs"]["tags"] = {"all_": [tag]}
    return len(get_json(api_url + "/flow_runs/filter", body))


def _kill_worker(client_pid: int) -> str:
    """SIGKILL one Dask worker process of the client's local cluster (its nanny, in the client, restarts it)."""
    import psutil

    for child in psutil.Process(client_pid).children(recursive=True):
        cmd = " ".join(child.cmdline())
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            child.send_signal(signal.SIGKILL)
            return f"pid {child.pid}"
    raise RuntimeError("no Dask worker process under the client: is --runner dask set?")


def _kill_server(port: str, server_pid: int | None) -> str:
    """SIGKILL the Prefect server's process group (it runs in its own session)."""
    import psutil

    if server_pid is None:
        marker = f"prefect server start --host 127.0.0.1 --port {port}"
        server_pid = next(
            p.pid for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
        )
    os.killpg(os.getpgid(server_pid), signal.SIGKILL)
    return f"pid {server_pid}"


def run_with_faults(
    command: list[str],
    env: dict,
    cwd: Path,
    run_dir_of: Callable[[], Path | None],
    expected: int,
    faults: list[Fault],
    api_url: str,
    stats_url: str,
    log,
    server_pid: Callable[[], int | None],
    restart_server: Callable[[], None] | None,
    on_start: Callable[[int], None] = lambda pid: None,
    max_starts: int = 8,
) -> tuple[subprocess.CompletedProcess, list[Fault], str]:
    """Run `command`, kill as `faults` ask, resume until it exits 0 or 3 with every fault done.
    `restart_server`: how the bench brings a killed server back (None: the client's watchdog does)."""
    from tests.bench.paper_bench import get_json

    resume = [a for a in command if a != "--new"]
    port = api_url.rsplit(":", 1)[1].split("/")[0]
    host = socket.gethostname()
    t0 = time.monotonic()
    faults = sorted(faults, key=lambda f: f.share)
    pending = list(faults)
    starts, out = 1, ""
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True)
    on_start(proc.pid)
    exits = []
    while True:
        run_dir = run_dir_of()
        if (
            pending
            and run_dir is not None
            and proc.poll() is None
            and record_count(run_dir) >= pending[0].share * expected
        ):
            fault = pending.pop(0)
            fault.before = final_records(run_dir)
            fault.repeated_at = get_json(stats_url)["repeated"]
            fault.at_s, fault.client_pid = time.monotonic() - t0, proc.pid
            if fault.kind == "worker":
                fault.note = f"worker {_kill_worker(proc.pid)} killed; the client carried on"
            elif fault.kind == "server":
                killed = _kill_server(port, server_pid())
                if restart_server is not None:
                    t1 = time.monotonic()
                    restart_server()
                    fault.note = (
                        f"server {killed} killed; the bench restarted it on the same database in "
                        f"{time.monotonic() - t1:.0f} s"
                    )
                else:
                    fault.note = f"server {killed} killed; the client's watchdog restarts the embedded one"
            else:
                proc.send_signal(signal.SIGKILL)
                fault.note = f"client pid {proc.pid} killed"
            print(
                f"fault: {fault.kind} killed at {fault.at_s:.0f} s, {record_count(run_dir)} records",
                file=log,
                flush=True,
            )
        if proc.poll() is not None:
            out += proc.stdout.read()
            exits.append(proc.returncode)
            # exit 0: the run is finished, and the same command would start a new one
            if proc.returncode == 0 or (proc.returncode == 3 and not pending) or starts >= max_starts:
                break
            if proc.returncode not in (0, 3, 4, -signal.SIGKILL):
                break  # a failure the faults do not explain: stop and let the caller report it
            starts += 1
            print(f"fault: resuming (start {starts}) after exit {proc.returncode}", file=log, flush=True)
            proc = subprocess.Popen(resume, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True)
            on_start(proc.pid)
            continue
        time.sleep(0.5)
    run_dir = run_dir_of()
    now = final_records(run_dir) if run_dir else {}
    marks = [f.repeated_at for f in faults if f.at_s is not None] + [get_json(stats_url)["repeated"]]
    for i, fault in enumerate(f for f in faults if f.at_s is not None):
        fault.after = len(now)
        fault.lost = sorted(k for k, digest in fault.before.items() if now.get(k) != digest)
        fault.repeated = marks[i + 1] - marks[i]
        fault.running = active_flow_runs(api_url, f"audioprobe-client:{host}:{fault.client_pid}")
    done = subprocess.CompletedProcess(command, proc.returncode, out, "")
    summary = (
        f"{starts} starts, exits {exits}; flow runs Running or Pending at the end: "
        f"{active_flow_runs(api_url)}; records of a broken generate task left after the last resume "
        f"(llm_error with no answer, which a resume asks again): {len(broken_generations(run_dir)) if run_dir else 0}; answers lost to a kill "
        f"mid-request (answer_lost, not asked again): {len(lost_answers(run_dir)) if run_dir else 0}"
    )
    return done, faults, summary
