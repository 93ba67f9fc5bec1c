"""The listening page's HTTP server: 127.0.0.1 only, stdlib http.server, no external asset.

    GET  /                              the page
    GET  /api/trials?rater=ID           the trials (no answer given away) and the trials ID already answered
    GET  /clip/<trial>/gen              a trial's generated clip, looked up by trial id: never a path
    GET  /clip/<trial>/ref?rater=ID     its reference; for a 5-way trial only once ID posted its label
    POST /api/label                     the blind label of a 5-way trial (JSON)
    POST /api/rate                      one answer (JSON, at most MAX_BODY bytes)

The server enforces its own rules, not the page: ids must match in full; any parse failure is a 400;
every connection has a timeout and at most MAX_CONNECTIONS are served at once; a clip is served only
when it is a regular file with one link inside the run (opened without following links, checked after
opening, its hash the one drawn); trial ids are opaque (a keyed hash), so a repeat looks like any other
trial. Requests naming another host (DNS rebinding) or posted from another origin are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from audioprobe import stored
from audioprobe.listening.page import PAGE
from audioprobe.listening.ratings import (
    RATER,
    TRIAL_ID,
    BlindLabel,
    RatingError,
    RatingLog,
    check,
    parse_answer,
)
from audioprobe.listening.trials import Trial
from tasks.records import Run

HOST = "127.0.0.1"
MAX_BODY = 4096
CONNECTION_TIMEOUT_S = 10.0  # a request (or an idle keep-alive) taking longer is dropped
MAX_CONNECTIONS = 32  # served at once; more are closed at once
MAX_CLIP_BYTES = 256 * 2**20
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "media-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class StudyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, run: Run, trials: list[Trial], port: int):
        self.run = run
        self.root = run.dir.resolve()
        key = study_key(run)
        self.public = {t.id: hmac.new(key, t.id.encode(), hashlib.sha256).hexdigest()[:12] for t in trials}
        self.trials = {self.public[t.id]: t for t in trials}  # by public id
        self.order = [self.public[t.id] for t in trials]
        self.log = RatingLog(run)
        self.blind = BlindLabels(run)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((HOST, port), Handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed, no thread
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(
            sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, TimeoutError)
        ):  # a closed tab is no error
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def trial(self, public_id: str) -> Trial:
        if not TRIAL_ID.fullmatch(public_id):
            raise RatingError("trial id: 12 hex digits")
        trial = self.trials.get(public_id)
        if trial is None:
            raise RatingError(f"{public_id!r} is not a trial of this run", 404)
        return trial

    def clip(self, public_id: str, which: str, rater: str = "") -> bytes:
        if which not in ("gen", "ref"):
            raise RatingError("clip: expected /clip/<trial id>/gen or /clip/<trial id>/ref")
        trial = self.trial(public_id)
        if which == "ref" and trial.question == "label":
            if not RATER.fullmatch(rater):
                raise RatingError("the reference of a 5-way trial needs ?rater=ID", 403)
            if self.blind.get(rater, trial.id) is None and trial.id not in self.log.answered(rater):
                raise RatingError("the reference of a 5-way trial is played after its label is posted", 403)
        rel, sha = (trial.gen_path, trial.gen_sha256) if which == "gen" else (trial.ref_path, trial.ref_sha256)
        data = read_private_file(self.root, self.root / rel)
        if data is None or hashlib.sha256(data).hexdigest() != sha:
            raise RatingError(f"clip: {public_id}/{which} is not a file of the run", 404)
        return data


def read_private_file(root: Path, path: Path) -> bytes | None:
    """The bytes of a regular file with one link whose real path is inside root, else None.

    Opened without following a final link, then checked on the open descriptor: a symlink, a hard link
    (of a file anywhere on the host), a fifo or a directory swapped in between a check and the read
    cannot get through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > MAX_CLIP_BYTES:
            return None
        if not real.is_relative_to(root):  # a directory above the file was a link out of the run
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_CLIP_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def study_key(run: Run) -> bytes:
    """The run's secret for opaque trial ids, made once: ids stay stable across restarts."""
    path = run.dir / "listening" / "study.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    return bytes.fromhex(path.read_text().strip())


class BlindLabels:
    """Labels of 5-way trials chosen before the reference was heard, one JSON line each in
    listening/blind_labels.jsonl: the first one of a rater for a trial is the one kept."""

    def __init__(self, run: Run):
        self.path = run.dir / "listening" / "blind_labels.jsonl"
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], str] = {}
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    row = stored.load(BlindLabel, line)
                    self._kept.setdefault((row.rater, row.trial), row.label)
                except (ValueError, AttributeError):
                    continue  # a line torn by a crash

    def get(self, rater: str, trial_id: str) -> str | None:
        return self._kept.get((rater, trial_id))

    def add(self, rater: str, trial_id: str, label: str) -> str:
        """The kept label (the first posted)."""
        with self._lock:
            kept = self._kept.get((rater, trial_id))
            if kept is None:
                kept = self._kept[(rater, trial_id)] = label
                with open(self.path, "a") as f:
                    f.write(stored.dumps(BlindLabel(rater=rater, trial=trial_id, label=label)) + "\n")
            return kept


class Handler(BaseHTTPRequestHandler):
    server: StudyServer
    protocol_version = "HTTP/1.1"
    server_version = "audioprobe-listen"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT_S  # the socket's: a half-sent request holds no thread for long

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
            rater = (parse_qs(url.query, max_num_fields=4).get("rater") or [""])[0]
            if url.path == "/api/trials":
                if not RATER.fullmatch(rater):
                    raise RatingError("rater id: 1-40 letters, digits, '.', '_' or '-'")
                srv = self.server
                trials = [{**srv.trials[i].public(), "id": i} for i in srv.order]
                answered = [srv.public[t] for t in srv.log.answered(rater) if t in srv.public]
                return self._json(200, {"run": srv.run.run_id, "trials": trials, "answered": answered})
            parts = url.path.split("/")
            if len(parts) == 4 and parts[1] == "clip":
                return self._send(200, self.server.clip(parts[2], parts[3], rater), "audio/wav")
            raise RatingError(f"no such page: {url.path[:80]}", 404)
        except RatingError as exc:
            self._error(exc)
        except ValueError as exc:  # a query string past parse_qs's limits, or otherwise malformed
            self._error(RatingError(f"malformed request: {str(exc)[:100]}"))

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
            endpoint = urlsplit(self.path).path
            if endpoint not in ("/api/rate", "/api/label"):
                raise RatingError("no such endpoint", 404)
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                raise RatingError("Content-Type must be application/json", 415)
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise RatingError("Content-Length required", 411) from None
            if not 0 < length <= MAX_BODY:
                raise RatingError(f"body of {length} bytes: at most {MAX_BODY}", 413)
            body = self.rfile.read(length)
            if endpoint == "/api/label":
                return self._blind_label(parse_answer(body, BlindLabel))
            answer = parse_answer(body)
            trial = check(answer, self.server.trials)
            if trial.question == "label":
                blind = self.server.blind.get(answer.rater, trial.id)
                if blind is None and trial.id not in self.server.log.answered(answer.rater):
                    raise RatingError(f"trial {answer.trial}: post its label (/api/label) first", 409)
                if blind is not None and answer.label != blind:
                    raise RatingError(f"trial {answer.trial}: the label was chosen blind as {blind!r}", 409)
            rating, new = self.server.log.add(answer, trial)
            self._json(200, {"status": "saved" if new else "duplicate", "trial": answer.trial})
        except RatingError as exc:
            self.close_connection = True  # a body left unread would be taken for the next request
            self._error(exc)

    def _blind_label(self, posted: BlindLabel) -> None:
        trial = self.server.trial(posted.trial)
        if trial.question != "label" or posted.label not in trial.choices:
            raise RatingError(f"trial {posted.trial}: label must be one of the trial's choices")
        kept = self.server.blind.add(posted.rater, trial.id, posted.label)
        if kept != posted.label:  # the page takes the kept one: it may be a reload after the reference
            error = f"trial {posted.trial}: the label was already chosen blind as {kept!r}"
            return self._json(409, {"error": error, "label": kept})
        self._json(200, {"status": "kept", "label": kept})


def serve(run: Run, trials: list[Trial], port: int = 8470) -> tuple[StudyServer, threading.Thread]:
    """Start the server in a thread; the caller stops it with server.shutdown()."""
    server = StudyServer(run, trials, port)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="listen", daemon=True)
    thread.start()
    return server, thread
