"""Section 9's tables: the listening study's band thresholds (listening/calibration.json) and the run's
clips (listening/distances.json) in those bands; html_human_calibration.py renders them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from audioprobe.listening.calibrate import band

CAL = Path("listening") / "calibration.json"
COLUMNS = [
    "embedding",
    "metric",
    "clip_length",
    "n_ratings",
    "n_clips",
    "raters",
    "boundary",
    "threshold",
    "ci_lo",
    "ci_hi",
    "method",
]


def load(run_dir: Path | None) -> dict | None:
    path = run_dir / CAL if run_dir else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def thresholds_table(run_dir: Path | None) -> pd.DataFrame:
    """One row per fitted boundary: written as human_calibration.csv beside the report."""
    cal = load(run_dir)
    rows = []
    for f in (cal or {}).get("fits", []):
        for t in f.get("thresholds", []):
            rows.append(
                {
                    "embedding": f["embedding"],
                    "metric": f["metric"],
                    "clip_length": f["clip_length"],
                    "n_ratings": f["n_ratings"],
                    "n_clips": f["n_clips"],
                    "raters": ", ".join(f["raters"]),
                    "boundary": t["boundary"],
                    "threshold": t["value"],
                    "ci_lo": t["ci"][0],
                    "ci_hi": t["ci"][1],
                    "method": f["method"],
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def banded(run_dir: Path, cal: dict) -> pd.DataFrame:
    """Every valid clip of the run in its calibrated band, per model, tier and fit."""
    path = run_dir / "listening" / "distances.json"
    clips = json.loads(path.read_text()) if path.is_file() else []
    rows = []
    for f in cal["fits"]:
        if "thresholds" not in f:
            continue
        for c in clips:
            if (c["embedding"], c["clip_length"]) == (f["embedding"], f["clip_length"]) and f["metric"] in c[
                "distances"
            ]:
                rows.append(
                    {
                        "model": c["model"],
                        "tier": c["tier"],
                        "fit": f"{f['embedding']} · {f['metric']} · {f['clip_length']}",
                        "band": band(c["distances"][f["metric"]], f),
                    }
                )
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    out = df.pivot_table(index=["fit", "model", "tier"], columns="band", aggfunc="size", fill_value=0)
    out = out.reindex(columns=["highly similar", "moderately similar", "not similar"], fill_value=0)
    out["clips"] = out.sum(axis=1)
    return out.reset_index()
