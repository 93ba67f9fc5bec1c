"""`audioprobe listen RUN` and `audioprobe calibrate RUN`."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from pathlib import Path


def artifact_key(run_id: str) -> str:
    return ("listening-" + re.sub(r"[^a-z0-9-]+", "-", run_id.lower())).strip("-")[:100]


def publish(run_id: str, markdown: str | None = None, url: str | None = None) -> str | None:
    """A Prefect artifact linking the page (or saying it stopped), when a Prefect server answers.

    Never starts a server: the study does not need one. Returns the API URL used, or None."""
    import os

    from audioprobe.prefect_server import _healthy, configure_environment
    from audioprobe.settings import get_settings

    settings = get_settings()
    default = f"http://127.0.0.1:{settings.prefect_port}/api"
    api = next(
        (
            u
            for u in (settings.prefect_api_url, os.environ.get("PREFECT_API_URL"), default)
            if u and _healthy(u)
        ),
        None,
    )
    if api is None:
        return None
    configure_environment(api)
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    if url:
        create_link_artifact(
            url,
            link_text=f"listening study of {run_id}",
            key=artifact_key(run_id),
            description=f"served by `audioprobe listen {run_id}`; ratings go to the run directory",
        )
    else:
        create_markdown_artifact(markdown or "", key=artifact_key(run_id), description="listening study")
    return api


def _publish_quietly(run_id: str, **what) -> str | None:
    """An artifact is a convenience: a Prefect server that errors must not stop the study."""
    import sys

    try:
        return publish(run_id, **what)
    except Exception as exc:  # noqa: BLE001 - any failure of Prefect's client is reported, not raised
        print(f"audioprobe listen: no Prefect artifact ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def listen(args: argparse.Namespace) -> int:
    from audioprobe.cli import UserError, emit
    from audioprobe.listening import trials as trial_mod
    from audioprobe.listening.server import serve
    from tasks.records import Run, now_iso

    try:
        run = Run.open(args.run)
        trials = trial_mod.prepare(
            run, n=args.trials, embedding=args.embedding, resample=args.resample, seed=args.seed
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    try:
        server, _ = serve(run, trials, port=args.port)
    except OSError as exc:
        raise UserError(
            f"port {args.port} on 127.0.0.1: {exc.strerror}; choose another with --port"
        ) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    api = None if args.no_artifact else _publish_quietly(run.run_id, url=server.url)
    emit(
        {
            "url": server.url,
            "run": run.run_id,
            "trials": len(trials),
            "ratings": str(server.log.path),
            "prefect_artifact": artifact_key(run.run_id) if api else None,
        }
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        if api:
            _publish_quietly(
                run.run_id,
                markdown=f"The listening study of `{run.run_id}` is not served since "
                f"{now_iso()}. Serve it again with `audioprobe listen {run.run_id}`.",
            )
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from audioprobe.cli import UserError, emit
    from audioprobe.listening import trials as trial_mod
    from audioprobe.listening.calibrate import calibrate as fit
    from audioprobe.listening.ratings import merge
    from tasks.records import Run

    try:
        run = Run.open(args.run)
        merged = None
        if args.merge:
            missing = [f for f in args.merge if not Path(f).is_file()]
            if missing:
                raise UserError(f"--merge: no such file {missing[0]}")
            merged = merge(run, args.merge, {t.id: t for t in trial_mod.load(run)})
        result = fit(run, n_boot=args.boot, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    summary = [
        {
            k: f.get(k)
            for k in ("embedding", "metric", "clip_length", "n_ratings", "raters", "thresholds", "skipped")
            if k in f
        }
        for f in result["fits"]
    ]
    emit(
        {
            "run": run.run_id,
            "merged": merged,
            "fits": summary,
            "agreement": result["agreement"],
            "written": str(run.dir / "listening" / "calibration.json"),
        }
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("listen", help="serve the listening study of a run on 127.0.0.1")
    p.add_argument("run", help="run id or run directory")
    p.add_argument("--port", type=int, default=8470, help="port on 127.0.0.1 (default 8470)")
    p.add_argument("--trials", type=int, default=60, help="trials to draw (before repeats)")
    p.add_argument("--embedding", default="logmel-stats", help="embedding of the per-note distances")
    p.add_argument("--resample", action="store_true", help="draw the trials again (ratings are kept)")
    p.add_argument("--seed", type=int, default=0, help="seed of the trial order")
    p.add_argument("--no-artifact", action="store_true", help="do not publish a Prefect artifact")
    p.set_defaults(func=listen)
    c = subparsers.add_parser("calibrate", help="fit band thresholds from a run's listening ratings")
    c.add_argument("run", help="run id or run directory")
    c.add_argument(
        "--merge", nargs="*", type=Path, default=[], help="other raters' ratings.jsonl to add first"
    )
    c.add_argument("--boot", type=int, default=300, help="bootstrap resamples per threshold")
    c.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    c.set_defaults(func=calibrate)
