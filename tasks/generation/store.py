"""Every paid-for response, on disk, keyed by what was asked: a rerun, retry or replay never pays twice.

The key is the SHA-256 of canonical JSON of (model, api_base, messages, generation params, sample
index). Timeouts, retry counts and API keys are not in it: they change how we ask, not what. The
sample index is, so samples at temperature > 0 stay distinct entries.

Layout: `<responses_dir>/<key[:2]>/<key>.json` holding the request and the Generation. Writes go to a
temporary file in the same folder and are renamed into place, so a crash never leaves half a record
and concurrent writers of the same key both leave a whole one. Only answers are stored, never call
failures: an error (no key, server down) must be retried once its cause is fixed.

An ask in flight is claimed (`claim`): an exclusive lock on `<key>.asking`, marked with who asked and
when while the request is out. A second asker of the same key (Dask running again the task of a worker
it lost, a frozen worker's batch given to another) waits for the lock, then finds the answer stored. A
mark left behind by a process that died mid-request means the provider was asked and its answer, maybe
paid for, is gone: the ask is recorded as `answer_lost`, never sent again by itself
(`audioprobe retry RUN --only generation` sends it again, `release`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audioprobe.schema import Generation
from tasks.fileio import atomic_write


def response_key(
    model: str, api_base: str | None, messages: list[dict[str, Any]], params: dict[str, Any], sample: int
) -> str:
    payload = {"model": model, "api_base": api_base, "messages": messages, "params": params, "sample": sample}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Generation | None:
        path = self.path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:  # a damaged record is a miss, said aloud
            raise RuntimeError(f"response store: unreadable record {path}: {exc}") from exc
        gen = Generation.model_validate(record["generation"])
        gen.cached = True
        return gen

    def put(self, gen: Generation, request: dict[str, Any] | None = None) -> Path:
        path = self.path(gen.response_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"request": request or {}, "generation": gen.model_dump(mode="json") | {"cached": False}}
        # durable: an answer that was paid for must survive a crash right after it
        return atomic_write(path, json.dumps(record, ensure_ascii=False, indent=1), fsync=True)

    def claim_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.asking"

    @contextmanager
    def claim(self, key: str) -> Iterator[AskClaim]:
        """Hold the ask of `key` for this thread: waits while another (live) process or thread holds it."""
        path = self.claim_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break  # else the holder removed the file as we waited: lock the one there now
            except FileNotFoundError:
                pass
            os.close(fd)
        claim = AskClaim(fd)
        try:
            yield claim
        finally:
            if os.fstat(fd).st_size == 0:  # a mark left (a lost ask's, or ours mid-request) stays
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            os.close(fd)

    def release(self, key: str) -> bool:
        """Forget a lost ask's mark, so that the next ask sends it again; whether there was one."""
        try:
            self.claim_path(key).unlink()
            return True
        except FileNotFoundError:
            return False


class AskClaim:
    """One held claim: `mark` before a request goes out, `unmark` once its outcome is known (stored)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def lost(self) -> str | None:
        """Who asked and died before the answer came, when the last holder left its mark; else None."""
        blob = os.pread(self.fd, 4096, 0)
        if not blob:
            return None
        try:
            mark = json.loads(blob)
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(mark["at"]))
            return f"asked at {when} by pid {mark['pid']} on {mark['host']}, which ended before the answer came"
        except (ValueError, KeyError, TypeError):
            return "asked by a process that ended before the answer came"

    def mark(self) -> None:
        blob = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, blob, 0)
        os.fsync(self.fd)  # the mark must be on disk before the request is: it is what a crash leaves

    def unmark(self) -> None:
        os.ftruncate(self.fd, 0)
