"""`audioprobe sandbox build|run|status|gc` and `audioprobe gc` (audio store and stale sandboxes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from audioprobe.cli import UserError, emit


def register(subparsers) -> None:
    parser = subparsers.add_parser("sandbox", help="the Docker sandbox that runs LLM-written programs")
    sub = parser.add_subparsers(dest="sandbox_command", required=True)

    build = sub.add_parser("build", help="build the sandbox image (skipped when it is up to date)")
    build.add_argument("--force", action="store_true", help="rebuild even when the image is current")
    build.add_argument("--base", help="base image, or 'debootstrap' for a Debian rootfs made here")
    build.set_defaults(func=_build)

    status = sub.add_parser("status", help="whether the engine answers and the image is current")
    status.set_defaults(func=_status)

    run = sub.add_parser("run", help="run one Python program in the sandbox and print what happened")
    run.add_argument("program", type=Path, help="the Python file to run")
    run.add_argument(
        "--expect",
        action="append",
        metavar="NAME",
        help="an output file name or glob in the work dir (repeatable; default *.wav)",
    )
    run.add_argument("--timeout", type=float, metavar="S", help="wall-clock limit in seconds")
    run.add_argument("--memory", type=int, metavar="MB", help="memory limit (swap included)")
    run.add_argument("--out", type=Path, metavar="DIR", help="copy the accepted outputs here")
    run.set_defaults(func=_run)

    gc = sub.add_parser("gc", help="remove sandbox containers whose owner died or whose time is up")
    gc.set_defaults(func=_sandbox_gc)

    store_gc = subparsers.add_parser("gc", help="collect the audio store (and stale sandboxes)")
    store_gc.add_argument("--keep-runs", type=int, metavar="N", help="also remove all but the N newest runs")
    store_gc.add_argument("--max-mb", type=int, metavar="MB", help="size cap of the audio store")
    store_gc.add_argument("--dry-run", action="store_true", help="say what would be removed")
    store_gc.set_defaults(func=_gc)


def _guard(fn):
    from sandbox.client import SandboxError

    try:
        return fn()
    except SandboxError as exc:
        raise UserError(str(exc)) from None


def _build(args: argparse.Namespace) -> int:
    from sandbox.image import build_image

    emit(_guard(lambda: build_image(force=args.force, base=args.base)))
    return 0


def _status(args: argparse.Namespace) -> int:
    from sandbox.image import image_status

    emit(_guard(image_status))
    return 0


def _sandbox_gc(args: argparse.Namespace) -> int:
    from sandbox.engine import remove_stale

    emit({"containers_removed": _guard(remove_stale)})
    return 0


def _gc(args: argparse.Namespace) -> int:
    from sandbox.engine import EngineUnavailable, remove_stale
    from tasks import audio_store

    if args.keep_runs is not None and args.keep_runs < 0:
        raise UserError("--keep-runs must be 0 or more")
    result = audio_store.collect(keep_runs=args.keep_runs, max_mb=args.max_mb, dry_run=args.dry_run)
    try:
        result["containers_removed"] = 0 if args.dry_run else remove_stale()
    except EngineUnavailable:
        result["containers_removed"] = None  # no engine, no containers to collect
    emit(result)
    return 0


def _run(args: argparse.Namespace) -> int:
    from audioprobe.settings import get_settings
    from sandbox.client import run_program

    try:
        code = args.program.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {args.program}: {exc.strerror}") from None
    changes = {}
    if args.timeout is not None:
        changes["timeout_s"] = args.timeout
    if args.memory is not None:
        changes["memory_mb"] = args.memory
    limits = get_settings().limits.model_copy(update=changes)
    try:
        result = _guard(lambda: run_program(code, expect=args.expect, limits=limits, out_dir=args.out))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    emit(result)
    return 0
