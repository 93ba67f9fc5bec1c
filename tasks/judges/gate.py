"""The audio gate: is this file something a judge can listen to, and is it what was asked for?

Each problem is a string that starts with a fixed name (`name` or `name: detail`). `ok` is False when
any FATAL problem is present: those make every judge's answer meaningless (or, for silence, wrong in a
known way: pocketsphinx decodes silence as "dog"). The other problems record that the program did not
follow the brief (wrong rate, length, channels) or made poor audio (clipping, DC offset); the clip is
still judged, and the report can count them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioprobe.schema import GateResult
from tasks.judges.audio import PREPROCESS_VERSION, sha256_file

GATE_VERSION = f"gate-v1+{PREPROCESS_VERSION}"

FATAL = frozenset(
    {"missing", "unreadable", "empty", "nan", "inf", "silent", "absurd_length", "absurd_sample_rate"}
)
SILENCE_PEAK = 10 ** (-60 / 20)  # -60 dBFS: nothing a listener or a judge would call a sound
CLIP_LEVEL = 0.999
CLIP_FRACTION = 1e-3  # more than 0.1 % of samples at full scale
DC_LIMIT = 0.05  # |mean| above 5 % of full scale
MIN_SECONDS = 0.05
MAX_SECONDS = 600.0
ABSURD_FACTOR = 10.0  # ten times longer than asked, or a tenth of it
MIN_SR, MAX_SR = 1000, 768_000


def problem_names(problems: list[str]) -> list[str]:
    return [p.split(":", 1)[0] for p in problems]


def _result(problems: list[str], **fields) -> GateResult:
    fatal = any(name in FATAL for name in problem_names(problems))
    return GateResult(ok=not fatal, problems=problems, gate_version=GATE_VERSION, **fields)


def check(
    path: str | Path,
    *,
    sr: int | None = None,
    seconds: float | None = None,
    channels: int | None = None,
    duration_tolerance: float = 0.1,
) -> GateResult:
    """Gate one file against what was asked (None: not asked, not checked)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return _result([f"missing: {path}"])
    digest = sha256_file(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - soundfile raises many types for broken files
        return _result([f"unreadable: {type(exc).__name__}: {exc}"], sha256=digest)
    file_sr, file_ch, frames = int(info.samplerate), int(info.channels), int(info.frames)
    duration = frames / file_sr if file_sr > 0 else 0.0
    fields = {"sample_rate": file_sr, "channels": file_ch, "duration_s": round(duration, 4), "sha256": digest}
    problems: list[str] = []
    if not MIN_SR <= file_sr <= MAX_SR:
        problems.append(f"absurd_sample_rate: {file_sr} Hz")
    if sr is not None and file_sr != sr:
        problems.append(f"sample_rate: {file_sr} Hz, asked {sr} Hz")
    if channels is not None and file_ch != channels:
        problems.append(f"channels: {file_ch}, asked {channels}")
    if frames == 0:
        return _result(problems + ["empty"], **fields)
    if duration > MAX_SECONDS or duration < MIN_SECONDS or (
        seconds and not seconds / ABSURD_FACTOR <= duration <= seconds * ABSURD_FACTOR
    ):
        # not loaded: a 10-hour file would cost memory for nothing
        return _result(problems + [f"absurd_length: {duration:.3f} s"], **fields)
    if seconds is not None and abs(duration - seconds) > max(duration_tolerance * seconds, 0.05):
        problems.append(f"duration: {duration:.3f} s, asked {seconds:g} s")
    try:
        data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - as above
        return _result(problems + [f"unreadable: {type(exc).__name__}: {exc}"], **fields)
    n_nan, n_inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
    if n_nan:
        problems.append(f"nan: {n_nan} samples")
    if n_inf:
        problems.append(f"inf: {n_inf} samples")
    finite = np.where(np.isfinite(data), data, 0.0)
    peak = float(np.max(np.abs(finite)))
    rms = float(np.sqrt(np.mean(finite**2)))
    fields.update(peak=round(peak, 6), rms=round(rms, 6))
    if peak < SILENCE_PEAK:
        problems.append(f"silent: peak {peak:.2e}")
    else:
        clipped = float(np.mean(np.abs(finite) >= CLIP_LEVEL))
        if peak > 1.0:
            problems.append(f"clipping: peak {peak:.3f} beyond full scale")
        elif clipped > CLIP_FRACTION:
            problems.append(f"clipping: {clipped:.2%} of samples at full scale")
        dc = float(np.max(np.abs(finite.mean(axis=0))))
        if dc > DC_LIMIT:
            problems.append(f"dc_offset: mean {dc:.3f}")
    return _result(problems, **fields)
