"""Sandboxes started ahead of time: `SandboxPool` and the process-wide `shared_pool`."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from audioprobe.schema import ExecutionLimits
from sandbox.container import GRACE_S, POOL_IDLE_S, Sandbox
from sandbox.engine import SandboxError, connect, default_limits, image_name, remove_stale

log = logging.getLogger(__name__)


class SandboxPool:
    """Sandboxes started ahead of time for one set of limits.

    Start-up (create + start, 0.2-0.4 s here) dominates short programs, so the pool keeps `size`
    started and refills in the background; removal also happens off the caller's path. By default a
    sandbox runs one program and is removed. With reuse=N (opt-in) it runs up to N programs, and
    between two the runner resets it (`runner.py` reset: every process of the program's uid killed,
    /work, /tmp, /dev/shm and /dev/mqueue emptied); one with System V IPC objects left, whose run went
    wrong, or whose reset failed is removed instead. A sandbox idle for POOL_IDLE_S is replaced: its
    `expires` label lets any process's `remove_stale` take it after that.
    """

    def __init__(
        self, size: int = 2, limits: ExecutionLimits | None = None, image: str | None = None, reuse: int = 1
    ):
        self.size = size
        self.reuse = max(1, reuse)
        self.limits = limits or default_limits()
        self.image = image_name(image)
        self.client = connect()
        self._ready: queue.Queue[Sandbox] = queue.Queue()
        self._work = ThreadPoolExecutor(max_workers=2 * max(1, size), thread_name_prefix="sandbox-pool")
        self._closed = False
        self.warm_takes = self.cold_takes = self.reused = self.reset_failures = 0
        remove_stale(self.client)
        self._new().remove()  # fail now on a missing image
        for _ in range(size):
            self._work.submit(self._fill)
        atexit.register(self.close)

    def _new(self) -> Sandbox:
        # A pooled sandbox may wait up to POOL_IDLE_S before its run starts.
        expires = POOL_IDLE_S + self.limits.timeout_s + GRACE_S + 60
        return Sandbox(self.limits, self.image, self.client, expires_in_s=expires)

    def _fill(self) -> None:
        if self._closed:
            return
        try:
            box = self._new()
        except Exception as exc:  # the next take starts a cold one and raises the error there
            log.warning("sandbox pool could not start a sandbox: %s", exc)
            return
        if self._closed:
            box.remove()
        else:
            self._ready.put(box)

    def take(self, limits: ExecutionLimits | None = None) -> Sandbox:
        if limits is not None and limits != self.limits:
            return Sandbox(limits, self.image, self.client)  # other limits: a cold one
        if self.reuse == 1:
            self._work.submit(self._fill)  # start the replacement while this one runs
        while True:
            try:
                box = self._ready.get_nowait()
            except queue.Empty:
                self.cold_takes += 1
                box = Sandbox(self.limits, self.image, self.client)
                break
            if time.monotonic() - box.started < POOL_IDLE_S:
                self.warm_takes += 1
                break
            self._work.submit(box.remove)  # waited too long: its expiry is near
        box.uses = getattr(box, "uses", 0) + 1
        return box

    def discard(self, box: Sandbox, clean: bool = False) -> None:
        """Hand a used sandbox back: removed (or reset for another run), off the caller's path."""
        self._work.submit(self._recycle, box, clean)

    def _recycle(self, box: Sandbox, clean: bool) -> None:
        if (
            self.reuse > 1
            and clean
            and not self._closed
            and box.limits == self.limits
            and getattr(box, "uses", 1) < self.reuse
            and time.monotonic() - box.started < POOL_IDLE_S
        ):
            try:
                report, _ = box.runner("reset", timeout=10)
            except SandboxError as exc:
                report = {"runner_error": str(exc)}
            if report.get("reset") == "clean" and not self._closed:
                self.reused += 1
                self._ready.put(box)
                return
            if report.get("reset", "").startswith("dirty"):
                log.info("sandbox %s not reused: %s", box.id[:12], report["reset"])
            else:  # a reset that failed is the sandbox's fault: say so, and do not reuse it
                self.reset_failures += 1
                log.error("sandbox %s reset failed: %s", box.id[:12], report.get("runner_error") or report)
        try:
            box.remove()
        except SandboxError as exc:
            log.error("%s (its expiry label lets `audioprobe sandbox gc` remove it)", exc)
        if self.reuse > 1 and box.limits == self.limits:
            self._fill()

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while self._ready.qsize() < self.size and time.monotonic() < end:
            time.sleep(0.02)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._work.shutdown(wait=True)
        while True:
            try:
                self._ready.get_nowait().remove()
            except queue.Empty:
                break

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: dict[tuple, SandboxPool] = {}
_shared_lock = threading.Lock()


def shared_pool(
    limits: ExecutionLimits | None = None, size: int | None = None, reuse: int = 1
) -> SandboxPool:
    """The process-wide pool for these limits (size: settings.sandbox_concurrency), made on first use."""
    from audioprobe.settings import get_settings

    limits = limits or default_limits()
    key = (os.environ.get("DOCKER_HOST"), image_name(), limits.model_dump_json())
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None or pool._closed:
            pool = _shared[key] = SandboxPool(size or get_settings().sandbox_concurrency, limits, reuse=reuse)
        return pool
