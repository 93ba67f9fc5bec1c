"""The embedded model's server: llama-cpp-python's OpenAI-compatible one, on 127.0.0.1.

It runs from its own venv (`<cache>/llm-venv`) so its fastapi/pydantic pins never meet prefect's.
litellm reaches it as `openai/<alias>` with api_base `http://127.0.0.1:<port>/v1`: the same path a user
takes with vLLM, ollama or LM Studio. A server counts as ready only after a one-token completion; one
that dies during a run is restarted once (`recover`), and a second death makes the model unavailable.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Self

from audioprobe.console import warn
from audioprobe.settings import Settings, get_settings
from tasks.generation.local_model import LOCAL_NAME, LocalModelError, fetch, is_local, llm_venv, spec


def api_base(settings: Settings | None = None, port: int | None = None) -> str:
    settings = settings or get_settings()
    return f"http://{settings.local_host}:{port or settings.local_port}/v1"


def served_aliases(base: str, timeout: float = 2.0) -> list[str] | None:
    """The model ids a server at `base` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{base}/models", timeout=timeout) as resp:
            data = json.load(resp)
    except (OSError, ValueError):
        return None
    return [m.get("id", "") for m in data.get("data", [])]


def complete_one_token(base: str, alias: str, timeout: float = 120.0) -> str | None:
    """Ask for one token; None when the server answered, else what went wrong."""
    body = json.dumps({"model": alias, "prompt": "1", "max_tokens": 1, "temperature": 0}).encode()
    request = urllib.request.Request(f"{base}/completions", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            data = json.load(resp)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if data.get("choices") else f"no choices in the answer: {str(data)[:200]}"


def describe_exit(returncode: int, log_path: Path) -> str:
    """'llama.cpp server died with SIGSEGV; log: PATH; last lines: ...' from an exit status."""
    if returncode < 0:
        try:
            how = f"died with {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"died with signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    except OSError:
        lines = []
    last = " | ".join(line.strip()[:160] for line in lines)
    return f"llama.cpp server {how}; log: {log_path}" + (f"; last lines: {last}" if last else "")


class LocalServer:
    """One llama-cpp-python server. `owned` is False when we reused one already answering."""

    def __init__(self, key: str, settings: Settings | None = None, port: int | None = None):
        self.settings = settings or get_settings()
        self.key = spec(key).key
        self.port = port or self.settings.local_port
        self.base = api_base(self.settings, self.port)
        self.proc: subprocess.Popen | None = None
        self.owned = False
        self.log_path = self.settings.cache_dir / "logs" / f"llm-server-{self.port}.log"

    @property
    def litellm_model(self) -> str:
        return f"openai/{self.key}"

    def healthy(self) -> bool:
        """Lists its model AND answers a one-token completion: a server built for a CPU feature the
        machine cannot use lists its models fine and dies on the first real request."""
        return self.key in (served_aliases(self.base) or []) and complete_one_token(self.base, self.key) is None

    def death(self) -> str | None:
        """When the server we started has exited: how (signal or exit code), its log and last lines."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return describe_exit(self.proc.returncode, self.log_path)

    def _port_taken(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1.0)
            return probe.connect_ex((self.settings.local_host, self.port)) == 0

    def start(self, wait_s: float = 180.0) -> LocalServer:
        aliases = served_aliases(self.base)
        if aliases is None and self._port_taken():
            # Something listens but does not answer yet: a llama-cpp server answers nothing while it
            # generates (e.g. a request from a client that was killed). Wait for it, never start a rival.
            deadline = time.monotonic() + max(wait_s, 600.0)  # one long answer at worst
            while aliases is None and time.monotonic() < deadline:
                time.sleep(1.0)
                aliases = served_aliases(self.base, timeout=5.0)
            if aliases is None:
                raise LocalModelError(f"{self.base} is taken by a process that does not answer as a model server")
        if aliases is not None:
            if self.key in aliases:  # reuse: someone (another run, `llm serve`) already serves it
                problem = complete_one_token(self.base, self.key)
                if problem is None:
                    return self
                raise LocalModelError(f"the server at {self.base} lists {self.key} but cannot complete one "
                                      f"token ({problem}); stop it and run again")
            raise LocalModelError(
                f"{self.base} already serves {aliases}, not {self.key}; stop it or set local_port"
            )
        python = llm_venv(self.settings) / "bin" / "python"
        if not python.exists():
            raise LocalModelError(f"no llm venv at {python.parent.parent}; run `scripts/setup.sh llm`")
        gguf = fetch(self.key, self.settings)
        cmd = [
            str(python),
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--n_threads",
            str(self.settings.local_threads),
            "--n_ctx",
            str(self.settings.local_ctx),
            "--host",
            self.settings.local_host,
            "--port",
            str(self.port),
            "--model_alias",
            self.key,
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.owned = True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                died = describe_exit(self.proc.returncode, self.log_path)
                raise LocalModelError(f"llama.cpp server for {self.key} failed at start: {died}")
            if self.key in (served_aliases(self.base) or []):
                problem = complete_one_token(self.base, self.key, timeout=max(5.0, deadline - time.monotonic()))
                if problem is None:
                    return self
                time.sleep(0.5)  # a crash shows as an exit on the next turn of the loop
                if self.proc.poll() is None:
                    self.stop()
                    raise LocalModelError(f"llama.cpp server for {self.key} lists its model but cannot "
                                          f"complete one token: {problem}; log {self.log_path}")
                continue
            time.sleep(0.5)
        self.stop()
        raise LocalModelError(f"llama.cpp server not ready after {wait_s:.0f} s; log {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- for the main job

_servers: dict[tuple[str, int], LocalServer] = {}
_servers_lock = threading.Lock()
_restarts: dict[tuple[str, int], int] = {}
_dead: dict[tuple[str, int], str] = {}  # servers that died after their restart: how, for every later ask
MAX_RESTARTS = 1  # a server that dies twice in one run will die again: the model is unavailable


class ServerDied(LocalModelError):
    """The run's own llama.cpp server died and may not be restarted again."""


def ensure_server(model: str = LOCAL_NAME, settings: Settings | None = None) -> LocalServer:
    """A healthy server for the configured local model: reused if one answers, else started here and
    stopped when this process exits (a run's own server does not outlive the run)."""
    if not is_local(model):
        raise LocalModelError(f"{model!r} is not the embedded model ({LOCAL_NAME!r})")
    settings = settings or get_settings()
    with _servers_lock:
        key = (settings.local_model, settings.local_port)
        if key in _dead:
            raise ServerDied(_dead[key])
        server = _servers.get(key)
        if server is not None and server.healthy():
            return server
        server = LocalServer(settings.local_model, settings).start()
        if server.owned:
            atexit.register(server.stop)
        _servers[key] = server
        return server


def recover(settings: Settings | None = None) -> str | None:
    """After a failed request to the local model: if the server this process started has died, restart
    it once and return how it died; a second death raises ServerDied. None when it is still running or
    was never ours (then the failure is the client's usual transient error)."""
    settings = settings or get_settings()
    with _servers_lock:
        key = (settings.local_model, settings.local_port)
        if key in _dead:
            raise ServerDied(_dead[key])
        server = _servers.get(key)
        died = server.death() if server is not None else None
        if died is None:
            return None
        server.proc = None
        if _restarts.get(key, 0) >= MAX_RESTARTS:
            _dead[key] = f"{died} (again, after {MAX_RESTARTS} restart)"
            raise ServerDied(_dead[key])
        _restarts[key] = _restarts.get(key, 0) + 1
        warn(f"audioprobe: {died}; restarting it once")
        try:
            restarted = LocalServer(settings.local_model, settings).start()
        except LocalModelError as exc:
            _dead[key] = f"{died}; the restart failed: {exc}"
            raise ServerDied(_dead[key]) from None
        if restarted.owned:
            atexit.register(restarted.stop)
        _servers[key] = restarted
        return died


def forget_deaths() -> None:
    """A new run gives every local server its restart again."""
    with _servers_lock:
        _dead.clear()
        _restarts.clear()


def stop_owned() -> None:
    """Stop every server this process started (before a hard exit, which skips atexit)."""
    with _servers_lock:
        for server in _servers.values():
            if server.owned:
                server.stop()
