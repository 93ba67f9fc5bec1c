"""Small-N bias of FAD and KAD on the offline reference sets: both sets drawn from the same class.

    .venv/bin/python -m tests.bench.distance_bias [--repeats 5]

Per instrument family (45 notes each in the offline nsynth set) two disjoint random draws of n notes are
compared, every clip embedded with logmel-stats over a fixed 4 s window; the figures are the mean over
families and repeats, with the share of draws whose 95% bootstrap CI contains 0. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from audioprobe.settings import get_settings
from tasks.judges import distance
from tasks.judges.embeddings import LogMelStats, embed_files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="5,10,20")
    ap.add_argument("--boot", type=int, default=100)
    args = ap.parse_args()
    audio = get_settings().refs_dir / "nsynth" / "audio"
    families: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(audio.glob("*.wav")):
        families[p.name.split("_")[0]].append(p)
    backend = LogMelStats()
    start = time.time()
    with tempfile.TemporaryDirectory() as cache:
        emb = {f: embed_files(backend, ps, cache_dir=Path(cache), window_s=4.0) for f, ps in families.items()}
    out = {"set": str(audio), "embedding": backend.version, "window_s": 4.0, "families": len(emb),
           "clips_per_family": sorted({len(v) for v in emb.values()}), "repeats": args.repeats, "sizes": {}}
    rng = np.random.default_rng(0)
    for n in (int(s) for s in args.sizes.split(",")):
        vals: dict[str, list[float]] = defaultdict(list)
        zero_in_ci: dict[str, list[bool]] = defaultdict(list)
        for clips in emb.values():
            if len(clips) < 2 * n:
                continue
            for _ in range(args.repeats):
                order = rng.permutation(len(clips))
                a, b = [clips[i] for i in order[:n]], [clips[i] for i in order[n : 2 * n]]
                for metric in ("fad", "kad"):
                    d = distance.distance(metric, a, b, embedding=backend.version, n_boot=args.boot)
                    vals[metric].append(d.value)
                    zero_in_ci[metric].append(bool(d.ci and d.ci[0] <= 0 <= d.ci[1]))
                vals["fad_inf"].append(distance.fad_inf(a, b)["value"])
        out["sizes"][n] = {
            m: {"mean": round(float(np.mean(v)), 3), "sd": round(float(np.std(v)), 3), "draws": len(v),
                **({"ci_contains_0": round(float(np.mean(zero_in_ci[m])), 2)} if m in zero_in_ci else {})}
            for m, v in vals.items()
        }  # fmt: skip
    out["seconds"] = round(time.time() - start, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
