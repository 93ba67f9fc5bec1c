"""The embedded Prefect server: SQLite under the data dir, on 127.0.0.1, left running for the UI.

When PREFECT_API_URL (or AUDIOPROBE_PREFECT_API_URL) names a server that answers, it is used as is:
the docker-compose stack or a team server. Otherwise `ensure_server()` starts one in its own process
session, so it outlives the command that started it and the UI stays usable after a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from audioprobe.settings import get_settings

START_TIMEOUT_S = 120


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _unready(api_url: str, timeout: float = 2.0) -> str | None:
    """Why the server cannot serve a run, or None. /health answers without the database; /ready asks the
    database too: a server on PostgreSQL whose database is gone answers /health and 503s every call."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/ready", timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return f"its database does not answer (GET /ready: {exc.code})"
    except OSError:
        return "it stopped answering"


def prefect_home() -> Path:
    return get_settings().data_dir / "prefect"


def configure_environment(api_url: str) -> None:
    """Point this process (and the processes it starts) at the server and at persisted results."""
    home = prefect_home()
    os.environ["PREFECT_API_URL"] = api_url
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home / "storage"))
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Flow runs log at INFO to the server, so every flow run's Logs tab shows its final line; the console
    # stays at WARNING, and task runs (one API call per log line, hundreds per run) log only warnings.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
    # A restarted embedded server takes ~10-30 s to answer again: the client's retries must outlast it.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "10")


def ensure_server(port: int | None = None) -> str:
    """Return the API URL of a server that answers, starting the embedded one if needed."""
    settings = get_settings()
    for candidate in (settings.prefect_api_url, os.environ.get("PREFECT_API_URL")):
        if candidate and _healthy(candidate):
            configure_environment(candidate)
            return candidate
    port = port or settings.prefect_port
    api_url = f"http://127.0.0.1:{port}/api"
    if not _healthy(api_url):
        _start_and_wait(port, api_url)
    configure_environment(api_url)
    global _embedded_port
    _embedded_port = port
    return api_url


_embedded_port: int | None = None  # set when this process uses the embedded server: it may restart it


def _start_and_wait(port: int, api_url: str) -> None:
    _start(port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(api_url):
        if time.monotonic() > deadline:
            log = prefect_home() / "server.log"
            raise RuntimeError(f"the Prefect server did not answer on {api_url} within {START_TIMEOUT_S}s; see {log}")
        time.sleep(1)


class OrchestrationLost(RuntimeError):
    """The Prefect server stopped answering and could not be brought back."""


class ServerWatchdog(threading.Thread):
    """Pings the Prefect server every few seconds during a run. The embedded server is restarted when it
    stops answering (its SQLite database survives); any other server that goes away sets `lost`, and the
    run stops submitting work, records what is in flight, and exits with one line naming the cause."""

    def __init__(self, api_url: str, interval_s: float = 2.0, misses: int = 3):
        super().__init__(daemon=True, name="prefect-watchdog")
        self.api_url, self.interval_s, self.misses = api_url, interval_s, misses
        self.lost: str | None = None
        self.restarts = 0
        self._halt = threading.Event()

    def run(self) -> None:
        missed = 0
        embedded = _embedded_port is not None and self.api_url == f"http://127.0.0.1:{_embedded_port}/api"
        while not self._halt.wait(self.interval_s):
            # The embedded server's SQLite lives with its process (a restart is the cure); another
            # server's database is apart from it, and can fail while the server still answers.
            if embedded:
                problem = None if _healthy(self.api_url, timeout=self.interval_s) else "it stopped answering"
            else:
                problem = _unready(self.api_url, timeout=self.interval_s)
            if problem is None:
                missed = 0
                continue
            missed += 1
            if missed < self.misses:
                continue
            missed = 0
            if not embedded:
                self.lost = f"the Prefect server at {self.api_url}: {problem}"
                return
            print(f"audioprobe: the embedded Prefect server at {self.api_url} stopped answering; restarting it",
                  file=sys.stderr, flush=True)
            try:
                _start_and_wait(_embedded_port, self.api_url)
            except RuntimeError as exc:
                self.lost = f"the embedded Prefect server died and did not restart: {exc}"
                return
            self.restarts += 1

    def stop(self) -> None:
        self._halt.set()


_watchdog: ServerWatchdog | None = None


def start_watchdog(api_url: str) -> ServerWatchdog:
    global _watchdog
    _watchdog = ServerWatchdog(api_url)
    _watchdog.start()
    return _watchdog


def orchestration_lost() -> str | None:
    """Why the run's Prefect server is gone for good, or None (also when no watchdog runs)."""
    return _watchdog.lost if _watchdog is not None else None


# Prefect's task-run recorder writes each task-run state in its own transaction by default (batch 1):
# 28 ms of server CPU per task run here, against 9 ms when it reads and writes 50 at a time (measured
# on 300 task runs; docs/orchestration.md). A one-second flush keeps the UI current. Set any of these
# in the environment to override them.
SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}


def server_environment(base: dict[str, str]) -> dict[str, str]:
    """`base` with the server tuning above wherever it does not set those keys itself."""
    return SERVER_TUNING | base


def _start(port: int) -> None:
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = server_environment({k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")})
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="true",
        # The UI asks the API at this address; Prefect's default is port 4200 whatever --port says.
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
    )
    prefect = Path(sys.executable).with_name("prefect")
    with open(home / "server.log", "ab") as log:
        subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )


def stop_server(port: int | None = None) -> None:
    """Stop the embedded server started for this data dir (tests and `audioprobe server stop`)."""
    port = port or get_settings().prefect_port
    subprocess.run(["pkill", "-f", f"prefect server start --host 127.0.0.1 --port {port}"], check=False)
