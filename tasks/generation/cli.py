"""`audioprobe llm ask | serve | fetch`."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from audioprobe.cli import UserError, emit

ASK_FIELDS = (
    "model",
    "response_id",
    "cached",
    "extraction_status",
    "code",
    "raw_text",
    "tokens_in",
    "tokens_out",
    "latency_s",
    "cost",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    llm = subparsers.add_parser("llm", help="ask an LLM, serve or fetch the embedded model")
    sub = llm.add_subparsers(dest="llm_command", required=True)

    ask = sub.add_parser("ask", help="send one prompt file to a model and print the answer as JSON")
    ask.add_argument(
        "--model", required=True, help="a litellm model string, or `local` for the embedded model"
    )
    ask.add_argument("--prompt-file", required=True, type=Path, help="a text file holding the prompt")
    ask.add_argument("--sample", type=int, default=0, help="sample index (distinct store entry and seed)")
    ask.add_argument(
        "--keep-server",
        action="store_true",
        help="leave the local server running when this command started it",
    )
    ask.set_defaults(func=cmd_ask)

    serve = sub.add_parser("serve", help="serve the embedded model in the foreground until Ctrl-C")
    serve.add_argument("--model", default=None, help="qwen2.5-coder-1.5b (default) or qwen2.5-coder-0.5b")
    serve.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: settings.local_port)")
    serve.set_defaults(func=cmd_serve)

    fetch = sub.add_parser("fetch", help="download, assemble and verify the embedded model file(s)")
    fetch.add_argument(
        "--model",
        action="append",
        default=None,
        help="model key; repeatable; default the configured local_model",
    )
    fetch.set_defaults(func=cmd_fetch)

    smoke = sub.add_parser("smoke", help="start the embedded model and ask it for one token (set-up's check)")
    smoke.add_argument("--model", default=None, help="model key; default the configured local_model")
    smoke.add_argument("--port", type=int, default=None, help="default: a free port, so a running server is not reused")
    smoke.set_defaults(func=cmd_smoke)


def cmd_ask(args: argparse.Namespace) -> int:
    from audioprobe.settings import get_settings
    from tasks.generation import llm, local_model, local_server
    from tasks.generation.store import ResponseStore

    try:
        text = args.prompt_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read prompt file: {exc}") from None
    if not text.strip():
        raise UserError(f"prompt file {args.prompt_file} is empty")
    settings = get_settings()
    store = ResponseStore(settings.responses_dir)
    target, _, _, key = llm.request_of(text, args.model, args.sample, settings)

    gen = store.get(key)  # a stored answer never needs the server, or even its model file
    server = None
    if gen is None:
        if target.local:
            try:
                server = local_server.LocalServer(settings.local_model, settings).start()
            except local_model.LocalModelError as exc:
                raise UserError(str(exc)) from None
        try:
            gen = llm.generate(
                text, args.model, args.sample, settings=settings, store=store, raise_transient=False
            )
        finally:
            if server is not None and server.owned and not args.keep_server:
                server.stop()
    out = {f: getattr(gen, f) for f in ASK_FIELDS}
    out |= {
        "extraction_note": gen.extraction_note,
        "finish_reason": gen.finish_reason,
        "error_kind": gen.error_kind,
        "error": gen.error,
    }
    emit(out)
    return 1 if gen.error else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from audioprobe.settings import get_settings
    from tasks.generation import local_model, local_server
    settings = get_settings()
    key = args.model or settings.local_model
    try:
        server = local_server.LocalServer(key, settings, port=args.port).start()
    except local_model.LocalModelError as exc:
        raise UserError(str(exc)) from None
    info = {
        "serving": key,
        "litellm_model": server.litellm_model,
        "api_base": server.base,
        "owned": server.owned,
        "pid": server.proc.pid if server.proc else None,
        "log": str(server.log_path),
    }
    emit(info)
    sys.stdout.flush()
    if not server.owned:
        print("audioprobe: a server for this model already answers there; leaving it be", file=sys.stderr)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
        print(f"audioprobe: the server exited; see {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def cmd_fetch(args: argparse.Namespace) -> int:
    from audioprobe.settings import get_settings
    from tasks.generation import local_model
    settings = get_settings()
    keys = args.model or [settings.local_model]
    done = {}
    for key in keys:
        try:
            path = local_model.fetch(key, settings)
        except local_model.LocalModelError as exc:
            raise UserError(str(exc)) from None
        done[key] = {"path": str(path), "sha256": local_model.spec(key).sha256, "bytes": path.stat().st_size}
    emit({"models": done})
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """A server of our own (never one already running), one completion, then stop: what set-up trusts."""
    import socket

    from audioprobe.settings import get_settings
    from tasks.generation import local_model, local_server
    settings = get_settings()
    key = args.model or settings.local_model
    port = args.port
    if port is None:
        with socket.socket() as probe:
            probe.bind((settings.local_host, 0))
            port = probe.getsockname()[1]
    t0 = time.monotonic()
    try:
        with local_server.LocalServer(key, settings, port=port) as server:
            emit({"model": key, "api_base": server.base, "completion": "ok", "seconds": round(time.monotonic() - t0, 1)})
    except local_model.LocalModelError as exc:
        raise UserError(f"the embedded model {key} failed its smoke test: {exc}") from None
    return 0
