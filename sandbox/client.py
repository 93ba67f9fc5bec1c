"""Run untrusted Python in a throw-away Docker container and say exactly what happened.

`run_program` runs one program in a fresh (or pooled) sandbox and classifies the outcome. The parts:
engine.py (client, errors, stale clean-up), container.py (one hardened container, exec, the runner's
framing), runner.py + runner_files.py (inside: run, kill, normalise, collect), normalise.py (inside: decode and re-encode
audio outputs), outcome.py (status from the exit code), pool.py (sandboxes started ahead of time).
Those names stay importable from here: `from sandbox.client import run_program, SandboxPool`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import time
from pathlib import Path

from audioprobe.schema import ExecutionLimits, ExecutionResult, OutputFile
from sandbox.container import (  # noqa: F401 - the public API of the package
    GRACE_S,
    INLINE_CODE_MAX,
    PROGRAM_NAME,
    PROGRAM_UID,
    RUNNER_UID,
    Sandbox,
    check_name,
    clean_text,
)
from sandbox.engine import (  # noqa: F401
    LABEL,
    EngineUnavailable,
    ImageMissing,
    SandboxError,
    connect,
    default_limits,
    image_name,
    remove_stale,
)
from sandbox.outcome import classify, parse_traceback  # noqa: F401
from sandbox.pool import SandboxPool, shared_pool  # noqa: F401

log = logging.getLogger(__name__)


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
        check_name(name)
    limits = limits or (pool.limits if pool else default_limits())
    max_bytes = min(limits.max_output_mb, limits.workdir_mb) * 1024 * 1024
    t0 = time.monotonic()
    if pool is None:
        remove_stale(force_check=False)  # a pool does it when it starts
    box = pool.take(limits) if pool else Sandbox(limits, image)
    report: dict = {}
    try:
        inline = code if len(code.encode()) <= INLINE_CODE_MAX else None
        if inline is None:
            box.write_file(PROGRAM_NAME, code.encode())
        report, blobs = box.runner(
            "run", limits.timeout_s + GRACE_S, expect=expect, max_bytes=max_bytes, code=inline
        )
        oom_killed = False
        if (report.get("runner_failed") and report.get("runner_problem") != "timeout") or (
            report.get("signal") == "SIGKILL"
        ):
            # The OOM killer chose the program or the runner.
            oom_killed = bool(box.client.api.inspect_container(box.id)["State"].get("OOMKilled"))
    finally:
        if report.get("left_behind"):  # the runner could not remove all of it: never reuse that container
            log.warning("sandbox %s: the program left behind %s", box.id[:12], report["left_behind"])
        clean = bool(report) and not report.get("runner_failed") and "runner_error" not in report
        _hand_back(box, pool, clean=clean and not report.get("left_behind"))
    if "runner_error" in report:
        raise SandboxError(f"the sandbox's runner failed: {report['runner_error']}")
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
        normalised=list(report.get("normalised", [])),
        image=box.image,
        signal=report.get("signal"),
        total_s=round(time.monotonic() - t0, 4),
    )


def _hand_back(box: Sandbox, pool: SandboxPool | None, clean: bool) -> None:
    """Pool or remove; a failed removal is logged, never raised over the run's own result or error."""
    if pool:
        pool.discard(box, clean=clean)
        return
    try:
        box.remove()
    except SandboxError as exc:
        log.error("%s (its expiry label lets `audioprobe sandbox gc` remove it)", exc)
