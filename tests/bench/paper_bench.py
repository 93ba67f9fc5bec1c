"""The paper's whole benchmark at its real size (issue 23): `make bench-paper`.

    .venv/bin/python -m tests.bench.paper_bench [--fraction F] [--latency 2.0] [--runner threads|dask]
        [--database sqlite|postgres] [--tier T ...] [--faults] [--keep]

1. builds (or finds cached) the paper-size dataset (tests/bench/paper_dataset.py; --fraction F: a
   stratified fraction of it);
2. starts the simulated hosted models on 127.0.0.1 (tests/bench/sim_llm.py: sim-strong, sim-weak);
3. runs `audioprobe run --dataset-root ... --tier all --model openai/sim-strong --model openai/sim-weak
   --model baseline/template --new` (every method of every tier) in its own data dir and Prefect port
   (AUDIOPROBE_DATA_DIR, AUDIOPROBE_PREFECT_PORT; default /tmp/bench-paper-data and 4378), sampling the
   RSS of every process it starts;
4. prints the issue's lines. What it cannot measure yet is printed as "not measured: why".
   `audioprobe runs` is timed with 20 runs on disk (this one and hard-linked copies under new ids); the
   UI's table artifact with 1,500 of this run's rows, on the bench's server.

--faults (tests/bench/faults.py): SIGKILL a Dask worker (with --runner dask), the Prefect server (the
bench restarts it on PostgreSQL; the client's watchdog restarts the embedded one) and the client at 30 /
50 / 70 % of the records, resume with the same command, print what was lost, repeated or left Running.

The Prefect server is the embedded one (SQLite), or with --database postgres one the bench starts on
the local PostgreSQL (tests/bench/bench_pg.py); --runner dask sets AUDIOPROBE_TASK_RUNNER=dask (two
local workers, AUDIOPROBE_DASK_WORKERS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.bench import bench_pg, paper_dataset

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("openai/sim-strong", "openai/sim-weak", "baseline/template")
METHODS = {"notes": ("paper",), "environmental": ("detailed", "detailed_description"), "speech": ("paper",)}


def start_sim(latency: float, rate_limit: float, retry_after: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.sim_llm",
            "--latency",
            str(latency),
            "--rate-limit",
            str(rate_limit),
            "--retry-after",
            str(retry_after),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, json.loads(proc.stdout.readline())["api_base"]


def get_json(url: str, body: dict | None = None, timeout: float = 30) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class RssSampler(threading.Thread):
    """Peak RSS and CPU time of each process under `root` and of any process whose command line has a
    marker, and the machine's busy CPU time over the same span (for the orchestration's CPU share)."""

    def __init__(self, root_pid: int, markers: tuple[str, ...]):
        super().__init__(daemon=True)
        self.root_pid, self.markers, self.peak, self.stop = root_pid, markers, {}, threading.Event()
        self.cpu: dict[tuple[int, str], float] = {}
        self.machine_busy = 0.0

    @staticmethod
    def busy_s() -> float:
        import psutil

        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)

    def run(self) -> None:
        import psutil

        busy0 = self.busy_s()
        while not self.stop.wait(0.5):
            procs = []
            try:
                root = psutil.Process(self.root_pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                pass
            for p in psutil.process_iter(["cmdline"]):
                if any(m in " ".join(p.info["cmdline"] or []) for m in self.markers):
                    procs.append(p)
            for p in procs:
                try:
                    cmd = p.cmdline()
                    name = (
                        "Dask worker or nanny (spawned)"
                        if "spawn_main" in " ".join(cmd)
                        else " ".join(cmd[1:4])[:60] or p.name()
                    )
                    rss = p.memory_info().rss
                    cpu = p.cpu_times()
                    kind = f"{name} [{p.name()}]"
                except psutil.Error:
                    continue
                self.peak[(p.pid, name)] = max(self.peak.get((p.pid, name), 0), rss)
                self.cpu[(p.pid, kind)] = cpu.user + cpu.system
            self.machine_busy = self.busy_s() - busy0

    def cpu_of(self, *markers: str) -> float:
        return sum(s for (_, name), s in self.cpu.items() if any(m in name for m in markers))


class ApiProbe(threading.Thread):
    """The Prefect API's latency during the run, as the UI's run lists see it: every 5 s, a read of the
    latest 200 flow runs or task runs. A read that fails (the server killed by --faults) is counted."""

    def __init__(self, api_url: str):
        super().__init__(daemon=True)
        self.api_url, self.times, self.failed, self.stop = api_url, [], 0, threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.wait(5):
            i += 1
            path = "/flow_runs/filter" if i % 2 else "/task_runs/filter"
            t0 = time.monotonic()
            try:
                get_json(self.api_url + path, {"limit": 200, "sort": "EXPECTED_START_TIME_DESC"}
                         if i % 2 else {"limit": 200})
            except OSError:
                self.failed += bool(self.times)  # not before the CLI has started its server
                continue
            self.times.append(time.monotonic() - t0)

    def p95_ms(self) -> float | None:
        if not self.times:
            return None
        ordered = sorted(self.times)
        return 1000 * ordered[max(0, int(0.95 * len(ordered)) - 1)]


def subflows_line(api_url: str) -> str:
    """When each tier x model x method sub-flow ran, in minutes from the first one's start, from the
    Prefect API: where the wall time went (side by side or one after another, the tails)."""
    from datetime import datetime

    runs = get_json(api_url + "/flow_runs/filter", {"limit": 200, "sort": "START_TIME_ASC"})
    spans = [(r["name"], r["start_time"], r["end_time"]) for r in runs
             if r.get("parent_task_run_id") and r["start_time"] and r["end_time"]]
    if not spans:
        return "sub-flows: none finished"
    t = lambda iso: datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    t0 = min(t(a) for _, a, _ in spans)
    parts = [f"{name} {(t(a) - t0) / 60:.1f}-{(t(b) - t0) / 60:.1f}" for name, a, b in spans]
    return f"sub-flows (min from the first start): {'; '.join(parts)}"


def cpu_line(sampler: RssSampler) -> str:
    """Where the machine's CPU went, by process kind; the rest is the sandbox's containers (and anything
    else running on the machine)."""
    kinds = {
        "client (flow loop, Dask scheduler and nannies, FAD, report)": ("-m audioprobe run",),
        "Dask workers (tasks: model calls, sandbox client, gate, judges)": ("Dask worker",),
        "Prefect server": ("prefect server start",),
        "PostgreSQL": ("postgres",),
        "Docker engine (dockerd, containerd, shims)": ("dockerd", "containerd"),
        "simulated models": ("tests.bench.sim_llm",),
    }
    parts, seen = [], 0.0
    for kind, markers in kinds.items():
        cpu = sampler.cpu_of(*markers)
        seen += cpu
        parts.append(f"{kind} {cpu:.0f}")
    parts.append(f"the rest (sandbox containers, other processes) {max(0.0, sampler.machine_busy - seen):.0f}")
    return f"cpu: {sampler.machine_busy:.0f} CPU-s busy in all; " + "; ".join(parts)


def overhead_line(sampler: RssSampler) -> str:
    """The orchestration's share of the CPU the machine spent during the run: the Prefect server and its
    database (on 2 busy cores, CPU they take is wall time the work does not get). The client's own
    Prefect engine runs in the same process as the flow loop and is not separated, so this is a floor;
    the wall-clock A/B against a plain loop is orchestration_bench's, on replayed notes."""
    orchestration = sampler.cpu_of("prefect server start", "postgres")
    busy = sampler.machine_busy
    share = f"{100 * orchestration / busy:.1f}%" if busy else "n/a"
    return (f"orchestration overhead {share} of the machine's busy CPU: Prefect server and database "
            f"{orchestration:.0f} CPU-s of {busy:.0f}; the client's Prefect engine is not separated from its "
            "flow loop, so this is a floor; the wall-clock A/B against a plain loop is orchestration_bench's")


def expected_items(dataset: Path, tiers=tuple(METHODS)) -> int:
    """Model x tier x method x item, from the loaders themselves: what a complete run records."""
    from tasks.probesets.loaders import load_items
    from tasks.tiers import get_tier

    total = 0
    for tier, methods in METHODS.items():
        if tier not in tiers:
            continue
        items, _ = load_items(tier, dataset / get_tier(tier).offline_dir)
        total += len(items) * len(methods) * len(MODELS)
    return total


def stage_line(outcomes: list[dict], wall_min: float) -> str:
    order = ("generation", "execution", "gate", "judging", "done")
    reached = {
        s: sum(order.index(o["stage_reached"]) >= i for o in outcomes if o["stage_reached"] in order)
        for i, s in enumerate(order)
    }
    gens = [o["generation"]["latency_s"] for o in outcomes if (o.get("generation") or {}).get("latency_s")]
    execs = [o["execution"]["wall_s"] for o in outcomes if o.get("execution")]
    parts = [f"{s} {n} ({n / wall_min:.0f}/min)" for s, n in reached.items()]
    mean = lambda xs: f"{statistics.mean(xs):.2f} s" if xs else "n/a"
    return (
        f"stages: items that reached each stage per minute of the run: {', '.join(parts)}; mean per item: "
        f"model answer {mean(gens)}, sandbox {mean(execs)}"
    )


def prefect_line(home: Path, postgres_port: int | None, probe: ApiProbe) -> str:
    if postgres_port is not None:
        where = f"PostgreSQL {bench_pg.size_mb(postgres_port):.1f} MB"
    else:
        where = f"SQLite {sum(p.stat().st_size for p in home.glob('prefect.db*')) / 2**20:.1f} MB"
    p95 = probe.p95_ms()
    latency = f"{p95:.0f} ms" if p95 is not None else "n/a"
    return (f"prefect: {where}; API p95 {latency} during the run ({len(probe.times)} reads of the latest 200 "
            f"flow or task runs, one per 5 s; {probe.failed} failed)")


def report_line(env: dict, run_id: str) -> str:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "audioprobe", "report", run_id],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    built = time.monotonic() - t0
    page = Path(json.loads(out.strip().splitlines()[-1])["report"])
    size = sum(p.stat().st_size for p in page.parent.rglob("*") if p.is_file()) / 2**20  # page + its assets
    try:
        from playwright import sync_api as playwright

        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                headless=True,
                args=["--no-sandbox", "--disable-gpu"],
            )
            t0 = time.monotonic()
            browser.new_page().goto(page.as_uri(), wait_until="load", timeout=300_000)
            loads = f"loads in {time.monotonic() - t0:.1f} s (headless chromium)"
            browser.close()
    except Exception as exc:  # noqa: BLE001 - a missing browser is a figure not measured, not a failed bench
        loads = f"loads in: not measured: {type(exc).__name__}: {str(exc)[:120]}"
    return f"report: built in {built:.1f} s, {size:.1f} MB (the run's report folder), {loads}"


def run_faults(args, command, env, expected, port, api_base, pg, log, sampler):
    """The run under faults.run_with_faults: a Dask worker (with --runner dask), the server, the client."""
    from tests.bench import faults

    kinds = [("worker", 0.3)] if args.runner == "dask" else []
    kinds += [("server", 0.5), ("client", 0.7)]

    def restart() -> None:
        pg[0] = bench_pg.start(int(port), args.data_dir / "prefect-pg", fresh=False)[0]

    def run_dir():
        found = sorted((args.data_dir / "runs").glob("*/run.json"))
        return found[-1].parent if found else None

    def on_start(pid: int) -> None:
        sampler.root_pid = pid

    return faults.run_with_faults(
        command,
        env,
        ROOT,
        run_dir,
        expected,
        [faults.Fault(k, share) for k, share in kinds],
        f"http://127.0.0.1:{port}/api",
        api_base.removesuffix("/v1") + "/stats",
        log,
        server_pid=lambda: pg[0].pid if pg else None,
        restart_server=restart if pg else None,
        on_start=on_start,
    )


def runs_line(env: dict, run_dir: Path, copies: int = 20) -> str:
    """`audioprobe runs` with `copies` runs on disk: this run and copies of it under new run ids."""
    t0 = time.monotonic()
    made = make_run_copies(run_dir, copies - 1)
    made_s = time.monotonic() - t0
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "audioprobe", "runs"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        times.append(time.monotonic() - t0)
    listed = len(out.strip().splitlines())
    return (
        f"runs command: {min(times):.1f} s with {listed} runs in the data dir (best of 3: "
        f"{', '.join(f'{t:.1f}' for t in times)} s; {made} copies of this run made in {made_s:.1f} s; "
        f"load {os.getloadavg()[0]:.1f})"
    )


def make_run_copies(run_dir: Path, n: int) -> int:
    """`n` copies of a run directory under new run ids (hard links; run.json rewritten with its new id
    and a later `created`): what `audioprobe runs` reads of each run is what a real run of that size has."""
    manifest = json.loads((run_dir / "run.json").read_text())
    for i in range(n):
        run_id = f"{manifest['run_id']}-copy{i:02d}"
        target = run_dir.parent / run_id
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(run_dir, target, copy_function=os.link, ignore=shutil.ignore_patterns(".lock"))
        (target / "run.json").unlink()
        copy = manifest | {"run_id": run_id, "created": f"{manifest['created']}.{i:02d}"}
        (target / "run.json").write_text(json.dumps(copy, indent=2))
    return n


def artifact_line(api_url: str, run_dir: Path, n: int = 1500) -> str:
    """The UI's per-tier table at the paper's notes size (flows/tiers.publish: one table artifact per tier
    x model x method, a row per record): `n` of this run's notes rows (repeated to n) in one create call,
    as create_table_artifact sends it (the table as a JSON string), timed against the bench's server."""
    from uuid import uuid4

    from audioprobe.schema import ItemOutcome

    keep = ("item_id", "label", "sample", "round", "status", "failure_detail")  # flows/tiers.outcome_row's
    outcomes = [
        ItemOutcome.model_validate_json(p.read_text()) for p in sorted((run_dir / "outcomes").glob("*.json"))
    ]
    shaped = [o for o in outcomes if o.item.tier == "notes"] or outcomes  # else another tier's rows
    rows = [
        {k: v for k, v in o.row.items() if k in keep or k.endswith(("_correct", "_score"))} for o in shaped
    ]
    if not rows:
        return "table artifact: not measured: no records in this run"
    table = json.dumps(
        [rows[i % len(rows)] | {"item_id": f"{rows[i % len(rows)]['item_id']}-{i}"} for i in range(n)],
        default=str,
    )
    body = {
        "key": f"bench-table-{uuid4().hex[:8]}",
        "type": "table",
        "data": table,
        "description": "paper bench",
    }
    t0 = time.monotonic()
    made = get_json(api_url + "/artifacts/", body, timeout=120)
    create_s = time.monotonic() - t0
    t0 = time.monotonic()
    get_json(api_url + f"/artifacts/{made['id']}", None, timeout=120)
    read_s = time.monotonic() - t0
    return (
        f"table artifact: {n} {shaped[0].item.tier} rows, {len(table) / 2**10:.0f} KiB, created in {create_s * 1000:.0f} ms, "
        f"read back in {read_s * 1000:.0f} ms (the paper's size: 12 such tables of 1,500 notes or fewer "
        f"per run; load {os.getloadavg()[0]:.1f})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fraction", type=float, default=1.0, help="a stratified fraction of the benchmark")
    ap.add_argument("--latency", type=float, default=2.0, help="the simulated models' mean answer time, s")
    ap.add_argument("--rate-limit", type=float, default=0.05, help="share of asks first answered with a 429")
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument(
        "--runner", choices=("threads", "dask"), default=os.environ.get("AUDIOPROBE_TASK_RUNNER", "threads")
    )
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument(
        "--sandbox-concurrency",
        type=int,
        default=4,
        help="sandboxes at once (default 4 on 2 cores: a hosted model's program that hangs holds its slot "
        "for the whole time limit without using a core)",
    )
    ap.add_argument(
        "--sandbox-reuse", type=int, default=10, help="programs per container, reset between two (docs/sandbox.md)"
    )
    ap.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("AUDIOPROBE_DATA_DIR", "/tmp/bench-paper-data"))
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the data dir (runs, responses, Prefect database)"
    )
    ap.add_argument(
        "--tier",
        action="append",
        dest="tiers",
        choices=list(METHODS),
        help="only these tiers (repeatable; default all): the notes tier's FAD is recomputed on each "
        "resume, minutes per model under load",
    )
    ap.add_argument(
        "--faults",
        action="store_true",
        help="SIGKILL a Dask worker (with --runner dask), the Prefect server and the client at 30 / "
        "50 / 70 %% of the records, resuming after each (tests/bench/faults.py)",
    )
    args = ap.parse_args(argv)
    t_all = time.monotonic()
    info = paper_dataset.build(fraction=args.fraction)
    dataset = Path(info.get("path") or paper_dataset.default_out(args.fraction))
    how = "cached" if info["cached"] else f"built in {info['seconds']:.0f} s"
    print(f"dataset: {dataset} ({how}; {info['counts']}, {info['bytes'] / 2**20:.0f} MB)", flush=True)
    shutil.rmtree(args.data_dir, ignore_errors=True)
    sim, api_base = start_sim(args.latency, args.rate_limit, args.retry_after)
    port = os.environ.get("AUDIOPROBE_PREFECT_PORT", "4378")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # the CLI configures its own
    env |= {
        "AUDIOPROBE_DATA_DIR": str(args.data_dir),
        "AUDIOPROBE_PREFECT_PORT": port,
        "PYTHONUNBUFFERED": "1",
        "AUDIOPROBE_MODELS": json.dumps({m: {"api_base": api_base} for m in MODELS[:2]}),
        "AUDIOPROBE_DESCRIBER_MODEL": "",  # the ontology's descriptions: no local LLM in this bench
        "AUDIOPROBE_TASK_RUNNER": args.runner,
        "AUDIOPROBE_SANDBOX_CONCURRENCY": str(args.sandbox_concurrency),
        "AUDIOPROBE_SANDBOX_REUSE": str(args.sandbox_reuse),
    }
    tiers = args.tiers or list(METHODS)
    command = [
        sys.executable,
        "-m",
        "audioprobe",
        "run",
        "--dataset-root",
        str(dataset),
        *(a for t in tiers for a in ("--tier", t)),
        *(a for m in MODELS for a in ("--model", m)),
        "--new",
    ]
    pg = None
    try:
        if args.database == "postgres":
            pg, url = bench_pg.start(int(port), args.data_dir / "prefect-pg")
            pg = [pg]  # the server a fault kills is replaced by a restarted one
            env["AUDIOPROBE_PREFECT_API_URL"] = url
        expected = expected_items(dataset, tiers)
        load0 = " / ".join(f"{x:.1f}" for x in os.getloadavg())  # the machine is shared: figures move with it
        t0 = time.monotonic()
        log = open(args.data_dir.parent / f"{args.data_dir.name}.run.log", "w")  # noqa: SIM115 - all resumes
        markers = (f"--port {port}", "tests.bench.sim_llm", "dockerd", "containerd",
                   *(("postgres",) if pg is not None else ()))
        sampler = RssSampler(os.getpid(), markers)
        sampler.start()
        api_url = f"http://127.0.0.1:{port}/api"
        probe = ApiProbe(api_url)
        probe.start()
        if args.faults:
            proc, faults, fault_summary = run_faults(
                args, command, env, expected, port, api_base, pg, log, sampler
            )
            out = proc.stdout
            print(f"faults: {fault_summary}; " + "; ".join(f.line() for f in faults), flush=True)
        else:
            proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
            sampler.root_pid = proc.pid
            out, _ = proc.communicate()
        wall = time.monotonic() - t0
        sampler.stop.set()
        probe.stop.set()
        if proc.returncode not in (0, 3):
            print(f"audioprobe run failed (exit {proc.returncode}); see {log.name}", file=sys.stderr)
            return 1
        result = json.loads(out.strip().splitlines()[-1])
        outcomes = [json.loads(p.read_text()) for p in (Path(result["run_dir"]) / "outcomes").glob("*.json")]
        stats = get_json(api_base.removesuffix("/v1") + "/stats")
        keys = {
            (o["model"], o["method"], o["item"]["id"], o["sample"]) for o in outcomes if not o.get("round")
        }
        n = len(keys)
        print(
            f"paper benchmark: {n} items in {wall / 60:.1f} min ({overhead_line(sampler)}) "
            f"[fraction {args.fraction:g}, tiers {'+'.join(tiers)}, {args.runner}, {args.database}, sandboxes "
            f"{args.sandbox_concurrency} at once, {args.sandbox_reuse} programs each, exit {proc.returncode}; load average "
            f"{load0} at the start, {os.getloadavg()[0]:.1f} at the end]"
        )
        print(stage_line(outcomes, wall / 60))
        print(cpu_line(sampler))
        peak = sorted(((rss, name) for (_, name), rss in sampler.peak.items()), reverse=True)
        print("peak RSS: " + "; ".join(f"{rss / 2**20:.0f} MB ({name})" for rss, name in peak[:4]))
        print(prefect_line(args.data_dir / "prefect", int(port) if pg is not None else None, probe))
        print(subflows_line(api_url))
        print(report_line(env, result["run_id"]))
        print(runs_line(env, Path(result["run_dir"])))
        print(
            f"lost records: {expected - n}, repeated requests: {stats['repeated']} (expected {expected} "
            f"records; model requests {stats['requests']}, 429s {stats['rate_limited']}, asked again before "
            f"Retry-After {stats['early_retries']}; answers {json.dumps({m: s['kinds'] for m, s in stats['models'].items()})})"
        )
        if not args.faults:
            print(
                "faults (kill a Dask worker, the Prefect server, the client): not measured: run with --faults"
            )
        print(artifact_line(api_url, Path(result["run_dir"])))
        print(f"bench total: {(time.monotonic() - t_all) / 60:.1f} min")
    finally:
        sim.terminate()
        if pg is not None:
            bench_pg.stop(pg[0], int(port), drop=not args.keep)
        subprocess.run(
            [sys.executable, "-m", "audioprobe", "server", "stop"],
            env=env,
            cwd=ROOT,
            check=False,
            capture_output=True,
            timeout=120,
        )
        if not args.keep:
            shutil.rmtree(args.data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
