"""Runs inside the sandbox after the program, as the program's uid, with the container's limits.

For each accepted `.wav` output it decodes whatever the file really is (libsndfile: WAV, FLAC, OGG,
AIFF, ...) and rewrites it in place as RIFF/WAVE, PCM16 (from 8- or 16-bit sources) or float32
(anything else), at most MAX_RATE Hz, MAX_CHANNELS channels and MAX_SECONDS seconds, so that the host
only ever reads a file whose header it can check. Prints one JSON object: for each name either
{"changes": [...]} (what it changed, empty when nothing) or {"error": reason}. Passed by the runner
as `python -I -c`; argv[1] is a JSON list of names in the cwd (the work dir).
"""

import json
import os
import sys
from fractions import Fraction

import numpy as np
import soundfile as sf

MAX_RATE = 48000
MAX_CHANNELS = 8
MAX_SECONDS = 60.0
MAX_SOURCE_RATE = 384000  # a rate above this is not audio anyone asked for: refused, not resampled
MAX_RATIO_TERM = 1000  # resampling ratios beyond up/down = 1000 cost too much: refused
BLOCK_SAMPLES = 1 << 20
KEEP_PCM16 = {"PCM_S8", "PCM_U8", "PCM_16"}


class Refused(Exception):
    pass


def decode(name):
    """(samples float32 (frames, channels), rate, changes)."""
    info = sf.info(name)
    rate, channels, frames = int(info.samplerate), int(info.channels), int(info.frames)
    changes = []
    if channels < 1:
        raise Refused("no channels")
    if not 1 <= rate <= MAX_SOURCE_RATE:
        raise Refused("sample rate %d Hz outside 1..%d" % (rate, MAX_SOURCE_RATE))
    if info.format != "WAV" or info.subtype not in KEEP_PCM16 | {"FLOAT"}:
        target = "PCM_16" if info.subtype in KEEP_PCM16 else "FLOAT"
        changes.append("%s/%s -> WAV/%s" % (info.format, info.subtype, target))
    keep = min(channels, MAX_CHANNELS)
    if keep < channels:
        changes.append("channels %d -> first %d" % (channels, keep))
    limit = int(MAX_SECONDS * rate)
    out = np.empty((min(frames, limit) if frames > 0 else 0, keep), np.float32)
    pos = 0
    with sf.SoundFile(name) as f:
        step = max(1, BLOCK_SAMPLES // channels)
        while pos < len(out):
            block = f.read(min(step, len(out) - pos), dtype="float32", always_2d=True)
            if not len(block):
                break
            out[pos : pos + len(block)] = block[:, :keep]
            pos += len(block)
    out = out[:pos]
    if frames > limit:
        changes.append("length %.2f s -> %.0f s" % (frames / rate, MAX_SECONDS))
    if rate > MAX_RATE:
        ratio = Fraction(MAX_RATE, rate)
        if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM:
            raise Refused("sample rate %d Hz has no simple ratio to %d Hz" % (rate, MAX_RATE))
        from scipy.signal import resample_poly

        out = resample_poly(out, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)
        changes.append("rate %d -> %d Hz" % (rate, MAX_RATE))
        rate = MAX_RATE
    return out, rate, changes, "PCM_16" if info.subtype in KEEP_PCM16 else "FLOAT"


def normalise(name):
    samples, rate, changes, subtype = decode(name)
    tmp = ".%s.normalised" % name
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        sf.write(tmp, samples, rate, format="WAV", subtype=subtype)
    except Exception as exc:  # noqa: BLE001 - libsndfile says only "System error." for ENOSPC/EFBIG
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise Refused(
            "the re-encoded file (%d frames x %d channels) could not be written: %s (work dir full?)"
            % (len(samples), samples.shape[1], exc)
        ) from None
    os.replace(tmp, name)
    return changes


def main():
    result = {}
    for name in json.loads(sys.argv[1]):
        try:
            result[name] = {"changes": normalise(name)}
        except Refused as exc:
            result[name] = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - libsndfile and numpy fail in many ways on bad input
            result[name] = {"error": "%s: %s" % (type(exc).__name__, str(exc)[:200])}
    sys.stdout.write(json.dumps(result))


main()
