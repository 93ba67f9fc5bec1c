"""The listening page's HTTP server: 127.0.0.1 only, stdlib http.server, no external asset.

    GET  /                         the page
    GET  /api/trials?rater=ID      the trials (no answer given away) and the trials ID already answered
    GET  /clip/<trial>/<gen|ref>   a trial's clip, looked up by trial id: never a path from the request
    POST /api/rate                 one answer (JSON, at most MAX_BODY bytes)

Requests naming another host (DNS rebinding) or posted from another origin are refused.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tasks.listening.page import PAGE
from tasks.listening.ratings import RATER, TRIAL_ID, RatingError, RatingLog, check, parse_answer
from tasks.listening.trials import Trial
from tasks.records import Run

HOST = "127.0.0.1"
MAX_BODY = 4096
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "media-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class StudyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Run, trials: list[Trial], port: int):
        self.store = store
        self.root = store.dir.resolve()
        self.trials = {t.id: t for t in trials}
        self.order = [t.id for t in trials]
        self.log = RatingLog(store)
        super().__init__((HOST, port), Handler)

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(
            sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)
        ):  # a closed tab is no error
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def clip(self, trial_id: str, which: str) -> Path:
        if not TRIAL_ID.match(trial_id) or which not in ("gen", "ref"):
            raise RatingError("clip: expected /clip/<trial id>/gen or /clip/<trial id>/ref")
        trial = self.trials.get(trial_id)
        if trial is None:
            raise RatingError(f"clip: {trial_id!r} is not a trial of this run", 404)
        path = (self.root / (trial.gen_path if which == "gen" else trial.ref_path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():  # a symlink out of the run, or gone
            raise RatingError(f"clip: {trial_id}/{which} is not a file inside the run", 404)
        return path


class Handler(BaseHTTPRequestHandler):
    server: StudyServer
    protocol_version = "HTTP/1.1"
    server_version = "audioprobe-listen"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # quiet: the terminal shows progress, not requests
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        for k, v in HEADERS.items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, exc: RatingError) -> None:
        self._json(exc.status, {"error": str(exc)})

    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}")

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._error(RatingError("unknown Host header", 421))
        url = urlsplit(self.path)
        try:
            if url.path == "/":
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            if url.path == "/api/trials":
                rater = (parse_qs(url.query).get("rater") or [""])[0]
                if not RATER.match(rater):
                    raise RatingError("rater id: 1-40 letters, digits, '.', '_' or '-'")
                trials = [self.server.trials[i].public() for i in self.server.order]
                return self._json(
                    200,
                    {
                        "run": self.server.store.run_id,
                        "trials": trials,
                        "answered": self.server.log.answered(rater),
                    },
                )
            parts = url.path.split("/")
            if len(parts) == 4 and parts[1] == "clip":
                path = self.server.clip(parts[2], parts[3])
                return self._send(200, path.read_bytes(), "audio/wav")
            raise RatingError(f"no such page: {url.path[:80]}", 404)
        except RatingError as exc:
            self._error(exc)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        try:
            if not self._host_ok():
                raise RatingError("unknown Host header", 421)
            origin = self.headers.get("Origin")
            if origin and origin.rstrip("/") not in (
                self.server.url.rstrip("/"),
                f"http://localhost:{self.server.server_address[1]}",
            ):
                raise RatingError("cross-origin post refused", 403)
            if urlsplit(self.path).path != "/api/rate":
                raise RatingError("no such endpoint", 404)
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                raise RatingError("Content-Type must be application/json", 415)
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise RatingError("Content-Length required", 411) from None
            if not 0 < length <= MAX_BODY:
                raise RatingError(f"body of {length} bytes: at most {MAX_BODY}", 413)
            answer = parse_answer(self.rfile.read(length))
            trial = check(answer, self.server.trials)
            rating, new = self.server.log.add(answer, trial)
            self._json(200, {"status": "saved" if new else "duplicate", "trial": rating.trial})
        except RatingError as exc:
            self.close_connection = True  # a body left unread would be taken for the next request
            self._error(exc)


def serve(store: Run, trials: list[Trial], port: int = 8470) -> tuple[StudyServer, threading.Thread]:
    """Start the server in a thread; the caller stops it with server.shutdown()."""
    server = StudyServer(store, trials, port)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="listen", daemon=True)
    thread.start()
    return server, thread
