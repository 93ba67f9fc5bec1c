"""One hardened container and the exec channel into it.

`Sandbox` is one container (all hardening lives in `create_kwargs`), kept alive by `sleep infinity`
under docker-init so that its tmpfs work dir survives until outputs are read: Docker's archive API
does not see tmpfs mounts, so everything goes in and out through exec. `Sandbox.runner` runs
`sandbox/runner.py` (passed as `python3 -c`, so it is never out of step with this file) and parses
its framed report.

Uids: init, `sleep` and the runner run as root holding only CAP_SETUID and CAP_SETGID (an exec gets
the capabilities of the container's user, so that user must be root); the runner runs the program as
10001, which holds none. The program can signal neither PID 1 nor the runner (no
uid of theirs is its own), so it can neither end the container early nor stop the runner's clock,
and the runner kills whatever the program left behind by its uid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import threading
import time
from pathlib import Path
from typing import Any

from audioprobe.schema import ExecutionLimits
from sandbox.engine import (
    ImageMissing,
    SandboxError,
    connect,
    default_limits,
    image_name,
    owner_labels,
)
from sandbox.seccomp import PROFILE_JSON, PROFILE_SHA256

PROGRAM_UID = "10001:10001"
RUNNER_UID = "0:0"
INIT_UID = "0:0"
WORK = "/work"
PROGRAM_NAME = "program.py"
HERE = Path(__file__).resolve().parent
# One program, passed as `python3 -c`: the work dir's file checks, then the runner that uses them.
RUNNER_SRC = (HERE / "runner_files.py").read_text() + "\n\n" + (HERE / "runner.py").read_text()
NORMALISE_SRC = (HERE / "normalise.py").read_text()
# In execution cache keys: what runs the program inside, and the syscalls it may make.
PROTOCOL = hashlib.sha256((RUNNER_SRC + NORMALISE_SRC + PROFILE_JSON).encode()).hexdigest()[:12]
SECCOMP_LABEL = "audioprobe.sandbox.seccomp-sha256"
# Memory above the program's limit: the runner's own interpreter, the clean-up and the report need it
# after a program that filled its limit. What a program can leave behind without a process (tmpfs,
# /dev/shm, System V shm, message queues) is capped below, and removed after the run.
RUNNER_MARGIN_MB = 64
IPC_MSG_QUEUES = 16  # System V message queues, 16 KiB each at most (msgmnb)
IPC_SEM_SETS = 32
INLINE_CODE_MAX = 64 * 1024  # larger programs are written in chunks first (one exec argument is <= 128 KiB)
NORMALISE_TIMEOUT_S = 20.0  # decoding and re-encoding the outputs, inside the container
GRACE_S = 15.0 + NORMALISE_TIMEOUT_S  # host's margin: start-up, normalising, output transfer
WRITE_FILE_TIMEOUT_S = 60.0  # a whole write_file, all chunks
REPORT_MAX_BYTES = 256 * 1024  # the runner's JSON line (its lists are capped inside too)
TMPFS_INODES = 4096
POOL_IDLE_S = 600.0  # a pooled container waiting longer than this is replaced (and expires)


def create_kwargs(image: str, limits: ExecutionLimits, expires_in_s: float) -> dict[str, Any]:
    """Every hardening option in one place."""
    from docker.types import Ulimit

    from audioprobe.settings import get_settings

    mb = 1024 * 1024
    tmpfs_opts = f"rw,nosuid,nodev,noexec,nr_inodes={TMPFS_INODES}"
    kwargs = dict(
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
        # Only the runner (root in the container, no other capability) uses these, to start the
        # program as 10001; a process that becomes 10001 loses them, and no-new-privileges keeps it so.
        cap_add=["SETUID", "SETGID"],
        security_opt=["no-new-privileges", f"seccomp={PROFILE_JSON}"],
        ipc_mode="private",
        pids_limit=limits.pids,
        mem_limit=(limits.memory_mb + RUNNER_MARGIN_MB) * mb,
        memswap_limit=(limits.memory_mb + RUNNER_MARGIN_MB) * mb,  # equal: no swap on top
        nano_cpus=int(limits.cpus * 1e9),
        ulimits=[
            Ulimit(name="fsize", soft=limits.workdir_mb * mb, hard=limits.workdir_mb * mb),
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="core", soft=0, hard=0),
        ],
        hostname="sandbox",
        log_config={"type": "none"},
        labels={**owner_labels(expires_in_s), SECCOMP_LABEL: PROFILE_SHA256},
        detach=True,
    )
    runtime = get_settings().sandbox_runtime
    if runtime:
        kwargs["runtime"] = runtime
    else:  # runc: the host kernel's IPC namespace limits (gVisor keeps IPC in its own kernel)
        kwargs["sysctls"] = ipc_sysctls(limits)
    return kwargs


def ipc_sysctls(limits: ExecutionLimits) -> dict[str, str]:
    """The container's IPC namespace limits: System V shared memory in all at most tmp_mb (like
    /dev/shm), few message queues and semaphore sets, few POSIX queues."""
    mb = 1024 * 1024
    return {
        "kernel.shmmax": str(limits.tmp_mb * mb),
        "kernel.shmall": str(limits.tmp_mb * mb // 4096),
        "kernel.shmmni": "64",
        "kernel.msgmni": str(IPC_MSG_QUEUES),
        "kernel.msgmnb": "16384",
        "kernel.sem": f"250 {250 * IPC_SEM_SETS} 32 {IPC_SEM_SETS}",
        "fs.mqueue.queues_max": "16",
    }


class Sandbox:
    """One started, hardened container: exec, write_file, read_file, then remove (also on `with`).

    Any process's `remove_stale` may remove it after `expires_in_s` (default: one run's timeout plus
    the grace and a minute); a sandbox kept open longer must say so.
    """

    def __init__(
        self,
        limits: ExecutionLimits | None = None,
        image: str | None = None,
        client=None,
        expires_in_s: float | None = None,
    ):
        import docker

        self.limits = limits or default_limits()
        self.image = image_name(image)
        self.client = client or connect()
        self.started = time.monotonic()
        expires = expires_in_s if expires_in_s is not None else self.limits.timeout_s + GRACE_S + 60
        try:
            self.container = self.client.containers.create(**create_kwargs(self.image, self.limits, expires))
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
        workdir: str = WORK,
    ) -> tuple[int | None, bytes, bytes, str | None]:
        """Run cmd in the container; returns (exit code, stdout, stderr, problem).

        problem is "timeout" when the wall clock ran out and "too_much_output" past max_stdout; in both
        cases the container has been killed (its processes with it) and exit code is None.
        """
        import docker

        api = self.client.api
        try:
            eid = api.exec_create(
                self.id, cmd, user=user, workdir=workdir, stdout=True, stderr=True, stdin=False
            )["Id"]
        except docker.errors.APIError as exc:  # e.g. the container is gone
            raise SandboxError(f"cannot exec in the sandbox: {exc.explanation or exc}") from None
        out, err = bytearray(), bytearray()
        state: dict[str, Any] = {}

        def pump() -> None:
            try:
                for stream, data in exec_frames(api, eid):
                    if stream == STDOUT:
                        out.extend(data)
                        if len(out) > max_stdout:
                            state["problem"] = "too_much_output"
                            return
                    elif len(err) < 1 << 20:
                        err.extend(data)
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

    def write_file(self, name: str, data: bytes, timeout: float = WRITE_FILE_TIMEOUT_S) -> None:
        """Write a file in the work dir (a tmpfs, so through exec, in chunks below the argument limit)."""
        check_name(name)
        script = "import sys,base64;open(sys.argv[1],sys.argv[2]).write(base64.b64decode(sys.argv[3]))"
        step = 64 * 1024  # 88 KiB in base64: one exec argument must stay under 128 KiB
        deadline = time.monotonic() + timeout
        for i in range(0, max(len(data), 1), step):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError(f"could not write {name}: over {timeout:g} s")
            chunk = base64.b64encode(data[i : i + step]).decode()
            code, _, err, problem = self.exec(
                ["python3", "-I", "-S", "-c", script, name, "ab" if i else "wb", chunk], timeout=left
            )
            if code != 0:
                raise SandboxError(
                    f"could not write {name}: {problem or err.decode(errors='replace')[-500:]}"
                )

    def read_file(self, name: str, max_bytes: int | None = None) -> bytes:
        """A regular file of the work dir, refused when it is a symlink, fifo, directory or too big."""
        check_name(name)
        limit = max_bytes if max_bytes is not None else self.limits.max_output_mb * 1024 * 1024
        report, blobs = self.runner("collect", timeout=60, expect=[name], max_bytes=limit)
        if report.get("runner_failed"):
            raise SandboxError(f"could not read {name}: {report.get('runner_error') or report.get('runner_problem')}")
        if report.get("rejected"):
            raise SandboxError("; ".join(report["rejected"]))
        if name not in blobs:
            raise FileNotFoundError(name)
        return blobs[name]

    def runner(
        self,
        mode: str,
        timeout: float,
        expect: list[str] = (),
        max_bytes: int = 0,
        code: str | None = None,
    ) -> tuple[dict, dict[str, bytes]]:
        """Run sandbox/runner.py in one mode (run, collect, reset); its report and the files it sent."""
        cfg = {
            "mode": mode,
            "program": PROGRAM_NAME,
            "expect": list(expect),
            "max_bytes": max_bytes,
            "timeout_s": self.limits.timeout_s,
            "normalise_timeout_s": NORMALISE_TIMEOUT_S,
            "tail_bytes": self.limits.tail_bytes,
            "threads": max(1, math.ceil(self.limits.cpus)),
            "code": base64.b64encode(code.encode()).decode() if code is not None else None,
            "normaliser": base64.b64encode(NORMALISE_SRC.encode()).decode() if mode == "run" else None,
        }
        arg = base64.b64encode(json.dumps(cfg).encode()).decode()
        # The runner sends at most max_bytes of files in all (the work dir tmpfs holds no more anyway).
        max_stdout = REPORT_MAX_BYTES + 1 + max_bytes
        # The runner reports the program's exit code itself; the exec's own code only says how it died.
        rc, out, err, problem = self.exec(
            ["python3", "-I", "-S", "-c", RUNNER_SRC, arg],
            timeout,
            max_stdout,
            user=RUNNER_UID,
            want_code=False,
            workdir="/",  # root here has no DAC override: it cannot enter the program's 0700 work dir
        )
        return parse_report(out, err, problem, max_bytes)

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
                raise SandboxError(f"could not remove sandbox {self.id[:12]}: {exc}") from None


STDOUT, STDERR = 1, 2


def exec_frames(api, exec_id: str):
    """Start an exec and yield its output as (stream, bytes) frames of Docker's multiplexed stream.

    docker-py's `exec_start` reads the frames from the raw socket, behind the buffer http.client read
    the response headers through: when the first frames arrive with the headers (a busy machine, a fast
    program) they sit in that buffer and are skipped, and the stream falls out of step ("247 is not a
    valid stream", docker/docker-py#3160) or silently loses output. This reads through that buffer."""
    response = api._post_json(api._url("/exec/{0}/start", exec_id), data={"Tty": False, "Detach": False},
                              headers={"Connection": "Upgrade", "Upgrade": "tcp"}, stream=True)
    try:
        api._raise_for_status(response)
        buffered = response.raw._fp.fp
        api._disable_socket_timeout(buffered.raw)  # a quiet program is no reason to give up on it
        yield from read_frames(buffered)
    finally:
        response.close()


def read_frames(stream):
    """(stream id, payload) of each 8-byte-header frame, until end of stream."""
    while len(header := stream.read(8)) == 8:
        kind, size = struct.unpack(">BxxxL", header)
        if kind not in (STDOUT, STDERR):
            raise SandboxError(f"the exec stream is out of step: frame type {kind}")
        data = stream.read(size) if size else b""
        yield kind, data
        if len(data) < size:
            return


def check_name(name: str) -> None:
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"not a plain file name in the work dir: {name!r}")


def clean_text(value: object) -> str:
    """A str that any JSON encoder takes: lone surrogates (from non-UTF-8 names) become '?'."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def parse_report(out: bytes, err: bytes, problem, max_bytes) -> tuple[dict, dict[str, bytes]]:
    """Split the runner's output into its JSON report and the named file bodies, trusting only the framing."""
    # Views, not copies: the host holds the exec's output and one copy of each file, no more.
    nl = out.find(b"\n", 0, REPORT_MAX_BYTES + 1)
    sep = nl >= 0
    head = bytes(out[:nl]) if sep else out[: REPORT_MAX_BYTES + 1]
    body = memoryview(out)[nl + 1 :] if sep else memoryview(b"")
    report = None
    if sep and len(head) <= REPORT_MAX_BYTES:
        try:
            report = json.loads(head)
        except ValueError:
            report = None
    if not isinstance(report, dict):
        return {
            "runner_failed": True,
            "runner_problem": problem or ("report_too_large" if len(head) > REPORT_MAX_BYTES else None),
            "runner_stderr": err[-2000:].decode("utf-8", "replace"),
        }, {}
    for key in ("stdout_tail", "stderr_tail", "runner_error"):
        if key in report:
            report[key] = clean_text(report[key])
    report["rejected"] = [clean_text(r) for r in report.get("rejected", [])][:51]
    report["normalised"] = [clean_text(r) for r in report.get("normalised", [])][:51]
    blobs: dict[str, bytes] = {}
    offset = 0
    files = []
    for f in report.get("files", []):
        name, size = str(f.get("name", "")), int(f.get("bytes", -1))
        if (
            size < 0
            or offset + size > max_bytes
            or offset + size > len(body)
            or "/" in name
            or name in blobs
            or name != clean_text(name)
        ):
            report["rejected"].append(f"{clean_text(name)}: malformed transfer from the sandbox")
            break
        blobs[name] = bytes(body[offset : offset + size])
        offset += size
        files.append(f)
    report["files"] = files
    return report, blobs
