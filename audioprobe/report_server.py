"""The runs' reports over http on 127.0.0.1, so the Prefect UI's report link opens in the browser that
shows the UI (a browser will not follow a file:// link from an http page).

    http://127.0.0.1:<report_port>/<run_id>/report/index.html

Only files under a run's report/ and files/ folders are served (the page and the clips it plays); no
listings, no other path, GET and HEAD only.
"""

from __future__ import annotations

import re
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from audioprobe.settings import get_settings

SERVED = re.compile(r"^/[A-Za-z0-9._-]+/(report|files)/[^\x00]*$")


def report_url(run_id: str, port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or get_settings().report_port}/{run_id}/report/index.html"


class _ReportHandler(SimpleHTTPRequestHandler):
    def send_head(self):
        path = unquote(urlsplit(self.path).path)
        if not SERVED.match(path) or "/../" in path or path.endswith("/.."):
            self.send_error(404, "not a report file")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "no listings")
        return None

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def make_server(port: int | None = None) -> ThreadingHTTPServer:
    settings = get_settings()
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    handler = partial(_ReportHandler, directory=str(settings.runs_dir))
    server = ThreadingHTTPServer(("127.0.0.1", port or settings.report_port), handler)
    server.daemon_threads = True
    return server


def start_in_background(port: int | None = None) -> ThreadingHTTPServer | None:
    """Serve the reports from a thread of this process; None (with a warning) when the port is taken,
    e.g. by `audioprobe report --serve` already running."""
    try:
        server = make_server(port)
    except OSError as exc:
        print(
            f"audioprobe: not serving reports on port {port or get_settings().report_port}: {exc}",
            file=sys.stderr,
        )
        return None
    threading.Thread(target=server.serve_forever, daemon=True, name="report-server").start()
    return server


def serve_forever(port: int | None = None) -> None:
    from audioprobe.cli import UserError

    try:
        server = make_server(port)
    except OSError as exc:
        raise UserError(
            f"cannot serve reports on 127.0.0.1:{port or get_settings().report_port}: {exc}"
        ) from None
    host, bound = server.server_address[:2]
    print(
        f"serving the runs' reports on http://{host}:{bound}/<run_id>/report/index.html (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
