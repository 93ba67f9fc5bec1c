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
from tasks.judges import wavfile
from tasks.judges.audio import PREPROCESS_VERSION, sha256_file

GATE_VERSION = f"gate-v2+{PREPROCESS_VERSION}"  # v2: the strict RIFF/WAVE reader, streamed statistics

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
    """Gate one file against what was asked (None: not asked, not checked).

    The file is read with the strict reader (tasks/judges/wavfile.py) block by block: statistics are
    accumulated per block, so memory does not grow with the file and reading stops at its time limit.
    """
    path = Path(path)
    if not path.is_file():
        return _result([f"missing: {path}"])
    digest = sha256_file(path)
    try:
        info = wavfile.read_info(path)
    except (wavfile.WavError, OSError) as exc:
        return _result([f"unreadable: {exc}"], sha256=digest)
    file_sr, file_ch, frames = info.sample_rate, info.channels, info.frames
    duration = info.duration_s
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
        # not read: a 10-hour file would cost time for nothing
        return _result(problems + [f"absurd_length: {duration:.3f} s"], **fields)
    if any(name in FATAL for name in problem_names(problems)):
        return _result(problems, **fields)
    if seconds is not None and abs(duration - seconds) > max(duration_tolerance * seconds, 0.05):
        problems.append(f"duration: {duration:.3f} s, asked {seconds:g} s")
    try:
        stats = _stats(path, info)
    except (wavfile.WavError, OSError) as exc:
        return _result(problems + [f"unreadable: {exc}"], **fields)
    if stats["nan"]:
        problems.append(f"nan: {stats['nan']} samples")
    if stats["inf"]:
        problems.append(f"inf: {stats['inf']} samples")
    peak, n = stats["peak"], frames * file_ch
    rms = float(np.sqrt(stats["sumsq"] / n))
    fields.update(peak=round(peak, 6), rms=round(rms, 6))
    if peak < SILENCE_PEAK:
        problems.append(f"silent: peak {peak:.2e}")
    else:
        clipped = stats["clipped"] / n
        if peak > 1.0:
            problems.append(f"clipping: peak {peak:.3f} beyond full scale")
        elif clipped > CLIP_FRACTION:
            problems.append(f"clipping: {clipped:.2%} of samples at full scale")
        dc = float(np.max(np.abs(stats["sums"] / frames)))
        if dc > DC_LIMIT:
            problems.append(f"dc_offset: mean {dc:.3f}")
    return _result(problems, **fields)


def _stats(path: Path, info: wavfile.WavInfo) -> dict:
    """NaN/inf counts, peak, sum of squares, full-scale count and per-channel sums over finite samples."""
    acc = {"nan": 0, "inf": 0, "peak": 0.0, "sumsq": 0.0, "clipped": 0, "sums": np.zeros(info.channels)}
    for block in wavfile.iter_blocks(path, info):
        finite = np.isfinite(block)
        if not finite.all():
            acc["nan"] += int(np.isnan(block).sum())
            acc["inf"] += int(np.isinf(block).sum())
            block = np.where(finite, block, np.float32(0))
        mag = np.abs(block).astype(np.float64)
        acc["peak"] = max(acc["peak"], float(mag.max()))
        acc["sumsq"] += float(np.square(mag).sum())
        acc["clipped"] += int((mag >= CLIP_LEVEL).sum())
        acc["sums"] += block.sum(axis=0, dtype=np.float64)
    return acc
