"""All benches, each at a short default size (about 10 minutes in all on 2 cores), as markdown tables.

    .venv/bin/python -m tests.bench.run_all                 # what `make bench` runs
    .venv/bin/python -m tests.bench.run_all --large         # bigger sizes (an hour or more on 2 cores)
    .venv/bin/python -m tests.bench.run_all --only orchestration --run-limit 375 --run-samples 4   # 1,500 notes

Each bench runs in its own process, one after the other (they would otherwise measure each other).
The load average is printed beside each: other jobs on the machine move every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHES = ("sandbox", "judges", "orchestration")
HEADLINES = ("orchestration overhead:", "replayed 1,500-note run:")  # orchestration_bench.headline's lines
SMALL = {"sandbox_runs": 5, "judge_clips": 8, "orch_items": 48, "orch_rounds": 5, "run_limit": 120, "run_samples": 1}
LARGE = {"sandbox_runs": 20, "judge_clips": 24, "orch_items": 96, "orch_rounds": 5, "run_limit": 375, "run_samples": 4}


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run(module: str, *args: str) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", f"tests.bench.{module}", *args], cwd=ROOT, check=False, capture_output=True,
                          text=True)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


def judges_table(res: dict) -> str:
    rows = [f"Judges on {res['device']} (torch {res['torch']}, {res['threads']} threads), {res['clips']} clips:", "",
            "| judge | clips/s |", "|---|---|"]
    rows += [f"| {name} | {rate} |" for name, rate in res["clips_per_s"].items()]
    if res.get("frechet"):
        rows += ["", "| Fréchet distance | " + " | ".join(next(iter(res["frechet"].values())).keys()) + " |",
                 "|---|" + "---|" * len(next(iter(res["frechet"].values())))]
        for label, row in res["frechet"].items():
            cells = [f"{v['fd']} ({v['ms']} ms)" if isinstance(v, dict) else str(v)[:60] for v in row.values()]
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows += ["", *(f"- {k}: {v}" for k, v in res.get("notes", {}).items())]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=BENCHES, help="run only these (repeatable)")
    ap.add_argument("--large", action="store_true", help="the bigger preset sizes")
    ap.add_argument("--sandbox-runs", type=int)
    ap.add_argument("--judge-clips", type=int)
    ap.add_argument("--judge-skip", default="clap,pitch-full", help="judges_bench --skip (default skips the slow ones)")
    ap.add_argument("--orch-items", type=int, help="notes items per arm of the overhead comparison")
    ap.add_argument("--orch-rounds", type=int)
    ap.add_argument("--run-limit", type=int, help="--limit of the replayed `audioprobe run` (0 skips it)")
    ap.add_argument("--run-samples", type=int, help="--samples of the replayed run (limit x samples item-samples)")
    ap.add_argument("--good-share", type=float, default=0.5)
    args = ap.parse_args(argv)
    size = dict(LARGE if args.large else SMALL)
    for key in size:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    chosen = args.only or list(BENCHES)
    failed = 0
    headlines: list[str] = []
    print(f"# audioprobe benches\n\n{os.cpu_count()} cores; load average (1/5/15 min) at start: {load()}\n")
    for name in chosen:
        print(f"## {name}\n", flush=True)
        before = load()
        if name == "sandbox":
            code, out, err, wall = run("sandbox_bench", "--runs", str(size["sandbox_runs"]))
            body = out.strip()
        elif name == "judges":
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "judges.json"
                skip = ["--skip", args.judge_skip] if args.judge_skip else []
                code, out, err, wall = run("judges_bench", "--clips", str(size["judge_clips"]), "--out", str(path), *skip)
                body = judges_table(json.loads(path.read_text())) if code == 0 and path.exists() else ""
        else:
            code, out, err, wall = run("orchestration_bench", "--items", str(size["orch_items"]), "--rounds",
                                       str(size["orch_rounds"]), "--run-limit", str(size["run_limit"]),
                                       "--run-samples", str(size["run_samples"]), "--good-share", str(args.good_share))
            body = out.strip()
            headlines += [ln for ln in body.splitlines() if ln.startswith(HEADLINES)]
        if code:
            failed += 1
            body = f"**failed** (exit {code}):\n\n```\n{err.strip()[-3000:]}\n```"
        print(f"{body}\n\n_{name}: {wall:.0f} s; load average {before} before, {load()} after._\n", flush=True)
    if headlines:
        print("## headline\n\n" + "\n".join(headlines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
