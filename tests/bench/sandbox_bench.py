"""Sandbox overhead and throughput against bare `python3` subprocesses running the same programs.

Overhead = wall time of `run_program` (container start, program, output transfer, clean-up) minus the
median wall time of the same program as a bare subprocess of this interpreter in a temp dir. "cold"
starts a container per run; "warm" takes one from a `SandboxPool` started ahead of time. Throughput
runs a batch with 2 at once. Usage: python -m tests.bench.sandbox_bench [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

PROGRAMS = {
    "print": "print('hello')\n",
    "wav": (
        "import numpy as np, soundfile as sf\n"
        "sr = 16000\n"
        "t = np.arange(sr) / sr\n"
        "sf.write('note.wav', 0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t), sr)\n"
    ),
}


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def bare(code: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "program.py"), "w") as f:
            f.write(code)
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "program.py"],
            cwd=d,
            check=True,
            capture_output=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        return time.monotonic() - t0


def sandboxed(code: str, pool=None) -> float:
    from sandbox.client import run_program

    t0 = time.monotonic()
    result = run_program(code, expect=["*"], pool=pool)
    elapsed = time.monotonic() - t0
    assert result.status in ("ok", "no_output"), result
    return elapsed


def throughput(fn, n: int, width: int = 2) -> float:
    t0 = time.monotonic()
    with ThreadPoolExecutor(width) as ex:
        list(ex.map(lambda _: fn(), range(n)))
    return n / (time.monotonic() - t0)


def measure(runs: int) -> dict:
    from sandbox.client import SandboxPool

    out: dict = {"runs": runs, "programs": {}}
    sandboxed(PROGRAMS["wav"])  # page the image in
    for name, code in PROGRAMS.items():
        base = [bare(code) for _ in range(runs)]
        base_med = statistics.median(base)
        cold = [sandboxed(code) - base_med for _ in range(runs)]
        out["programs"][name] = {
            "bare_median_s": base_med,
            "cold_overhead_median_s": statistics.median(cold),
            "cold_overhead_p95_s": p95(cold),
        }
        for kind, reuse in (("warm", 1), ("reuse", 10)):
            with SandboxPool(size=2, reuse=reuse) as pool:
                warm = []
                for _ in range(runs):
                    pool.wait_ready()
                    warm.append(sandboxed(code, pool) - base_med)
            out["programs"][name] |= {
                f"{kind}_overhead_median_s": statistics.median(warm),
                f"{kind}_overhead_p95_s": p95(warm),
            }
    # Other jobs on the machine make absolute rates drift, so the three are interleaved in rounds and
    # the ratios taken per round.
    code, per_round, rounds = PROGRAMS["wav"], max(4, runs // 2), 4
    rates: dict[str, list[float]] = {"bare": [], "cold": [], "warm": [], "reuse": []}
    with SandboxPool(size=2) as pool, SandboxPool(size=2, reuse=10) as reusing:
        for _ in range(rounds):
            rates["bare"].append(throughput(lambda: bare(code), per_round))
            rates["cold"].append(throughput(lambda: sandboxed(code), per_round))
            pool.wait_ready()
            rates["warm"].append(throughput(lambda: sandboxed(code, pool), per_round))
            reusing.wait_ready()
            rates["reuse"].append(throughput(lambda: sandboxed(code, reusing), per_round))
    out["throughput_2_at_once"] = {
        "programs": per_round * rounds,
        "bare_per_s": statistics.median(rates["bare"]),
        "cold_per_s": statistics.median(rates["cold"]),
        "warm_per_s": statistics.median(rates["warm"]),
        "cold_slowdown": statistics.median(b / c for b, c in zip(rates["bare"], rates["cold"])),
        "warm_slowdown": statistics.median(b / w for b, w in zip(rates["bare"], rates["warm"])),
        "reuse_per_s": statistics.median(rates["reuse"]),
        "reuse_slowdown": statistics.median(b / w for b, w in zip(rates["bare"], rates["reuse"])),
        "rounds": rates,
    }
    return out


def table(m: dict) -> str:
    rows = [
        "| program | bare python3 (median) | overhead cold: median / p95 | warm pool: median / p95 "
        "| warm pool, reuse=10: median / p95 |",
        "|---|---|---|---|---|",
    ]
    for name, p in m["programs"].items():
        rows.append(
            f"| {name} | {p['bare_median_s']:.3f} s | {p['cold_overhead_median_s']:.3f} / "
            f"{p['cold_overhead_p95_s']:.3f} s | {p['warm_overhead_median_s']:.3f} / {p['warm_overhead_p95_s']:.3f} s "
            f"| {p['reuse_overhead_median_s']:.3f} / {p['reuse_overhead_p95_s']:.3f} s |"
        )
    t = m["throughput_2_at_once"]
    rows += [
        "",
        f"Throughput, {t['programs']} `wav` programs each way, 2 at once, in 4 interleaved rounds "
        "(medians; slowdown = median of the per-round ratios):",
        "",
        "| bare python3 | sandbox cold | warm pool | warm pool, reuse=10 |",
        "|---|---|---|---|",
        f"| {t['bare_per_s']:.2f}/s | {t['cold_per_s']:.2f}/s ({t['cold_slowdown']:.2f}x slower) "
        f"| {t['warm_per_s']:.2f}/s ({t['warm_slowdown']:.2f}x slower) "
        f"| {t['reuse_per_s']:.2f}/s ({t['reuse_slowdown']:.2f}x slower) |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    m = measure(args.runs)
    print(json.dumps(m) if args.json else table(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
