"""The audio gate: is this file something a judge can listen to, and is it what was asked for?

Each problem is a string that starts with a fixed name (`name` or `name: detail`). `ok` is False when
any FATAL problem is present: those make every judge's answer meaningless (or, for silence, wrong in a
known way: pocketsphinx decodes silence as "dog"). The other problems record that the program did not
follow the brief (wrong rate, length, channels) or made poor audio (clipping, DC offset); the clip is
still judged, and the report can count them.

Every check is made on what the judges will hear: samples cleaned (NaN/inf counted, then 0) and
downmixed in float64, where the judges' float32 downmix would overflow ±3e38 to inf and hear 0. A
peak far above full scale is fatal (`overflow`). Silence is a downmix whose swing (peak-to-peak) is
under -60 dBFS or whose level (RMS, DC removed) is under -70 dBFS: a DC level, channels that cancel
and a few faint clicks are silence. It is checked on the whole file and on the first seconds each
judge reads (JUDGE_WINDOWS): a file silent there is silence to that judge, whatever comes later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioprobe.schema import GateResult
from tasks.judges import wavfile
from tasks.judges.audio import PREPROCESS_VERSION, sha256_file

# v2: the strict RIFF/WAVE reader, streamed statistics; v3: float64 downmix, overflow, judge windows
GATE_VERSION = f"gate-v3+{PREPROCESS_VERSION}"

FATAL = frozenset(
    {"missing", "unreadable", "empty", "nan", "inf", "silent", "silent_window", "overflow", "absurd_length",
     "absurd_sample_rate"}
)
# The judges read from the start of a clip: the embedding judges (VGGish FAD, offline 5-way) a window of
# the references' median length, 4 s for NSynth notes (tasks/judges/distance.py reference_window);
# CLAP its first 10 s (clap.MAX_SECONDS); the speech judge its first 30 s (speech.py).
JUDGE_WINDOWS = ((4.0, "the embedding judges"), (10.0, "CLAP"), (30.0, "the speech judge"))
OVERFLOW_PEAK = 16.0  # +24 dBFS: no rendering mistake, and the judges' float32 sums overflow or clip it
SILENCE_PEAK = 10 ** (-60 / 20)  # -60 dBFS: nothing a listener or a judge would call a sound
SILENCE_RMS = 10 ** (-70 / 20)  # the level (RMS, DC removed): a few faint clicks in seconds of nothing
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
    fields.update(peak=round(min(peak, 1e30), 6), rms=round(min(rms, 1e30), 6))
    swing, level = stats["swing"], stats["level"]
    if peak > OVERFLOW_PEAK:
        problems.append(f"overflow: peak {peak:.3g}, far beyond full scale (the judges clip or overflow it)")
    elif swing["whole"] < SILENCE_PEAK or level["whole"] < SILENCE_RMS:
        problems.append(f"silent: peak {peak:.2e}, downmix swing {swing['whole']:.2e}, level {_db(level['whole'])}")
    else:
        for window_s, who in reversed(JUDGE_WINDOWS):  # the longest silent window says the most
            if window_s < duration and (swing[window_s] < SILENCE_PEAK or level[window_s] < SILENCE_RMS):
                problems.append(f"silent_window: the first {window_s:g} s, all that {who} hear, are silent "
                                f"(level {_db(level[window_s])})")
                break
        clipped = stats["clipped"] / n
        if peak > 1.0:
            problems.append(f"clipping: peak {peak:.3f} beyond full scale")
        elif clipped > CLIP_FRACTION:
            problems.append(f"clipping: {clipped:.2%} of samples at full scale")
        dc = float(np.max(np.abs(stats["sums"] / frames)))
        if dc > DC_LIMIT:
            problems.append(f"dc_offset: mean {dc:.3f}")
    return _result(problems, **fields)


def _figures(x: np.ndarray) -> tuple[float, float, int, float, float]:
    return float(x.min()), float(x.max()), x.size, float(x.sum()), float(np.dot(x, x))


def _db(rms: float) -> str:
    return f"{20 * np.log10(rms):.0f} dBFS" if rms > 0 else "-inf dBFS"


def _stats(path: Path, info: wavfile.WavInfo) -> dict:
    """Over cleaned float64 samples: NaN/inf counts, peak, sum of squares, full-scale count, per-channel
    sums, and the downmix's swing (max - min, halved) and level (RMS with the DC removed) over the
    whole file and each judge's window."""
    acc = {"nan": 0, "inf": 0, "peak": 0.0, "sumsq": 0.0, "clipped": 0, "sums": np.zeros(info.channels)}
    ends = {"whole": info.frames, **{w: round(w * info.sample_rate) for w, _ in JUDGE_WINDOWS}}
    lows, highs = dict.fromkeys(ends, np.inf), dict.fromkeys(ends, -np.inf)
    n, total, squares = dict.fromkeys(ends, 0), dict.fromkeys(ends, 0.0), dict.fromkeys(ends, 0.0)
    pos = 0
    for block in wavfile.iter_blocks(path, info):
        block = block.astype(np.float64)
        finite = np.isfinite(block)
        if not finite.all():
            acc["nan"] += int(np.isnan(block).sum())
            acc["inf"] += int(np.isinf(block).sum())
            block[~finite] = 0.0
        mag = np.abs(block)
        flat = block.ravel()
        acc["peak"] = max(acc["peak"], float(mag.max()))
        acc["sumsq"] += float(np.dot(flat, flat))
        acc["clipped"] += int(np.count_nonzero(mag >= CLIP_LEVEL))
        # matrix-vector products: numpy's sum and mean along an axis are ten times slower here
        acc["sums"] += np.ones(len(block)) @ block
        mono = block @ np.full(block.shape[1], 1 / block.shape[1]) if block.shape[1] > 1 else block[:, 0]
        whole = None  # the block's own figures, shared by every window that takes all of it
        for key, end in ends.items():
            if end <= pos:
                continue
            if end >= pos + len(mono):
                whole = whole or _figures(mono)
                got = whole
            else:
                got = _figures(mono[: end - pos])
            lows[key], highs[key] = min(lows[key], got[0]), max(highs[key], got[1])
            n[key] += got[2]
            total[key] += got[3]
            squares[key] += got[4]
        pos += len(mono)
    acc["swing"] = {k: max(0.0, (highs[k] - lows[k]) / 2) for k in ends}
    mean = {k: total[k] / max(n[k], 1) for k in ends}
    acc["level"] = {k: float(np.sqrt(max(0.0, squares[k] / max(n[k], 1) - mean[k] ** 2))) for k in ends}
    return acc
