"""The Prefect server on PostgreSQL (as docker-compose.yml runs it) with two flow runs at once.

Needs a local PostgreSQL with a role `prefect` (password `prefect`) that may create databases:
`bash scripts/setup.sh postgres` (part of `make test`'s set-up). Each test session gets a database of
its own, dropped at the end. SQLite serialises writes and answers concurrent runs with "database is
locked"; on PostgreSQL nothing may be lost and no such error may appear.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from audioprobe.prefect_server import server_environment
from tests.fixtures_flows import wait_for

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("AUDIOPROBE_TEST_PG", "prefect:prefect@127.0.0.1:5432")
ITEMS = 24


# --------------------------------------------------------------------------- the flow the test runs


def run_flow(tag: str, n: int) -> None:
    """Child process: one flow run of n mapped tasks and a reduce; prints its id and result."""
    from prefect import flow, task
    from prefect.context import get_run_context
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def square(i: int) -> int:
        time.sleep(0.05)
        return i * i

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow(name="pg-concurrency", task_runner=ThreadPoolTaskRunner(max_workers=8))
    def fan_out(tag: str, n: int) -> dict:
        squares = square.map(range(n)).result()
        return {"flow_run_id": str(get_run_context().flow_run.id), "tag": tag, "total": total(squares)}

    print(json.dumps(fan_out(tag, n)))


# --------------------------------------------------------------------------- fixtures


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{PG}/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _count(db: str, sql: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{PG}/{db}", timeout=5)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, body: dict) -> list | dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def pg_database():
    import asyncio

    db = f"audioprobe_test_{os.getpid()}"
    try:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {db}"))
        asyncio.run(_admin(f"CREATE DATABASE {db}"))
    except Exception as exc:  # noqa: BLE001 - whatever asyncpg raises, say which set-up is missing
        pytest.fail(f"no PostgreSQL at {PG.split('@')[-1]} for role prefect ({type(exc).__name__}: {exc}); "
                    "run `bash scripts/setup.sh postgres`")
    yield db
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


@pytest.fixture(scope="module")
def pg_server(pg_database, tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-pg")
    port = _free_port()
    env = server_environment({k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")})
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://{PG}/{pg_database}")
    log = home / "server.log"
    prefect = Path(sys.executable).with_name("prefect")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        assert proc.poll() is None, f"prefect server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(healthy, 180, "the Prefect server on PostgreSQL", interval=1)
    yield url, log
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# --------------------------------------------------------------------------- the test


def test_two_concurrent_flow_runs_on_postgresql(pg_server, pg_database):
    import asyncio

    url, log = pg_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=url, PREFECT_LOGGING_LEVEL="WARNING", PREFECT_HOME=str(log.parent / "client"))
    procs = [subprocess.Popen([sys.executable, "-c", f"from tests.test_postgres import run_flow; run_flow('{t}', {ITEMS})"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for t in ("a", "b")]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["total"] for r in results] == [sum(i * i for i in range(ITEMS))] * 2
    ids = [r["flow_run_id"] for r in results]

    runs = _api(url, "/flow_runs/filter", {"flow_runs": {"id": {"any_": ids}}})
    assert sorted(r["state_type"] for r in runs) == ["COMPLETED", "COMPLETED"]
    want = 2 * (ITEMS + 1)  # n squares and one total per flow run

    def task_runs() -> list | None:  # task run states reach the server as events: give them a moment
        got = _api(url, "/task_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": 200})
        return got if len(got) == want and all(t["state_type"] == "COMPLETED" for t in got) else None

    got = wait_for(task_runs, 60, f"{want} completed task runs")
    assert len({t["id"] for t in got}) == want
    # and they are in PostgreSQL itself, not in some SQLite file
    assert asyncio.run(_count(pg_database, "SELECT count(*) FROM flow_run")) >= 2
    assert asyncio.run(_count(pg_database, "SELECT count(*) FROM task_run WHERE state_type = 'COMPLETED'")) == want
    server_log = log.read_text()
    assert "database is locked" not in server_log and "deadlock detected" not in server_log, server_log[-3000:]
