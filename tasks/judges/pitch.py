"""Pitch of a note: torchcrepe's f0, median over voiced frames, in cents against the asked MIDI pitch.

Deterministic: torchcrepe's own weighted_argmax caches bin centres with random dither added once per
process (so two runs differ by up to a bin); `_weighted_argmax` below is the same decoder with exact
bin centres, vectorised, and there is no Viterbi smoothing to seed. A frame is
voiced when its periodicity is >= VOICED (crepe's confidence; ~0.2 keeps sustained partials and drops
silence and noise). Pitches outside crepe's 360 bins (31.7-2005.5 Hz) cannot be measured: such targets
are marked unmeasurable rather than scored. An octave error is a median within 50 cents of the target
shifted by a whole, non-zero number of octaves: the right pitch class, the wrong register, as often
happens when a synthesised fundamental is weaker than its second harmonic.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from audioprobe.schema import Judgement
from tasks.judges import audio, compat
from tasks.judges.cache import JudgementCache

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
FMIN_HZ, FMAX_HZ = 31.7, 2005.5
VOICED = 0.2
CORRECT_CENTS = 50.0
PITCH_VERSION = f"pitch-v2+{audio.PREPROCESS_VERSION}+torchcrepe-0.0.24"


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def default_model(device: str) -> str:
    """`full` on a GPU; `tiny` on CPU, where full costs ~30 s per 4 s note on 2 cores (tiny: ~2 s)."""
    return "full" if device.startswith("cuda") else "tiny"


def judge_name(model: str = "full") -> str:
    return f"pitch/torchcrepe-{model}"


def _weighted_argmax(logits):
    """torchcrepe.decode.weighted_argmax without dither: sigmoid-weighted mean of the 9 bins around the argmax."""
    import torch

    torchcrepe = compat.import_torchcrepe()

    bins = logits.argmax(dim=1)  # (batch, time)
    idx = torch.arange(logits.size(1), device=logits.device)[None, :, None]
    near = (idx >= bins[:, None, :] - 4) & (idx < bins[:, None, :] + 5)
    probs = torch.sigmoid(logits) * near
    cents = torchcrepe.CENTS_PER_BIN * idx + 1997.3794084376191
    cents = (cents * probs).sum(dim=1) / probs.sum(dim=1)
    return bins, torchcrepe.convert.cents_to_frequency(cents)


def f0_track(wave16k: np.ndarray, model: str = "full", device: str = "cpu", batch_size: int = 512):
    """(f0 Hz, periodicity) per 10 ms frame."""
    import torch

    torchcrepe = compat.import_torchcrepe()
    x = torch.from_numpy(np.asarray(wave16k, dtype=np.float32))[None]
    with torch.inference_mode():
        f0, per = torchcrepe.predict(
            x, SAMPLE_RATE, HOP, fmin=FMIN_HZ, fmax=FMAX_HZ, model=model,
            decoder=_weighted_argmax, return_periodicity=True,
            batch_size=batch_size, device=device, pad=True,
        )
    return f0[0].cpu().numpy().astype(np.float64), per[0].cpu().numpy().astype(np.float64)


def measure(wave16k: np.ndarray, midi: float, model: str = "full", device: str = "cpu") -> dict:
    target = midi_to_hz(midi)
    values: dict = {"target_hz": round(target, 3), "f0_hz": None, "cents_error": None,
                    "octave_error": None, "octaves": None, "measurable": FMIN_HZ <= target <= FMAX_HZ,
                    "voiced_fraction": None}
    if not values["measurable"]:
        values["reason"] = f"target {target:.1f} Hz outside torchcrepe's {FMIN_HZ}-{FMAX_HZ} Hz"
        return values
    f0, per = f0_track(wave16k, model=model, device=device)
    voiced = per >= VOICED
    values["voiced_fraction"] = round(float(voiced.mean()) if len(voiced) else 0.0, 4)
    if not voiced.any():
        values["reason"] = f"no frame with periodicity >= {VOICED}"
        return values
    f0_hz = float(np.median(f0[voiced]))
    cents = 1200.0 * math.log2(f0_hz / target)
    octaves = round(cents / 1200.0)
    values.update(
        f0_hz=round(f0_hz, 3), cents_error=round(cents, 2),
        octave_error=bool(octaves != 0 and abs(cents - 1200.0 * octaves) <= CORRECT_CENTS),
        octaves=int(octaves),
    )
    return values


def judge_file(path: str | Path, midi: float, *, model: str | None = None, device: str = "cpu",
               cache: JudgementCache | None = None) -> Judgement:
    cache = cache or JudgementCache()
    model = model or default_model(device)
    sha = audio.sha256_file(path)
    name, params = judge_name(model), {"midi": midi}

    def compute() -> Judgement:
        wave = audio.prepare(path, SAMPLE_RATE, loudness="peak")
        v = measure(wave, midi, model=model, device=device)
        cents = v["cents_error"]
        return Judgement(
            judge=name, judge_version=PITCH_VERSION, audio_sha256=sha, params=params, values=v,
            # An unvoiced clip for a measurable note is a wrong note, not a judge failure; a target
            # outside the tracker's range is left unjudged (values.reason says why).
            correct=None if not v["measurable"] else (cents is not None and abs(cents) <= CORRECT_CENTS),
            score=None if cents is None else abs(cents),
        )

    return cache.get_or_compute(sha, name, PITCH_VERSION, params, compute)
