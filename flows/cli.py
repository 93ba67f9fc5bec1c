"""`audioprobe run | retry | runs | report | serve | server`: the orchestration commands."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import threading

from audioprobe.cli import UserError, emit, non_negative_int, positive_int
from audioprobe.schema import RunRequest
from tasks.runs import RETRY_STAGES
from tasks.tiers import names, tier_methods


def _run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a run, the same for `run` and for the `serve`d nightly deployment."""
    from tasks.runs import NSYNTH_SPLITS

    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="litellm model string (e.g. openai/gpt-4o), 'local' for the embedded model, or "
        "'baseline/template'; repeatable (default: local)",
    )
    parser.add_argument(
        "--tier",
        action="append",
        dest="tiers",
        choices=[*names(), "all"],
        help="tier to probe; repeatable (default: all, the paper's three; tones only when named)",
    )
    parser.add_argument(
        "--method",
        action="append",
        dest="methods",
        metavar="METHOD",
        help="prompt method: "
        + ", ".join(f"{t}: {'/'.join(m)}" for t, m in tier_methods().items())
        + "; repeatable (default: every method of each tier)",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="items per tier, at least 1 (default: 2 on the offline reference sets, all on --dataset-root)",
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=1,
        help="samples per item (k > 1 raises the temperature to at least 0.2)",
    )
    parser.add_argument(
        "--repair-rounds",
        type=non_negative_int,
        default=0,
        help="follow-up turns with feedback after a failed answer (0: the paper's single shot)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the item sample and the model calls")
    parser.add_argument(
        "--dataset-root",
        default=None,
        help="folder holding nsynth/, fsd50k/, speech_commands/ in their native layouts "
        "(default: the offline reference sets)",
    )
    parser.add_argument(
        "--split",
        default=None,
        choices=NSYNTH_SPLITS,
        help="with --dataset-root: the NSynth split the notes are sampled from (default test: the "
        "paper's, its 16-class structure checked when complete)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="benchmark models on tiers; resumes an unfinished identical run")
    _run_options(run)
    run.add_argument(
        "--new", action="store_true", help="start a new run even if an identical one is unfinished"
    )
    run.set_defaults(func=cmd_run)

    retry = subparsers.add_parser("retry", help="rerun only the failed items of a run")
    retry.add_argument("run_id", help="the run's id (see `audioprobe runs`)")
    retry.add_argument("--only", choices=list(RETRY_STAGES), help="only failures of this pipeline stage")
    retry.add_argument(
        "--status",
        default=None,
        help="comma list of failure, execution status or model error names (e.g. timeout,memory "
        "or auth); an unknown name is refused with the valid ones listed",
    )
    retry.set_defaults(func=cmd_retry)

    listing = subparsers.add_parser("runs", help="list runs with their status, one JSON object per line")
    listing.add_argument(
        "--status", choices=["complete", "incomplete", "running"], help="only runs in this state"
    )
    listing.set_defaults(func=cmd_runs)

    report = subparsers.add_parser(
        "report", help="write a run's HTML report, or serve every run's report over http"
    )
    report.add_argument("run_id", nargs="?", help="the run to report on (not needed with --serve)")
    report.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="RUN_ID",
        help="another run to put beside it (repeatable)",
    )
    report.add_argument(
        "--serve",
        action="store_true",
        help="serve the runs' reports on 127.0.0.1 (the Prefect UI's report links) until Ctrl-C",
    )
    report.add_argument(
        "--port", type=positive_int, default=None, help="with --serve (default: settings.report_port)"
    )
    report.set_defaults(func=cmd_report)

    serve = subparsers.add_parser(
        "serve", help="serve the nightly benchmark and retry deployments, and the reports (Ctrl-C to stop)"
    )
    _run_options(serve)
    serve.add_argument("--cron", default="0 2 * * *", help="when the nightly run starts (default: 02:00)")
    serve.add_argument(
        "--timezone", default=None, help="IANA time zone of --cron, e.g. Europe/Paris (default: UTC)"
    )
    serve.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run every SECONDS instead of --cron (for trying a schedule out)",
    )
    serve.set_defaults(func=cmd_serve)

    server = subparsers.add_parser("server", help="the embedded Prefect server")
    server.add_argument(
        "action",
        choices=["start", "stop", "status"],
        help="start it (if none answers), stop it, or say whether it answers",
    )
    server.set_defaults(func=cmd_server)


def request_of(args: argparse.Namespace) -> RunRequest:
    """The run the options ask for; checked by tasks.runs.check_request before anything starts."""
    return RunRequest(
        models=args.models or ["local"],
        tiers=args.tiers or ["all"],
        methods=args.methods,
        limit=args.limit,
        samples=args.samples,
        repair_rounds=args.repair_rounds,
        seed=args.seed,
        dataset_root=args.dataset_root,
        split=args.split,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from tasks import runs

    request = runs.check_request(request_of(args))  # before a server, a run directory or a model
    from audioprobe.prefect_server import ensure_server

    api_url = ensure_server()
    run = runs.start_request(request, new=args.new)
    print(f"run {run.run_id}  (Prefect UI: {api_url.removesuffix('/api')})", file=sys.stderr)
    resume = shlex.join(["audioprobe", *[a for a in (args.argv or []) if a != "--new"]])
    return _run_flow(run, api_url, refresh=None, resume=resume)


def cmd_retry(args: argparse.Namespace) -> int:
    from tasks import runs

    run = _open(args.run_id)
    statuses = [s.strip() for s in args.status.split(",") if s.strip()] if args.status else None
    chosen, refresh = runs.plan_retry(run, args.only, statuses)
    print(f"retrying {len(chosen)} failed item(s) of run {run.run_id}", file=sys.stderr)
    if not chosen:
        if args.only == "judging":  # nothing to rejudge, but a run from before may lack its comparisons
            _store_comparisons(run)
        emit({"run_id": run.run_id, "retried": 0})
        return 0
    from audioprobe.prefect_server import ensure_server

    api_url = ensure_server()
    runs.prepare_retry(run, chosen)
    return _run_flow(
        run,
        api_url,
        refresh=refresh,
        resume=f"audioprobe retry {run.run_id} --only generation --status not_attempted,llm_error",
    )


def _store_comparisons(run) -> None:
    """The run's stored comparisons (tasks/comparisons.py) and its report rebuilt on them."""
    from audioprobe.report import build_report
    from tasks import comparisons

    path = comparisons.store_comparisons(run)
    print(f"stored {path.name}; report: {build_report(run)}", file=sys.stderr)


def _run_flow(run, api_url: str, refresh: str | None, resume: str) -> int:
    """Run the benchmark flow under a watchdog; exit 0 only when every item reached a final outcome,
    else end stderr with one line naming the cause and the command that resumes the run."""
    from audioprobe import prefect_server
    from audioprobe.report import report_summary
    from flows import orphans
    from flows.benchmark import run_benchmark
    from flows.progress import ProgressWatcher
    from tasks import limits, runs

    import httpx

    with orphans.run_lock(run):
        try:
            if limits.global_limits_on():
                limits.ensure_limits(models=run.manifest.models)
            orphans.crash_orphaned_flow_runs()
        except (httpx.HTTPError, OSError) as exc:  # the server went away between its health check and here
            print(f"audioprobe: run {run.run_id} not started: the Prefect server at {api_url} does not answer "
                  f"({type(exc).__name__}: {exc}); nothing was asked; resume: {resume}", file=sys.stderr)
            return runs.EXIT_ORCHESTRATION_LOST
        run.manifest.incomplete = None  # this attempt says anew whether the run is complete
        run.save_manifest()
        watchdog = prefect_server.start_watchdog(api_url)
        watcher = ProgressWatcher(run)
        watcher.start()
        try:
            outcome = _in_thread(
                lambda: _with_tag(orphans.client_tag(), run_benchmark, run=run, refresh=refresh)
            )
        finally:
            watcher.stop()
            watchdog.stop()
    lost = prefect_server.orchestration_lost()
    if lost:
        unfinished = runs.why_unfinished(run.outcomes(), runs.expected_count(run), lost)
        run.conclude(unfinished)
        left = (unfinished or "every item done").removesuffix(f"; {lost}")  # the cause is said once
        print(
            f"audioprobe: run {run.run_id} stopped: {lost}; {left}; every finished item is "
            f"recorded; resume: {resume}",
            file=sys.stderr,
            flush=True,
        )
        _exit_now(runs.EXIT_ORCHESTRATION_LOST)
    if isinstance(outcome, BaseException):
        raise outcome
    if outcome is None or not outcome.is_completed():
        manifest = run.manifest
        if manifest.incomplete is None:  # the flow broke before it could judge the run (bad data, a bug)
            why = (outcome.message if outcome is not None else None) or "the benchmark flow did not finish"
            run.conclude(why)
            print(f"audioprobe: run {run.run_id} failed: {why}; resume: {resume}", file=sys.stderr)
            return 1
    print(report_summary(run), file=sys.stderr)
    manifest = run.manifest
    emit(
        {
            "run_id": run.run_id,
            "run_dir": str(run.dir),
            "report": str(run.report_path),
            "complete": manifest.incomplete is None,
        }
    )
    if manifest.incomplete:
        print(
            f"audioprobe: run {run.run_id} incomplete: {manifest.incomplete}; resume: {resume}",
            file=sys.stderr,
        )
        return runs.EXIT_INCOMPLETE
    return 0


LOST_GRACE_S = 20.0  # once the Prefect server is gone: time for items past generation to be recorded


def _with_tag(tag: str, fn, **kwargs):
    from prefect import tags

    with tags(tag):
        return fn(**kwargs)


def _in_thread(fn):
    """Run fn in a daemon thread; return its result or exception. When the Prefect server is lost for
    good, wait LOST_GRACE_S for in-flight items to be recorded, then return without it: a generation
    can take minutes, and the run must stop at once with its message."""
    from audioprobe.prefect_server import orchestration_lost

    box: list = []

    def target():
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box.append(exc)

    worker = threading.Thread(target=target, daemon=True, name="benchmark-flow")
    worker.start()
    while worker.is_alive():
        worker.join(1.0)
        if orchestration_lost():
            worker.join(LOST_GRACE_S)
            break
    return box[0] if box else None


def _exit_now(code: int) -> None:
    """Leave without waiting for abandoned threads (a generation in flight); stop our own LLM server."""
    import os

    from tasks.generation import local_server

    local_server.stop_owned()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _open(run_id: str):
    from tasks.records import Run

    try:
        return Run.open(run_id)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from exc


REPAIR_ROUND = re.compile(r"__r\d+$")  # tasks.records.outcome_key's suffix of a repair round's record


def cmd_runs(args: argparse.Namespace) -> int:
    from flows.orphans import held_by_a_client
    from tasks.records import Run, list_runs

    for manifest in list_runs():
        run = Run.open(manifest.run_id)
        if held_by_a_client(run):
            status, reason = "running", None
        elif manifest.finished:
            status, reason = "complete", None
        else:
            status = "incomplete"
            reason = (
                manifest.incomplete or "stopped before it concluded (killed?): the same command resumes it"
            )
        if args.status and status != args.status:
            continue
        recorded = sum(1 for p in (run.dir / "outcomes").glob("*.json") if not REPAIR_ROUND.search(p.stem))
        emit(
            {
                "run_id": manifest.run_id,
                "status": status,
                "reason": reason,
                "created": manifest.created,
                "finished": manifest.finished,
                "models": manifest.models,
                "tiers": manifest.tiers,
                "limit": manifest.limit,
                "outcomes": recorded,
            }
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.serve:
        from audioprobe import report_server

        report_server.serve_forever(args.port)
        return 0
    if not args.run_id:
        raise UserError("report: name a run (see `audioprobe runs`), or pass --serve")
    from audioprobe.report import build_report

    run = _open(args.run_id)
    compare = [str(_open(other).dir) for other in args.compare]
    emit({"run_id": run.run_id, "report": str(build_report(run, compare=compare))})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from tasks import runs

    request = runs.check_request(request_of(args))
    _check_timezone(args.timezone)
    from audioprobe import report_server
    from audioprobe.prefect_server import ensure_server

    api_url = ensure_server()  # before prefect is imported: it reads its API URL once, on import
    from flows.deploy import serve_deployments

    report_server.start_in_background()
    serve_deployments(
        request, cron=args.cron, interval_s=args.interval, timezone=args.timezone, api_url=api_url
    )
    return 0


def _check_timezone(name: str | None) -> None:
    if name is None:
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"--timezone {name!r}: not an IANA time zone (e.g. UTC, Europe/Paris)") from None


def cmd_server(args: argparse.Namespace) -> int:
    from audioprobe import prefect_server

    if args.action == "start":
        emit({"api_url": prefect_server.ensure_server()})
    elif args.action == "stop":
        prefect_server.stop_server()
        emit({"stopped": True})
    else:
        url = f"http://127.0.0.1:{prefect_server.get_settings().prefect_port}/api"
        emit({"api_url": url, "healthy": prefect_server._healthy(url)})
    return 0
