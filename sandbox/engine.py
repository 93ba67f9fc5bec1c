"""The Docker engine: one client per DOCKER_HOST, the errors a user can act on, and clean-up.

Every sandbox container carries the label `audioprobe.sandbox`, its owner (`host:pid`) and the time
after which it may be removed by anyone (`expires`, epoch seconds: start + timeout + grace for a run,
more for a container waiting in a pool). `remove_stale` removes containers whose owner died or whose
time is up; it runs at every entry point (each run, each pool, `audioprobe sandbox gc`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from audioprobe.processes import pid_alive
from audioprobe.schema import ExecutionLimits

LABEL = "audioprobe.sandbox"
OWNER_LABEL = f"{LABEL}.owner"
EXPIRES_LABEL = f"{LABEL}.expires"
STALE_CHECK_EVERY_S = 30.0  # remove_stale lists every container: at most this often per process


class SandboxError(Exception):
    """The sandbox itself could not do its job (as opposed to the program failing)."""


class EngineUnavailable(SandboxError):
    pass


class ImageMissing(SandboxError):
    pass


_clients: dict[str | None, Any] = {}
_clients_lock = threading.Lock()


def connect(timeout: float = 60.0):
    """A Docker client for DOCKER_HOST (or the default socket) that has answered a ping."""
    import docker

    host = os.environ.get("DOCKER_HOST")
    with _clients_lock:
        client = _clients.get(host)
        if client is not None:
            return client
        where = host or "unix:///var/run/docker.sock"
        try:
            client = docker.from_env(timeout=timeout, max_pool_size=64)
            client.ping()
        except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError, ...
            raise EngineUnavailable(
                f"no Docker engine answers at {where} ({type(exc).__name__}). Start one with "
                "`bash sandbox/engine.sh ensure` (or `make setup`), or point DOCKER_HOST at a running engine."
            ) from None
        _clients[host] = client
        return client


def image_name(image: str | None = None) -> str:
    from audioprobe.settings import get_settings

    return image or get_settings().sandbox_image


def default_limits() -> ExecutionLimits:
    from audioprobe.settings import get_settings

    return get_settings().limits


def owner_labels(expires_in_s: float) -> dict[str, str]:
    return {
        LABEL: "1",
        OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}",
        EXPIRES_LABEL: str(int(time.time() + expires_in_s)),
    }


def is_stale(labels: dict[str, str], now: float | None = None) -> bool:
    """Its owner, a process of this host, is gone; or its time is up (whoever owns it)."""
    expires = labels.get(EXPIRES_LABEL, "")
    if expires.isdigit() and int(expires) < (now or time.time()):
        return True
    host, _, pid = labels.get(OWNER_LABEL, "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


_last_check = 0.0
_check_lock = threading.Lock()


def remove_stale(client=None, force_check: bool = True) -> int:
    """Remove stale sandbox containers (see is_stale); returns how many. Errors other than 'gone' raise."""
    global _last_check
    with _check_lock:
        if not force_check and time.monotonic() - _last_check < STALE_CHECK_EVERY_S:
            return 0
        _last_check = time.monotonic()
    client = client or connect()
    removed = 0
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        if not is_stale(c.get("Labels") or {}):
            continue
        try:
            client.api.remove_container(c["Id"], force=True)
            removed += 1
        except Exception as exc:
            if "No such container" not in str(exc) and "already in progress" not in str(exc):
                raise SandboxError(f"cannot remove stale sandbox {c['Id'][:12]}: {exc}") from None
    return removed


    return True
