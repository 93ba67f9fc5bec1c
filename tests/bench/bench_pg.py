"""A Prefect server on the local PostgreSQL for the paper bench (as docker-compose.yml runs it).

The embedded server is SQLite only, so the bench starts its own on a database of its own (dropped and
made again each time) and points the CLI at it with AUDIOPROBE_PREFECT_API_URL. Needs the role
`prefect`/`prefect` that `bash scripts/setup.sh postgres` makes (tests/test_postgres.py uses the same).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from audioprobe.prefect_server import server_environment

PG = os.environ.get("AUDIOPROBE_TEST_PG", "prefect:prefect@127.0.0.1:5432")


def database(port: int) -> str:
    """One database per server port: two benches on one PostgreSQL (distinct ports) never share one,
    and one bench's clean-up cannot drop another's."""
    return f"audioprobe_bench_paper_{port}"


async def _sql(sql: str, db: str = "postgres"):
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{PG}/{db}", timeout=5)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def size_mb(port: int) -> float:
    return asyncio.run(_sql(f"SELECT pg_database_size('{database(port)}')")) / 2**20


def start(port: int, home: Path, fresh: bool = True) -> tuple[subprocess.Popen, str]:
    """A Prefect server at 127.0.0.1:port on a fresh database (or, not `fresh`, on the one there, as a
    restarted server); (process, api_url) once healthy."""
    db = database(port)
    if fresh:
        asyncio.run(_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        asyncio.run(_sql(f"CREATE DATABASE {db}"))
    home.mkdir(parents=True, exist_ok=True)
    env = server_environment({k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")})
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://{PG}/{db}",
    )
    prefect = Path(sys.executable).with_name("prefect")
    with open(home / "server.log", "wb" if fresh else "ab") as log:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Prefect on PostgreSQL exited {proc.returncode}: see {home / 'server.log'}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"Prefect on PostgreSQL did not answer in 180 s: see {home / 'server.log'}")


def stop(proc: subprocess.Popen, port: int, drop: bool = True) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    if drop:
        asyncio.run(_sql(f"DROP DATABASE IF EXISTS {database(port)} WITH (FORCE)"))
