"""tasks.limits against a real Prefect server: limits made by the project hold across processes.

Two separate Python processes, each with several threads, enter the guarded section as fast as they
can; each records (start, end) wall-clock times of its time inside. Merged, the intervals must never
overlap more than the limit, and must reach it (otherwise the test would pass with no parallelism).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audioprobe.settings import ModelSettings, Settings
from tasks import limits

ROOT = Path(__file__).resolve().parents[1]
HOLD_S = 0.4


def hold(name: str, threads: int, rounds: int, hold_s: float, rate: bool = False, machine: str = "") -> None:
    """Child process: `threads` threads each enter the limit `rounds` times; prints the intervals as JSON.
    `machine`: the lock directory of a machine-scoped limit (limits.MachineSlots) of size 2."""
    from concurrent.futures import ThreadPoolExecutor

    def once(_):
        if rate:
            limits.throttle(name, timeout_s=120)
            return (time.time(), time.time())
        held = limits.MachineSlots(Path(machine), name, 2).hold() if machine else limits.slot(name, timeout_s=120)
        with held:
            start = time.time()
            time.sleep(hold_s)
            return (start, time.time())

    with ThreadPoolExecutor(threads) as pool:
        print(json.dumps(list(pool.map(once, range(threads * rounds)))))


def _run_children(api_url: str, name: str, n_procs: int, threads: int, rounds: int, rate: bool = False,
                  machine: str = ""):
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    code = (f"from tests.test_limits import hold; "
            f"hold({name!r}, {threads}, {rounds}, {HOLD_S}, rate={rate}, machine={machine!r})")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n_procs)]
    intervals = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        intervals += [tuple(i) for i in json.loads(out.strip().splitlines()[-1])]
    return intervals


@pytest.fixture()
def api(prefect_server, monkeypatch):
    # Prefect reads its settings from the environment once, when first imported: an earlier test that
    # imported it would keep this process on another server, so the setting is entered as a context too.
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        yield prefect_server


def test_ensure_limits_creates_and_updates_from_settings(api):
    from prefect.client.orchestration import get_client

    settings = Settings(sandbox_concurrency=3, judge_concurrency=1,
                        models={"openai/gpt-4o": ModelSettings(max_concurrency=5, requests_per_minute=120)})
    specs = limits.ensure_limits(settings, models=["openai/gpt-4o", "local"])
    # the sandbox and the judges are the machine's (MachineSlots), not the server's
    assert {s.name for s in specs} == {"audioprobe-llm-openai-gpt-4o", "audioprobe-llm-rate-openai-gpt-4o",
                                      "audioprobe-llm-local"}
    with get_client(sync_client=True) as client:
        rate = client.read_global_concurrency_limit_by_name("audioprobe-llm-rate-openai-gpt-4o")
        assert (rate.limit, rate.slot_decay_per_second) == (5, 2.0)
        assert client.read_global_concurrency_limit_by_name("audioprobe-llm-openai-gpt-4o").limit == 5
    changed = settings.model_copy(update={"models": {"openai/gpt-4o": ModelSettings(max_concurrency=2)}})
    limits.ensure_limits(changed, models=["openai/gpt-4o"])  # a changed setting wins
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("audioprobe-llm-openai-gpt-4o").limit == 2


def test_a_missing_limit_is_an_error_not_no_limit(api):
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

    with pytest.raises(ConcurrencySlotAcquisitionError), limits.slot("audioprobe-test-never-created"):
        pass


def test_two_processes_together_never_exceed_the_limit(api):
    name, n = f"audioprobe-test-slots-{os.getpid()}", 2
    limits.ensure_limits(Settings(), extra=[limits.LimitSpec(name, n)])
    # 2 processes x 3 threads: per-process semaphores of 2 would let 4 in at once
    intervals = _run_children(api, name, n_procs=2, threads=3, rounds=2)
    assert len(intervals) == 12
    assert limits.max_overlap(intervals) == n, sorted(intervals)


def test_machine_slots_hold_across_processes_without_the_server(tmp_path):
    # the server's URL points nowhere in the children: a machine slot must not ask it
    intervals = _run_children("http://127.0.0.1:9/api", "audioprobe-sandbox", n_procs=2, threads=3, rounds=2,
                              machine=str(tmp_path))
    assert len(intervals) == 12
    assert limits.max_overlap(intervals) == 2, sorted(intervals)


def test_a_killed_holder_frees_its_machine_slot_at_once(tmp_path):
    code = ("import time; from pathlib import Path; from tasks import limits\n"
            f"with limits.MachineSlots(Path({str(tmp_path)!r}), 'audioprobe-judge', 1).hold():\n"
            "    print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        slots = limits.MachineSlots(tmp_path, "audioprobe-judge", 1)
        assert slots._try() is None  # held by the live process
        holder.kill()
        holder.wait(timeout=30)
        t0 = time.monotonic()
        with slots.hold():
            waited = time.monotonic() - t0
        assert waited < 1.0, waited  # no lease to run out: the kernel freed the dead holder's lock
    finally:
        holder.kill()


def test_rate_limit_holds_across_processes(api):
    name, per_s = f"audioprobe-test-rate-{os.getpid()}", 4.0
    limits.ensure_limits(Settings(), extra=[limits.LimitSpec(name, 1, per_s)])
    stamps = sorted(a for a, _ in _run_children(api, name, n_procs=2, threads=2, rounds=3, rate=True))
    assert len(stamps) == 12
    # 12 slots of a limit of 1 decaying at 4/s: the last can come no sooner than ~11/4 s after the first
    assert stamps[-1] - stamps[0] >= 11 / per_s * 0.8, stamps


def test_max_overlap():
    assert limits.max_overlap([]) == 0
    assert limits.max_overlap([(0, 1), (1, 2)]) == 1  # back to back is not overlap
    assert limits.max_overlap([(0, 3), (1, 2), (1.5, 4)]) == 3
