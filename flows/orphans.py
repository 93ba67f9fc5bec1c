"""Flow runs whose client is gone: each `audioprobe run` tags its flow runs with its host and pid, holds
a lock on the run directory, and, when it starts, marks Crashed every Running flow run whose client
process no longer exists (killed, rebooted, or cut off from a server that was restarted)."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from contextlib import contextmanager

from audioprobe.cli import UserError
from audioprobe.processes import pid_alive

TAG_PREFIX = "audioprobe-client:"


def client_tag() -> str:
    return f"{TAG_PREFIX}{socket.gethostname()}:{os.getpid()}"


def _orphaned(tags: list[str]) -> int | None:
    """The dead client pid named by a flow run's tags, when it ran on this host; else None."""
    host = socket.gethostname()
    for tag in tags:
        if tag.startswith(f"{TAG_PREFIX}{host}:"):
            pid = int(tag.rsplit(":", 1)[1])
            return pid if pid != os.getpid() and not pid_alive(pid) else None
    return None


def crash_orphaned_flow_runs(limit: int = 200) -> int:
    """Mark Crashed the Running/Pending flow runs of dead clients on this host; return how many. When no
    live client's flow run is left, release the global-limit slots still counted (_release_leaked_slots)."""
    # Imported here: `audioprobe runs` needs only the lock below, and importing prefect takes 1-5 s.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    marked = 0
    try:
        with get_client(sync_client=True) as client:
            active = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))),
                limit=limit)
            for flow_run in active:
                pid = _orphaned(flow_run.tags or [])
                if pid is None:
                    continue
                client.set_flow_run_state(
                    flow_run.id, Crashed(message=f"its client process (pid {pid}) is gone; the run resumes "
                                                 "from its recorded items"), force=True)
                marked += 1
            if not any(_orphaned(r.tags or []) is None for r in active):
                _release_leaked_slots(client)
    except Exception as exc:  # noqa: BLE001 - tidying the UI must never stop a run
        print(f"audioprobe: could not check for orphaned flow runs: {type(exc).__name__}: {exc}"[:300],
              file=sys.stderr)
    return marked


def _release_leaked_slots(client) -> None:
    """With no live client's flow run left, no one holds a slot of the project's global limits
    (tasks/limits.py): zero the ones still counted. A holder killed while its server was down leaves its
    slots counted for good (the server keeps slot leases in memory, so a restarted one never expires
    them), and the limit shrinks by as much; at `audioprobe-sandbox`'s 2, two such slots stop every run."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    for limit in client.read_global_concurrency_limits(limit=200):
        if limit.name.startswith("audioprobe-") and limit.active_slots:
            client.update_global_concurrency_limit(limit.name, GlobalConcurrencyLimitUpdate(active_slots=0))
            print(f"audioprobe: released {limit.active_slots} slot(s) of {limit.name} held by no live client",
                  file=sys.stderr)


@contextmanager
def run_lock(run):
    """One client per run directory at a time: a second `audioprobe run` of the same run is refused."""
    path = run.dir / ".lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise UserError(f"run {run.run_id} is being run by another process ({fh.read().strip() or 'pid ?'}); "
                            "wait for it or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def held_by_a_client(run) -> bool:
    """Whether a live process holds the run's lock (is running it) right now."""
    path = run.dir / ".lock"
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False
