"""`audioprobe run | retry | runs | report | serve | server`: the orchestration commands."""

from __future__ import annotations

import argparse
import shlex
import sys
import threading

from audioprobe.cli import UserError, emit
from audioprobe.schema import TIERS


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="benchmark models on tiers; resumes an unfinished identical run")
    run.add_argument("--model", action="append", dest="models", help="litellm model string, or 'local' (repeatable)")
    run.add_argument("--tier", action="append", dest="tiers", choices=[*TIERS, "all"])
    run.add_argument("--method", action="append", dest="methods", help="prompt method (default: all of the tier's)")
    run.add_argument("--limit", type=int, default=None, help="items per tier (default: the offline default size)")
    run.add_argument("--samples", type=int, default=1, help="samples per item (k > 1: temperature >= 0.2)")
    run.add_argument("--repair-rounds", type=int, default=0,
                     help="follow-up turns with feedback after a failed answer (0: the paper's single shot)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--dataset-root", default=None, help="folder holding nsynth/, fsd50k/, speech_commands/")
    run.add_argument("--split", default=None, choices=["test", "valid", "train", "all"],
                     help="with --dataset-root: the NSynth split the notes are sampled from (default test: the "
                          "paper's, its 16-class structure checked when complete)")
    run.add_argument("--new", action="store_true", help="start a new run even if an identical one is unfinished")
    run.set_defaults(func=cmd_run)

    retry = subparsers.add_parser("retry", help="rerun only the failed items of a run")
    retry.add_argument("run_id")
    retry.add_argument("--only", choices=["generation", "execution", "judging"])
    retry.add_argument("--status", default=None, help="comma list: error,timeout,memory,missing_module,...")
    retry.set_defaults(func=cmd_retry)

    runs = subparsers.add_parser("runs", help="list runs")
    runs.set_defaults(func=cmd_runs)

    report = subparsers.add_parser("report", help="write a run's HTML report")
    report.add_argument("run_id")
    report.add_argument("--compare", action="append", default=[], help="another run to put beside it")
    report.set_defaults(func=cmd_report)

    serve = subparsers.add_parser("serve", help="serve the nightly benchmark deployment (Ctrl-C to stop)")
    serve.add_argument("--cron", default="0 2 * * *")
    serve.add_argument("--model", action="append", dest="models")
    serve.add_argument("--tier", action="append", dest="tiers", choices=[*TIERS, "all"])
    serve.add_argument("--limit", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    server = subparsers.add_parser("server", help="the embedded Prefect server")
    server.add_argument("action", choices=["start", "stop", "status"])
    server.set_defaults(func=cmd_server)


DEFAULT_OFFLINE_LIMIT = 2  # items per tier and method for `make run`: 8 answers, about 10 minutes on 2 cores


def _tiers(asked: list[str] | None) -> list[str]:
    if not asked or "all" in asked:
        return list(TIERS)
    return list(dict.fromkeys(asked))


def cmd_run(args: argparse.Namespace) -> int:
    from audioprobe.prefect_server import ensure_server

    api_url = ensure_server()
    from tasks import runs

    models = args.models or ["local"]
    if args.samples < 1 or args.repair_rounds < 0:
        raise UserError(f"--samples must be >= 1 and --repair-rounds >= 0 (got {args.samples}, {args.repair_rounds})")
    tiers = _tiers(args.tiers)
    limit = args.limit if args.limit is not None else (DEFAULT_OFFLINE_LIMIT if args.dataset_root is None else None)
    run = runs.start_or_resume(models, tiers, runs.methods_for(tiers, args.methods), args.samples, limit,
                                 args.seed, args.dataset_root, new=args.new, repair_rounds=args.repair_rounds,
                                 split=args.split)
    print(f"run {run.run_id}  (Prefect UI: {api_url.removesuffix('/api')})", file=sys.stderr)
    resume = shlex.join(["audioprobe", *[a for a in (args.argv or []) if a != "--new"]])
    return _run_flow(run, api_url, refresh=None, resume=resume)


def cmd_retry(args: argparse.Namespace) -> int:
    from audioprobe.prefect_server import ensure_server

    api_url = ensure_server()
    from tasks import runs

    run = _open(args.run_id)
    statuses = [s.strip() for s in args.status.split(",")] if args.status else None
    chosen = runs.select_for_retry(run, args.only, statuses)
    print(f"retrying {len(chosen)} failed item(s) of run {run.run_id}", file=sys.stderr)
    if not chosen:
        emit({"run_id": run.run_id, "retried": 0})
        return 0
    runs.prepare_retry(run, chosen)
    refresh = args.only if args.only in ("execution", "judging") else ("execution" if statuses else None)
    return _run_flow(run, api_url, refresh=refresh,
                     resume=f"audioprobe retry {run.run_id} --only generation --status not_attempted,llm_error")


def _run_flow(run, api_url: str, refresh: str | None, resume: str) -> int:
    """Run the benchmark flow under a watchdog; exit 0 only when every item reached a final outcome,
    else end stderr with one line naming the cause and the command that resumes the run."""
    from audioprobe import prefect_server
    from flows import orphans
    from flows.benchmark import run_benchmark
    from tasks import limits, runs
    from tasks.report import report_summary

    with orphans.run_lock(run):
        if limits.global_limits_on():
            limits.ensure_limits(models=run.manifest.models)
        run.manifest.incomplete = None  # this attempt says anew whether the run is complete
        run.save_manifest()
        orphans.crash_orphaned_flow_runs()
        watchdog = prefect_server.start_watchdog(api_url)
        watcher = _ProgressWatcher(run)
        watcher.start()
        try:
            outcome = _in_thread(lambda: _with_tag(orphans.client_tag(), run_benchmark, run=run, refresh=refresh))
        finally:
            watcher.stop()
            watchdog.stop()
    lost = prefect_server.orchestration_lost()
    if lost:
        unfinished = runs.why_unfinished(run.outcomes(), runs.expected_count(run), lost)
        run.conclude(unfinished)
        print(f"audioprobe: run {run.run_id} stopped: {lost}; {unfinished}; every finished item is "
              f"recorded; resume: {resume}", file=sys.stderr, flush=True)
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
    emit({"run_id": run.run_id, "run_dir": str(run.dir), "report": str(run.report_path),
          "complete": manifest.incomplete is None})
    if manifest.incomplete:
        print(f"audioprobe: run {run.run_id} incomplete: {manifest.incomplete}; resume: {resume}",
              file=sys.stderr)
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


class _ProgressWatcher(threading.Thread):
    """A progress bar over recorded outcomes: the run directory is the source of truth."""

    def __init__(self, run):
        super().__init__(daemon=True)
        self.watched, self._halt = run, threading.Event()

    def _expected(self) -> int:
        manifest = self.watched.manifest
        per_tier = 0
        for tier in manifest.tiers:
            path = self.watched.dir / f"items-{tier}.json"
            count = path.read_text().count('"id":') if path.exists() else (manifest.limit or 0)
            per_tier += count * len(manifest.methods[tier])
        return per_tier * len(manifest.models) * manifest.samples

    def run(self) -> None:
        from tqdm import tqdm

        folder = self.watched.dir / "outcomes"
        with tqdm(total=self._expected(), desc=f"run {self.watched.run_id}", unit="item", file=sys.stderr) as bar:
            while not self._halt.wait(2.0):
                bar.total = max(self._expected(), bar.total or 0)
                bar.n = len(list(folder.glob("*.json"))) if folder.exists() else 0
                bar.refresh()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _open(run_id: str):
    from tasks.records import Run

    try:
        return Run.open(run_id)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from exc


def cmd_runs(args: argparse.Namespace) -> int:
    from tasks.records import Run, list_runs

    for manifest in list_runs():
        done = len(Run.open(manifest.run_id).outcomes())
        emit({"run_id": manifest.run_id, "created": manifest.created, "finished": manifest.finished,
              "models": manifest.models, "tiers": manifest.tiers, "limit": manifest.limit, "outcomes": done})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tasks.report import build_report

    run = _open(args.run_id)
    compare = [str(_open(other).dir) for other in args.compare]
    emit({"run_id": run.run_id, "report": str(build_report(run, compare=compare))})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from audioprobe.prefect_server import ensure_server

    ensure_server()
    from flows.deploy import serve_nightly

    serve_nightly(cron=args.cron, models=args.models or ["local"], tiers=_tiers(args.tiers), limit=args.limit)
    return 0


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
