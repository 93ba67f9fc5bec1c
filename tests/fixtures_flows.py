"""Fixtures for the orchestration tests: a real Prefect server and the real CLI in a subprocess.

The CLI runs as a user would run it, with its settings in AUDIOPROBE_* variables: a data dir of its
own, the session's local LLM server (0.5B, from tests.fixtures_llm) and a Prefect server on a test port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PREFECT_TEST_PORT = int(os.environ.get("AUDIOPROBE_TEST_PREFECT_PORT", "4299"))


class Cli:
    """`audioprobe ...` in a subprocess with this test's environment."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "audioprobe", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"audioprobe {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
        return proc

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "audioprobe", *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    @staticmethod
    def last_json(proc: subprocess.CompletedProcess) -> dict:
        return json.loads(proc.stdout.strip().splitlines()[-1])

    @property
    def data_dir(self) -> Path:
        return Path(self.env["AUDIOPROBE_DATA_DIR"])

    def api(self, path: str, body: dict | None = None):
        url = f"http://127.0.0.1:{PREFECT_TEST_PORT}/api{path}"
        data = json.dumps(body or {}).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server (SQLite) for the session, started the way `audioprobe run` starts one."""
    home = tmp_path_factory.mktemp("prefect-data")
    env = {**os.environ, "AUDIOPROBE_DATA_DIR": str(home), "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT)}
    env.pop("PREFECT_API_URL", None)
    start = subprocess.run([sys.executable, "-m", "audioprobe", "server", "start"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr
    api_url = json.loads(start.stdout.strip().splitlines()[-1])["api_url"]
    yield api_url
    subprocess.run([sys.executable, "-m", "audioprobe", "server", "stop"], env=env, timeout=60)


@pytest.fixture(scope="module")
def cli(tmp_path_factory, prefect_server, local_server) -> Cli:
    """One data dir per test module: later tests reuse the responses earlier ones paid for."""
    env = {
        **os.environ,
        "AUDIOPROBE_DATA_DIR": str(tmp_path_factory.mktemp("flows-data")),
        "AUDIOPROBE_PREFECT_API_URL": prefect_server,
        "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT),
        "AUDIOPROBE_LOCAL_MODEL": local_server.key,
        "AUDIOPROBE_LOCAL_PORT": str(local_server.port),
        # short answers keep the suite quick; long enough for a complete small program
        "AUDIOPROBE_MODELS": json.dumps({"local": {"max_tokens": 400, "temperature": 0.0}}),
        "AUDIOPROBE_LIMITS__TIMEOUT_S": "30",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    return Cli(env)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
