"""Run untrusted Python in a throw-away Docker container and say exactly what happened.

`Sandbox` is one hardened container (all hardening lives in `_create_kwargs`), kept alive by
`sleep infinity` under docker-init so that its tmpfs work dir survives until outputs are read:
Docker's archive API does not see tmpfs mounts, so everything goes in and out through exec.
`run_program` runs one program in a fresh sandbox and classifies the outcome; `SandboxPool` keeps a
few sandboxes started ahead of time, which removes the start-up cost from each run (see
docs/sandbox.md for the figures).

Uids: the container's init and `sleep` run as nobody (65534), the program and the in-container runner
as 10001. The program can therefore neither signal PID 1 nor keep the container alive on its own,
and the runner can SIGKILL everything the program left behind without touching the container.
"""

from __future__ import annotations

import atexit
import base64
import fnmatch
import hashlib
import json
import math
import os
import queue
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from audioprobe.schema import ExecutionLimits, ExecutionResult, OutputFile

PROGRAM_UID = "10001:10001"
INIT_UID = "65534:65534"
WORK = "/work"
PROGRAM_NAME = "program.py"
LABEL = "audioprobe.sandbox"
RUNNER_SRC = (Path(__file__).with_name("runner.py")).read_text()
INLINE_CODE_MAX = 64 * 1024  # larger programs are written in chunks first (one exec argument is <= 128 KiB)
GRACE_S = 15.0  # beyond the program's own timeout: container start, runner start-up, output transfer


class SandboxError(Exception):
    """The sandbox itself could not do its job (as opposed to the program failing)."""


class EngineUnavailable(SandboxError):
    pass


class ImageMissing(SandboxError):
    pass


# --------------------------------------------------------------------------- engine

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


# --------------------------------------------------------------------------- one container


def _create_kwargs(image: str, limits: ExecutionLimits) -> dict[str, Any]:
    """Every hardening option in one place."""
    from docker.types import Ulimit

    mb = 1024 * 1024
    tmpfs_opts = "rw,nosuid,nodev,noexec"
    return dict(
        image=image,
        command=["sleep", "infinity"],
        init=True,  # docker-init reaps orphans and dies with the container
        user=INIT_UID,
        working_dir=WORK,
        environment={},  # only the image's own ENV: nothing from the host, no keys
        network_mode="none",
        read_only=True,
        tmpfs={
            WORK: f"{tmpfs_opts},size={limits.workdir_mb}m,uid=10001,gid=10001,mode=0700",
            "/tmp": f"{tmpfs_opts},size={limits.tmp_mb}m,mode=1777",
        },
        shm_size=f"{limits.tmp_mb}m",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=limits.pids,
        mem_limit=limits.memory_mb * mb,
        memswap_limit=limits.memory_mb * mb,  # equal: no swap on top
        nano_cpus=int(limits.cpus * 1e9),
        ulimits=[
            Ulimit(name="fsize", soft=limits.workdir_mb * mb, hard=limits.workdir_mb * mb),
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="core", soft=0, hard=0),
        ],
        hostname="sandbox",
        log_config={"type": "none"},
        labels={LABEL: "1", f"{LABEL}.owner": f"{socket.gethostname()}:{os.getpid()}"},
        detach=True,
    )


class Sandbox:
    """One started, hardened container: exec, write_file, read_file, then remove (also on `with`)."""

    def __init__(self, limits: ExecutionLimits | None = None, image: str | None = None, client=None):
        import docker

        self.limits = limits or default_limits()
        self.image = image_name(image)
        self.client = client or connect()
        try:
            self.container = self.client.containers.create(**_create_kwargs(self.image, self.limits))
        except docker.errors.ImageNotFound:
            raise ImageMissing(
                f"the sandbox image {self.image} is missing: build it with `audioprobe sandbox build`"
            ) from None
        except docker.errors.APIError as exc:
            raise SandboxError(f"the engine refused to create a sandbox: {exc.explanation or exc}") from None
        self.id = self.container.id
        try:
            self.container.start()
        except Exception as exc:
            self.remove()
            raise SandboxError(f"the sandbox container did not start: {exc}") from None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def exec(
        self,
        cmd: list[str],
        timeout: float | None = None,
        max_stdout: int = 1 << 20,
        user: str = PROGRAM_UID,
        want_code: bool = True,
    ) -> tuple[int | None, bytes, bytes, str | None]:
        """Run cmd in the container; returns (exit code, stdout, stderr, problem).

        problem is "timeout" when the wall clock ran out and "too_much_output" past max_stdout; in both
        cases the container has been killed (its processes with it) and exit code is None.
        """
        import docker

        api = self.client.api
        try:
            eid = api.exec_create(
                self.id, cmd, user=user, workdir=WORK, stdout=True, stderr=True, stdin=False
            )["Id"]
        except docker.errors.APIError as exc:  # e.g. the container is gone
            raise SandboxError(f"cannot exec in the sandbox: {exc.explanation or exc}") from None
        out, err = bytearray(), bytearray()
        state: dict[str, Any] = {}

        def pump() -> None:
            try:
                for o, e in api.exec_start(eid, stream=True, demux=True):
                    if o:
                        out.extend(o)
                        if len(out) > max_stdout:
                            state["problem"] = "too_much_output"
                            return
                    if e and len(err) < 1 << 20:
                        err.extend(e)
            except Exception as exc:  # the stream breaks when the container is killed under it
                state["error"] = exc

        worker = threading.Thread(target=pump, daemon=True)
        worker.start()
        worker.join(timeout)
        problem = state.get("problem")
        if worker.is_alive():
            problem = "timeout"
        if problem:
            self.kill()
            worker.join(10)
            return None, bytes(out), bytes(err), problem
        if "error" in state:
            raise SandboxError(f"exec in the sandbox failed: {state['error']}")
        code = api.exec_inspect(eid).get("ExitCode") if want_code else None
        return code, bytes(out), bytes(err), None

    def write_file(self, name: str, data: bytes) -> None:
        """Write a file in the work dir (a tmpfs, so through exec, in chunks below the argument limit)."""
        _check_name(name)
        script = "import sys,base64;open(sys.argv[1],sys.argv[2]).write(base64.b64decode(sys.argv[3]))"
        step = 64 * 1024  # 88 KiB in base64: one exec argument must stay under 128 KiB
        for i in range(0, max(len(data), 1), step):
            chunk = base64.b64encode(data[i : i + step]).decode()
            code, _, err, problem = self.exec(
                ["python3", "-I", "-S", "-c", script, name, "ab" if i else "wb", chunk], timeout=30
            )
            if code != 0:
                raise SandboxError(
                    f"could not write {name}: {problem or err.decode(errors='replace')[-500:]}"
                )

    def read_file(self, name: str, max_bytes: int | None = None) -> bytes:
        """A regular file of the work dir, refused when it is a symlink, fifo, directory or too big."""
        _check_name(name)
        limit = max_bytes if max_bytes is not None else self.limits.max_output_mb * 1024 * 1024
        report, blobs = self._collect([name], limit, mode="collect", timeout=60)
        if report.get("rejected"):
            raise SandboxError("; ".join(report["rejected"]))
        if name not in blobs:
            raise FileNotFoundError(name)
        return blobs[name]

    def _collect(self, expect, max_bytes, mode, timeout, code: str | None = None, timeout_s: float = 0.0):
        cfg = {
            "mode": mode,
            "program": PROGRAM_NAME,
            "expect": list(expect),
            "max_bytes": max_bytes,
            "timeout_s": timeout_s,
            "tail_bytes": self.limits.tail_bytes,
            "threads": max(1, math.ceil(self.limits.cpus)),
            "code": base64.b64encode(code.encode()).decode() if code is not None else None,
        }
        arg = base64.b64encode(json.dumps(cfg).encode()).decode()
        # The runner sends at most max_bytes of files in all (the work dir tmpfs holds no more anyway).
        max_stdout = (1 << 20) + max_bytes
        # The runner reports the program's exit code itself; the exec's own code only says how it died.
        rc, out, err, problem = self.exec(
            ["python3", "-I", "-S", "-c", RUNNER_SRC, arg], timeout, max_stdout, want_code=False
        )
        return _parse_report(rc, out, err, problem, max_bytes)

    def kill(self) -> None:
        try:
            self.container.kill()
        except Exception:
            pass

    def remove(self) -> None:
        try:
            self.client.api.remove_container(self.id, force=True)
        except Exception as exc:
            if "No such container" not in str(exc) and "is already in progress" not in str(exc):
                raise


def _check_name(name: str) -> None:
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"not a plain file name in the work dir: {name!r}")


def _parse_report(rc, out: bytes, err: bytes, problem, max_bytes) -> tuple[dict, dict[str, bytes]]:
    """Split the runner's output into its JSON report and the named file bodies, trusting only the framing."""
    head, sep, body = out.partition(b"\n")
    try:
        report = json.loads(head) if sep else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        return {
            "runner_failed": True,
            "runner_problem": problem,
            "runner_stderr": err[-2000:].decode("utf-8", "replace"),
        }, {}
    blobs: dict[str, bytes] = {}
    offset = 0
    files = []
    for f in report.get("files", []):
        name, size = str(f.get("name", "")), int(f.get("bytes", -1))
        if size < 0 or offset + size > max_bytes or offset + size > len(body) or "/" in name or name in blobs:
            report.setdefault("rejected", []).append(f"{name}: malformed transfer from the sandbox")
            break
        blobs[name] = body[offset : offset + size]
        offset += size
        files.append(f)
    report["files"] = files
    return report, blobs


# --------------------------------------------------------------------------- classification

_EXC_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Iteration|Fault))(?::\s*(.*))?$"
)
_NO_MODULE = re.compile(r"No module named '([^']+)'")


def parse_traceback(stderr: str) -> tuple[str | None, str | None]:
    """(exception type, missing module) from the last exception line of a Python traceback."""
    for line in reversed(stderr.strip().splitlines()):
        m = _EXC_LINE.match(line.strip())
        if m:
            etype, msg = m.group(1).rsplit(".", 1)[-1], m.group(2) or ""
            mod = _NO_MODULE.search(msg) if etype in ("ModuleNotFoundError", "ImportError") else None
            return etype, mod.group(1) if mod else None
    return None, None


def _matches(expect: list[str], names: list[str]) -> bool:
    """Every expected name present; every glob matched at least once."""
    return all(any(fnmatch.fnmatchcase(n, p) for n in names) for p in expect)


def classify(report: dict, expect: list[str], oom_killed: bool) -> tuple[str, str | None, str | None]:
    """(status, error_type, missing_module) for one run."""
    etype, missing = parse_traceback(report.get("stderr_tail", ""))
    if report.get("runner_failed"):
        if report.get("runner_problem") == "timeout":
            return "timeout", None, None
        if oom_killed:
            return "memory", "OOMKilled", None
        return "error", etype or "SandboxKilled", missing
    if report.get("timed_out"):
        return "timeout", None, None
    code = report.get("exit_code")
    if (
        (etype or "").endswith("MemoryError")
        or (report.get("oom_kills") and report.get("signal") == "SIGKILL")
        or (code and oom_killed)
    ):
        return "memory", etype or "OOMKilled", None
    if code:
        return (
            "error",
            etype or (report.get("signal") and f"Signal.{report['signal']}") or f"Exit{code}",
            missing,
        )
    names = [f["name"] for f in report.get("files", [])]
    if report.get("rejected"):
        return "output_rejected", None, None
    if not names or not _matches(expect, names):
        return "no_output", None, None
    return "ok", None, None


# --------------------------------------------------------------------------- one program


def run_program(
    code: str,
    expect: list[str] | None = None,
    limits: ExecutionLimits | None = None,
    out_dir: str | Path | None = None,
    image: str | None = None,
    pool: SandboxPool | None = None,
) -> ExecutionResult:
    """Run `code` as /work/program.py in a fresh sandbox; copy the expected outputs to out_dir.

    expect holds file names or globs in the work dir (default "*.wav", for prompts that name no file).
    """
    expect = list(expect) if expect else ["*.wav"]
    for name in expect:
        _check_name(name)
    limits = limits or (pool.limits if pool else default_limits())
    max_bytes = min(limits.max_output_mb, limits.workdir_mb) * 1024 * 1024
    t0 = time.monotonic()
    box = pool.take(limits) if pool else Sandbox(limits, image)
    report: dict = {}
    try:
        inline = code if len(code.encode()) <= INLINE_CODE_MAX else None
        if inline is None:
            box.write_file(PROGRAM_NAME, code.encode())
        report, blobs = box._collect(
            expect, max_bytes, "run", limits.timeout_s + GRACE_S, code=inline, timeout_s=limits.timeout_s
        )
        oom_killed = False
        if (report.get("runner_failed") and report.get("runner_problem") != "timeout") or (
            report.get("signal") == "SIGKILL"
        ):
            # The OOM killer chose the program or the runner (or the program killed the runner with kill -1).
            oom_killed = bool(box.client.api.inspect_container(box.id)["State"].get("OOMKilled"))
    finally:
        if pool:
            pool.discard(box, clean=bool(report) and not report.get("runner_failed"))
        else:
            box.remove()
    status, etype, missing = classify(report, expect, oom_killed)
    files = []
    rejected = list(report.get("rejected", []))
    if out_dir is not None and status == "ok":
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for f in report.get("files", []) if status == "ok" else []:
        name = f["name"]
        if not any(fnmatch.fnmatchcase(name, p) for p in expect) or name.startswith("."):
            rejected.append(f"{name}: not an expected output")
            continue
        data = blobs[name]
        path = None
        if out_dir is not None:
            dest = Path(out_dir) / name
            dest.unlink(missing_ok=True)  # never write through a symlink planted on the host side
            dest.write_bytes(data)
            path = str(dest)
        files.append(
            OutputFile(name=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), path=path)
        )
    stderr_tail = report.get("stderr_tail", "")
    if report.get("runner_failed"):
        note = report.get("runner_problem") or "the in-sandbox runner was killed"
        stderr_tail = (stderr_tail + f"\n[sandbox: the run was cut short: {note}]").strip()
    return ExecutionResult(
        status=status,
        exit_code=report.get("exit_code"),
        wall_s=round(report.get("wall_s", time.monotonic() - t0), 4),
        stdout_tail=report.get("stdout_tail", ""),
        stderr_tail=stderr_tail[-limits.tail_bytes :],
        error_type=etype,
        missing_module=missing,
        files=files,
        rejected=rejected,
        image=box.image,
        signal=report.get("signal"),
        total_s=round(time.monotonic() - t0, 4),
    )


# --------------------------------------------------------------------------- warm pool


RESET_SRC = """
import os, signal, time
for _ in range(50):
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    if not any(d.isdigit() and int(d) != os.getpid() and os.stat('/proc/' + d).st_uid == os.getuid()
               and open('/proc/%s/stat' % d).read().rpartition(')')[2].split()[0] != 'Z'
               for d in os.listdir('/proc')):
        break
    time.sleep(0.02)
def wipe(d):
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o700)
            wipe(p)
            os.rmdir(p)
        else:
            os.unlink(p)
os.chmod('/work', 0o700)
for d in ('/work', '/tmp', '/dev/shm', '/dev/mqueue'):
    if os.path.isdir(d):
        wipe(d)
ipc = [f for f in ('shm', 'msg', 'sem') if len(open('/proc/sysvipc/' + f).read().splitlines()) > 1]
print('dirty ' + ' '.join(ipc) if ipc else 'clean')
"""


class SandboxPool:
    """Sandboxes started ahead of time for one set of limits.

    Start-up (create + start, 0.2-0.4 s here) dominates short programs, so the pool keeps `size`
    started and refills in the background; removal also happens off the caller's path. By default a
    sandbox runs one program and is removed. With reuse=N (opt-in) it runs up to N programs, and
    between two it is reset: every process of the program's uid killed, /work, /tmp, /dev/shm and
    /dev/mqueue emptied; one with System V IPC objects left, or whose run went wrong (the runner
    killed), is removed instead. That saves the engine's create/start/remove work on a busy machine.
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
        self.warm_takes = self.cold_takes = self.reused = 0
        remove_stale(self.client)
        Sandbox(self.limits, self.image, self.client).remove()  # fail now on a missing image
        for _ in range(size):
            self._work.submit(self._fill)
        atexit.register(self.close)

    def _fill(self) -> None:
        if self._closed:
            return
        try:
            box = Sandbox(self.limits, self.image, self.client)
        except Exception:
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
        try:
            box = self._ready.get_nowait()
            self.warm_takes += 1
        except queue.Empty:
            self.cold_takes += 1
            box = Sandbox(self.limits, self.image, self.client)
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
        ):
            try:
                code, out, _, _ = box.exec(["python3", "-I", "-S", "-c", RESET_SRC], timeout=10)
            except SandboxError:
                code, out = None, b""
            if code == 0 and out.strip() == b"clean" and not self._closed:
                self.reused += 1
                self._ready.put(box)
                return
        box.remove()
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


def remove_stale(client=None) -> int:
    """Remove sandboxes left by processes of this host that no longer exist (a crash, a kill -9)."""
    client = client or connect()
    host = socket.gethostname()
    removed = 0
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        owner = c.get("Labels", {}).get(f"{LABEL}.owner", "")
        h, _, pid = owner.rpartition(":")
        if h != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            client.api.remove_container(c["Id"], force=True)
            removed += 1
        except Exception:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
