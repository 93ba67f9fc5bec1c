"""Orchestration overhead (Prefect and bookkeeping) per item, and the wall time of a replayed notes run.

    .venv/bin/python -m tests.bench.orchestration_bench [--items 12] [--samples 1] [--run-limit 0 --run-samples 4]

Replay: no LLM is called. Before each arm, the response store of that arm's fresh data dir is filled
under each (item, sample)'s exact content key (`tasks.generation.llm.request_of`) with answers of the
local Qwen2.5-Coder models recorded from real runs (tests/bench/replay_answers.json), the item's output
file name put in place of the recorded one and a `# replay sample k` line so every (item, sample) is
its own program, as samples at temperature > 0 are. Those real answers nearly never make audio (no
pydub in the sandbox, wrong scipy calls), so a share (--good-share, default 0.5) are answers in the
same shape whose program writes the asked 4 s 16 kHz note, so the gate and the pitch judge do the
work they do for a good model. Sandbox (real Docker, warm pool) and judges (gate, torchcrepe pitch,
FAD per class) are real.

(a) overhead: the same items, each in a fresh data dir (no cache shared between arms), through
    - prefect: `benchmark_flow` against a real Prefect server (ensure_server on a bench port, SQLite
      under a temp data dir) with its thread pool task runner;
    - loop: the same task functions (`.fn`) in a plain ThreadPoolExecutor of the same width, then FAD,
      the Parquet table and the report, i.e. everything but Prefect.
    Arms alternate (loop, prefect, loop, prefect, ...) so drifting load from other jobs hits both.
(b) a replayed run through the real CLI: `audioprobe run --tier notes --model local --method paper
    --limit L --samples S --new` (L x S item-samples; the offline refs hold 450 notes in 30 classes, so
    1,500 is e.g. --limit 375 --samples 4).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = Path(__file__).with_name("replay_answers.json")
BENCH_PORT = int(os.environ.get("AUDIOPROBE_BENCH_PREFECT_PORT", "4317"))
MODEL, TIER, METHOD = "local", "notes", "paper"

GOOD_ANSWER = """Here is the code:

```python
import numpy as np
import soundfile as sf

# {note}: MIDI {pitch}, velocity {velocity}
sr = 16000
t = np.arange(4 * sr) / sr
f0 = 440.0 * 2 ** (({pitch} - 69) / 12)
partials = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6) if k * f0 < sr / 2)
note = {amplitude} * partials / np.max(np.abs(partials)) * np.exp(-2.0 * t)
sf.write('{name}', note.astype(np.float32), sr)
```
"""


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----------------------------------------------------------------------------- replay


def replay_answer(item, prompt, sample: int, rng: random.Random, good_share: float, recorded: list[dict]) -> dict:
    """The raw answer to store for one (item, sample): a recorded real one, or a good one."""
    name = prompt.output_name or "output.wav"
    if rng.random() < good_share:
        raw = GOOD_ANSWER.format(note=item.note_name, pitch=item.pitch, velocity=item.velocity,
                                 amplitude=round(item.amplitude or 0.8, 3), name=name)
        return {"raw_text": raw, "finish_reason": "stop", "source": "good"}
    answer = rng.choice(recorded)
    raw = answer["raw_text"]
    if answer.get("output_name"):
        raw = re.sub(re.escape(answer["output_name"]), name, raw, flags=re.IGNORECASE)
    return {**answer, "raw_text": raw}


def populate(items, samples: int, good_share: float, seed: int = 0) -> dict[str, int]:
    """Store an answer under the exact content key of every (item, sample): the run calls no LLM."""
    from audioprobe.schema import Generation
    from audioprobe.settings import get_settings
    from tasks import pipeline
    from tasks.generation.extract import extract
    from tasks.generation.llm import messages_for, request_of
    from tasks.generation.store import ResponseStore

    recorded = json.loads(ANSWERS.read_text())["answers"]
    store = ResponseStore(get_settings().responses_dir)
    rng = random.Random(seed)
    kinds: dict[str, int] = {}
    for item in items:
        prompt = pipeline.render_prompt(item, METHOD)
        for sample in range(samples):
            # keyed as the run asks: with samples > 1 the temperature, and so the key, differ
            request = request_of(prompt, MODEL, sample, samples=samples)
            target, params, key = request.target, request.params, request.key
            answer = replay_answer(item, prompt, sample, rng, good_share, recorded)
            raw = answer["raw_text"].replace("```python\n", f"```python\n# replay sample {sample}\n", 1)
            ex = extract(raw)
            gen = Generation(response_id=key, model=target.litellm_model, api_base=target.api_base, sample=sample,
                             params=params, raw_text=raw, extraction_status=ex.status, code=ex.code,
                             extraction_note=ex.note, finish_reason=answer.get("finish_reason"),
                             tokens_in=answer.get("tokens_in"), tokens_out=answer.get("tokens_out"),
                             latency_s=answer.get("latency_s"))
            store.put(gen, {"model": target.litellm_model, "api_base": target.api_base,
                            "messages": messages_for(prompt), "params": params, "sample": sample})
            kind = "good" if answer["source"] == "good" else ex.status
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# ----------------------------------------------------------------------------- arms (in a child process)


def _new_run(limit: int, samples: int):
    from tasks import runs

    store = runs.start_or_resume([MODEL], [TIER], {TIER: [METHOD]}, samples, limit, 0, None, new=True)
    return store, runs.items_for(store, TIER)


def _one_item(run, item, sample, dataset_root):
    from tasks import pipeline

    prompt = pipeline.render_prompt(item, METHOD)
    gen = pipeline.generate.fn(prompt, MODEL, sample)
    exe = pipeline.execute_one(gen, prompt)
    gate, judgements = pipeline.evaluate.fn([exe], [item], dataset_root=dataset_root)[0]
    return pipeline.record(run, item, MODEL, METHOD, sample, prompt, gen, exe, gate, judgements)


def run_loop(store, items, samples: int) -> None:
    """Everything the flows do, with the same functions and the same width, and no Prefect."""
    from audioprobe.report import build_report
    from audioprobe.settings import get_settings
    from tasks import pipeline, runs

    root = store.manifest.dataset_root
    work = [(item, s) for item in items for s in range(samples)]
    with ThreadPoolExecutor(get_settings().task_workers) as pool:
        outcomes = list(pool.map(lambda w: _one_item(store, w[0], w[1], root), work))
    pipeline.reference_points.fn(store, TIER, items)  # the controls: judging work the tier flow does too
    store.replace_fad(MODEL, METHOD, pipeline.fad_per_class.fn(outcomes, MODEL, METHOD))
    runs.write_table(store)
    store.conclude(None)
    build_report(store)  # with the summary the flow publishes as an artifact


def child(args) -> None:
    """One arm in this process: fresh data dir (set by the parent), populate, then time the work."""
    import logging

    logging.getLogger("prefect").setLevel(logging.WARNING)
    if args.arm == "prefect":
        from audioprobe.prefect_server import ensure_server

        ensure_server()
    store, items = _new_run(args.items, args.samples)
    kinds = populate(items, args.samples, args.good_share)
    if args.arm == "populate":
        print(json.dumps({"replayed": kinds}))
        return
    from audioprobe.settings import get_settings
    from sandbox.client import shared_pool

    shared_pool(get_settings().limits).wait_ready()  # both arms start with a warm pool
    load0 = load_avg()
    t0, cpu0 = time.monotonic(), time.process_time()
    if args.arm == "prefect":
        from flows.benchmark import run_benchmark

        state = run_benchmark(store)
        if not state.is_completed():
            raise RuntimeError(f"the benchmark flow ended {state.name}: {state.message}")
    else:
        run_loop(store, items, args.samples)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    outcomes = store.outcomes()
    tally: dict[str, int] = {}
    for o in outcomes:
        tally[o.failure or "ok"] = tally.get(o.failure or "ok", 0) + 1
    print(json.dumps({"arm": args.arm, "n": len(items) * args.samples, "outcomes": len(outcomes), "wall_s": wall,
                      "process_cpu_s": cpu,
                      "replayed": kinds, "tally": tally, "load_before": load0, "load_after": load_avg(),
                      "cached_generations": sum(bool(o.generation and o.generation.cached) for o in outcomes)}))


# ----------------------------------------------------------------------------- parent


def bench_env(data_dir: Path, api_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(AUDIOPROBE_DATA_DIR=str(data_dir), AUDIOPROBE_PREFECT_PORT=str(BENCH_PORT), PYTHONUNBUFFERED="1")
    if api_url:
        env["AUDIOPROBE_PREFECT_API_URL"] = api_url
    return env


# Prefect's own defaults for what audioprobe.prefect_server.SERVER_TUNING sets: `--prefect-defaults`
# measures the server as it comes, for an A/B of that tuning.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "1",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "1",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "5",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "5",
}


def start_server(home: Path, prefect_defaults: bool = False) -> str:
    """A real Prefect server for the bench, the way `audioprobe run` starts one (own data dir and port)."""
    env = bench_env(home, None) | (PREFECT_DEFAULTS if prefect_defaults else {})
    proc = subprocess.run([sys.executable, "-m", "audioprobe", "server", "start"], env=env,
                          check=False, capture_output=True, text=True, timeout=240, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"Prefect server did not start: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["api_url"]


def stop_server(home: Path) -> None:
    subprocess.run([sys.executable, "-m", "audioprobe", "server", "stop"], env=bench_env(home, None),
                   check=False, capture_output=True, timeout=60, cwd=ROOT)


def server_cpu_s() -> float:
    """CPU seconds used so far by the bench's Prefect server process (0 where /proc cannot tell)."""
    found = subprocess.run(["pgrep", "-f", f"prefect server start --host 127.0.0.1 --port {BENCH_PORT}"],
                           check=False, capture_output=True, text=True).stdout.split()
    total = 0.0
    for pid in found:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_arm(arm: str, tmp: Path, api_url: str, items: int, samples: int, good_share: float, tag: str) -> dict:
    data = tmp / f"{arm}-{tag}"
    cmd = [sys.executable, "-m", "tests.bench.orchestration_bench", "--child", arm, "--items", str(items),
           "--samples", str(samples), "--good-share", str(good_share)]
    cpu0 = server_cpu_s()
    proc = subprocess.run(cmd, env=bench_env(data, api_url), check=False, capture_output=True, text=True, cwd=ROOT, timeout=7200)
    if proc.returncode:
        raise RuntimeError(f"arm {arm} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"server_cpu_s": server_cpu_s() - cpu0}


def replayed_cli_run(tmp: Path, api_url: str, limit: int, samples: int, good_share: float) -> dict:
    """(b): the real `audioprobe run` on a store filled beforehand."""
    data = tmp / f"cli-{limit}x{samples}"
    env = bench_env(data, api_url)
    pop = subprocess.run([sys.executable, "-m", "tests.bench.orchestration_bench", "--child", "populate", "--items",
                          str(limit), "--samples", str(samples), "--good-share", str(good_share)],
                         env=env, check=False, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if pop.returncode:
        raise RuntimeError(pop.stderr[-3000:])
    command = [sys.executable, "-m", "audioprobe", "run", "--tier", TIER, "--model", MODEL, "--method", METHOD,
               "--limit", str(limit), "--samples", str(samples), "--new"]
    load0 = load_avg()
    t0 = time.monotonic()
    proc = subprocess.run(command, env=env, check=False, capture_output=True, text=True, cwd=ROOT, timeout=7200)
    wall = time.monotonic() - t0
    if proc.returncode:
        raise RuntimeError(f"audioprobe run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    outcomes = [json.loads(p.read_text()) for p in (Path(result["run_dir"]) / "outcomes").glob("*.json")]
    tally: dict[str, int] = {}
    for o in outcomes:
        tally[o["failure"] or "ok"] = tally.get(o["failure"] or "ok", 0) + 1
    n = limit * samples
    return {"command": " ".join(command[1:]).replace("-m audioprobe", "audioprobe"), "n": n,
            "outcomes": len(outcomes), "wall_s": wall, "per_item_s": wall / n,
            "cached_generations": sum(bool(o["generation"] and o["generation"]["cached"]) for o in outcomes),
            "tally": tally, "replayed": json.loads(pop.stdout.strip().splitlines()[-1])["replayed"],
            "load_before": load0, "load_after": load_avg()}


FULL_RUN = 1500  # the paper's notes tier


def extrapolate(cli_runs: list[dict]) -> dict:
    """The 1,500-note wall time: measured when a run was that large, else the line through two runs."""
    big = cli_runs[-1]
    if big["n"] >= FULL_RUN:
        return big | {"how": "measured", "extrapolated_1500_s": big["wall_s"] * FULL_RUN / big["n"]}
    small = cli_runs[0]
    per_item = (big["wall_s"] - small["wall_s"]) / (big["n"] - small["n"])
    fixed = big["wall_s"] - per_item * big["n"]
    how = (f"extrapolated from replayed runs of {small['n']} and {big['n']} item-samples: "
           f"{fixed:.0f} s fixed + {per_item:.2f} s per item")
    return big | {"how": how, "fixed_s": fixed, "marginal_per_item_s": per_item,
                  "extrapolated_1500_s": fixed + per_item * FULL_RUN}


def measure(items: int, samples: int, rounds: int, good_share: float, run_limit: int, run_samples: int,
            prefect_defaults: bool = False) -> dict:
    out: dict = {"cores": os.cpu_count(), "load_at_start": load_avg(), "items": items, "samples": samples,
                 "rounds": rounds, "good_share": good_share, "arms": [],
                 "server_tuning": "Prefect's defaults" if prefect_defaults else "audioprobe's SERVER_TUNING"}
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "server"
        t0 = time.monotonic()
        api_url = start_server(home, prefect_defaults)
        out["server_start_s"] = time.monotonic() - t0
        try:
            # Both arms warmed: the image paged in, judge models and refs cached, and the flows and the
            # server's first writes done (in three benches the first round on a fresh server was 3-11 points
            # above the other two).
            for arm in ("loop", "prefect"):
                run_arm(arm, tmp, api_url, 2, 1, 1.0, "warmup")
            out["load_at_start"] = load_avg()
            for r in range(rounds):
                # Alternate which arm goes first, so load that drifts over the bench favours neither.
                for arm in ("loop", "prefect") if r % 2 == 0 else ("prefect", "loop"):
                    out["arms"].append(run_arm(arm, tmp, api_url, items, samples, good_share, str(r)))
            if run_limit:
                # Two sizes, so the run's fixed costs (CLI and flow start, the last FAD and report) are not
                # spread over the items: wall = fixed + n x per item, fitted through both.
                sizes = [run_limit] if run_limit * run_samples >= FULL_RUN else [max(1, run_limit // 3), run_limit]
                out["cli_runs"] = [replayed_cli_run(tmp, api_url, lim, run_samples, good_share) for lim in sizes]
                out["cli_run"] = extrapolate(out["cli_runs"])
        finally:
            stop_server(home)
    out["load_at_end"] = load_avg()
    if not rounds:
        return out
    walls = {arm: [a["wall_s"] for a in out["arms"] if a["arm"] == arm] for arm in ("loop", "prefect")}
    n = items * samples
    diffs = [p - lo for lo, p in zip(walls["loop"], walls["prefect"])]
    out["loop_wall_s"] = statistics.median(walls["loop"])
    out["prefect_wall_s"] = statistics.median(walls["prefect"])
    out["overhead_per_item_s"] = statistics.median(diffs) / n
    out["overhead_pct_by_round"] = [100 * d / p for d, p in zip(diffs, walls["prefect"])]
    out["overhead_pct_of_run"] = statistics.median(out["overhead_pct_by_round"])
    return out


def _rounds(m: dict) -> str:
    by_round = m.get("overhead_pct_by_round", [])
    return ": " + ", ".join(f"{p:.1f}%" for p in by_round) if len(by_round) > 1 else ""


def table(m: dict) -> str:
    n = m["items"] * m["samples"]
    rows: list[str] = []
    if m["rounds"]:
        rows += [
            (f"Orchestration overhead: {n} replayed notes item-samples per arm, {m['rounds']} round(s), "
             f"{m['cores']} cores, load average {m['load_at_start']} at start, {m['load_at_end']} at end "
             f"(good-answer share {m['good_share']})."),
            "",
            "| arm | wall (median) | per item | CPU/item: this process | CPU/item: Prefect server | failures (last) |",
            "|---|---|---|---|---|---|",
        ]
        for arm in ("loop", "prefect"):
            runs = [a for a in m["arms"] if a["arm"] == arm]
            last, wall = runs[-1], m[f"{arm}_wall_s"]
            cpu = statistics.median(a["process_cpu_s"] for a in runs) / n
            server = statistics.median(a["server_cpu_s"] for a in runs) / n
            name = "plain loop (.fn, same width)" if arm == "loop" else "Prefect flow (real server)"
            rows.append(f"| {name} | {wall:.1f} s | {wall / n:.2f} s | {cpu:.2f} s | {server:.2f} s | {last['tally']} |")
        rows += ["", (f"Overhead: **{m['overhead_per_item_s']:.3f} s per item**, **{m['overhead_pct_of_run']:.1f}%** "
                      f"of the Prefect run (median over rounds{_rounds(m)}; target < 10%). "
                      f"Server start: {m['server_start_s']:.1f} s; server settings: "
                      f"{m.get('server_tuning', 'not recorded')}."),
                 ""]
    if "cli_run" in m:
        rows += ["Replayed runs through the CLI (`audioprobe run --tier notes --model local --method paper "
                 "--limit L --samples S --new` on a filled response store):", "",
                 "| command | item-samples | wall | per item | cached generations | failures | load before -> after |",
                 "|---|---|---|---|---|---|---|"]
        for c in m["cli_runs"]:
            rows.append(f"| `{c['command']}` | {c['n']} | {c['wall_s']:.0f} s | {c['per_item_s']:.2f} s "
                        f"| {c['cached_generations']}/{c['outcomes']} | {c['tally']} | {c['load_before']} -> "
                        f"{c['load_after']} |")
        c = m["cli_run"]
        rows += ["", f"1,500 item-samples: **{c['extrapolated_1500_s'] / 60:.1f} min** ({c['how']})."]
    return "\n".join(rows)


def headline(m: dict) -> list[str]:
    """The lines `make bench` is judged by, each on a line of its own (issue 11's targets: < 10%, < 20 min)."""
    lines = []
    if m.get("rounds"):
        by_round = m.get("overhead_pct_by_round", [])
        spread = f"; rounds {min(by_round):.0f} to {max(by_round):.0f}%" if len(by_round) > 1 else ""
        lines.append(f"orchestration overhead: {m['overhead_pct_of_run']:.0f}% ({m['items'] * m['samples']} items"
                     f"{spread})")
    if "cli_run" in m:
        c = m["cli_run"]
        lines.append(f"replayed 1,500-note run: {c['extrapolated_1500_s'] / 60:.1f} min ({c['how']}; load "
                     f"{m['cli_runs'][0]['load_before']})")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=12, help="notes items per arm for the overhead comparison")
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1, help="loop/prefect pairs (0: only the replayed run)")
    ap.add_argument("--good-share", type=float, default=0.5, help="share of answers whose program makes the note")
    ap.add_argument("--run-limit", type=int, default=0,
                    help="(b) --limit of the larger replayed CLI run (a third of it is the smaller one); 0 skips it")
    ap.add_argument("--run-samples", type=int, default=1, help="(b) --samples of the replayed CLI run")
    ap.add_argument("--prefect-defaults", action="store_true",
                    help="start the server with Prefect's defaults instead of audioprobe's SERVER_TUNING (an A/B)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=["loop", "prefect", "populate"], dest="arm", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.arm:
        child(args)
        return 0
    m = measure(args.items, args.samples, args.rounds, args.good_share, args.run_limit, args.run_samples,
                args.prefect_defaults)
    print(json.dumps(m) if args.json else table(m) + "\n\n" + "\n".join(headline(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
