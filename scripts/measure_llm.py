"""Measure the embedded model on real notes prompts: seconds per response and tokens per second.

    .venv/bin/python scripts/measure_llm.py [--model qwen2.5-coder-1.5b] [--n 3] [--max-tokens 1536]

Each ask is a distinct NSynth-like note (so no store hit), against a server started here; the load
average is printed beside the figures because on a shared 2-core machine it moves them by a factor of 4.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audioprobe.schema import ProbeItem
from audioprobe.settings import ModelSettings, Settings
from tasks.generation import llm, local_server
from tasks.prompting import render

NOTES = [
    ("guitar", "acoustic", 60, "C4", 100, "Bright, strong upper harmonics."),
    ("flute", "synthetic", 72, "C5", 75, "Breathy, with audible air noise at the onset."),
    ("mallet", "acoustic", 67, "G4", 127, "A loud non-harmonic sound at note onset."),
    ("bass", "electronic", 40, "E2", 50, "Distorted, crunchy, many harmonics."),
    ("organ", "electronic", 55, "G3", 90, "A sustained tone with little decay."),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=1536)
    ap.add_argument("--port", type=int, default=8780)
    args = ap.parse_args()
    base = Settings()
    data = Path(tempfile.mkdtemp(prefix="measure-llm-"))
    s = Settings(
        cache_dir=base.cache_dir,
        data_dir=data,
        local_model=args.model,
        local_port=args.port,
        models={"local": ModelSettings(max_tokens=args.max_tokens)},
    )
    rows = []
    with local_server.LocalServer(args.model, s, port=args.port):
        for family, source, pitch, name, vel, quality in NOTES[: args.n]:
            item = ProbeItem(
                id=f"measure:{family}_{source}-{pitch:03d}-{vel:03d}",
                tier="notes",
                label=f"{family}_{source}",
                dataset="measure",
                pitch=pitch,
                note_name=name,
                velocity=vel,
                amplitude=vel / 127,
                instrument_family=family,
                instrument_source=source,
                quality_descriptions=[quality],
            )
            load0 = os.getloadavg()[0]
            gen = llm.generate(render(item, "notes", "paper"), "local", settings=s)
            rows.append(
                {
                    "item": item.id,
                    "status": gen.extraction_status,
                    "tokens_out": gen.tokens_out,
                    "latency_s": gen.latency_s,
                    "tokens_per_s": round(gen.tokens_out / gen.latency_s, 2) if gen.tokens_out else None,
                    "load_before": round(load0, 2),
                    "load_after": round(os.getloadavg()[0], 2),
                    "error": gen.error,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    done = [r for r in rows if r["tokens_out"]]
    summary = {
        "model": args.model,
        "cores": os.cpu_count(),
        "responses": len(done),
        "mean_s_per_response": round(sum(r["latency_s"] for r in done) / len(done), 1) if done else None,
        "tokens_per_s": round(sum(r["tokens_out"] for r in done) / sum(r["latency_s"] for r in done), 2)
        if done
        else None,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
