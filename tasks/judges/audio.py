"""One shared, versioned preprocessing for generated and reference audio.

Every judge reads audio through `load` and `prepare`, so generated clips and references go through the
same resampler, downmix, padding and loudness policy. Change any of them and bump PREPROCESS_VERSION:
it is part of every cache key, so judgements made with the old policy are never reused.

Policy (v1):
- read with the strict reader (tasks/judges/wavfile.py: RIFF/WAVE PCM or float only, header checked
  against the file size, bounded, under a time limit), samples as float32 in [-1, 1) for ints;
- downmix by averaging channels (a left-only stereo file loses 6 dB, as a listener's mono sum would);
- resample with scipy.signal.resample_poly (Kaiser-windowed polyphase FIR, exact rational ratio);
- NaN/inf are replaced by 0 and samples clipped to [-1, 1] after the gate has reported them;
- loudness: "keep" (embeddings: level and velocity are part of the sound; NSynth notes are not
  normalised either) or "peak" (pitch and speech recognisers: scale the peak to -1 dBFS so a quiet
  but audible clip is heard; a silent clip stays silent because the gate stops it first).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

PREPROCESS_VERSION = "audio-v2"  # v2: the strict float32 reader
Loudness = Literal["keep", "peak"]
PEAK_TARGET = 10 ** (-1 / 20)  # -1 dBFS


class AudioError(Exception):
    """The file could not be read as audio."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Samples as float32 (frames, channels), at most max_seconds, and the file's rate; raises AudioError."""
    from tasks.judges import wavfile

    try:
        info = wavfile.read_info(path)
        frames = None if max_seconds is None else int(np.ceil(max_seconds * info.sample_rate))
        return wavfile.read(path, max_frames=frames)
    except (wavfile.WavError, OSError) as exc:
        raise AudioError(f"{path}: not readable as audio ({exc})") from exc


def to_mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    if sr_from == sr_to or x.size == 0:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(sr_to, sr_from)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def pad_or_trim(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def apply_loudness(x: np.ndarray, loudness: Loudness) -> np.ndarray:
    if loudness == "keep":
        return x
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x if peak <= 0 else x * (PEAK_TARGET / peak)


def sanitize(x: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)


def prepare(
    path_or_samples: str | Path | np.ndarray,
    sr: int,
    *,
    source_sr: int | None = None,
    loudness: Loudness = "keep",
    min_seconds: float = 0.0,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Mono float32 at `sr`: sanitised, resampled, trimmed to max_seconds, zero-padded to min_seconds."""
    if isinstance(path_or_samples, np.ndarray):
        if source_sr is None:
            raise ValueError("source_sr is required with raw samples")
        x, file_sr = np.asarray(path_or_samples, dtype=np.float64), source_sr
    else:
        x, file_sr = load(path_or_samples, max_seconds)  # trimmed while read: a long file costs nothing extra
    x = sanitize(to_mono(x))
    if max_seconds is not None:
        x = x[: round(max_seconds * file_sr)]
    x = resample(x, file_sr, sr)
    if max_seconds is not None:
        x = x[: round(max_seconds * sr)]
    n_min = int(np.ceil(min_seconds * sr))
    if len(x) < n_min:
        x = pad_or_trim(x, n_min)
    return apply_loudness(x, loudness).astype(np.float32)
