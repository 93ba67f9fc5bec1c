"""Hostile audio files, and the gate measured on them in a fresh process (peak RSS, seconds).

Written for issue 14, not tuned to its examples: each file lies in a different place (magic, format
tag, rate, channels, sizes, chunk structure, sub-format) or is honest but as large as allowed.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PCM_GUID = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def fmt_chunk(tag=1, channels=1, rate=16000, bits=16, align=None, byte_rate=None, ext: bytes = b"") -> bytes:
    align = channels * bits // 8 if align is None else align
    byte_rate = rate * align if byte_rate is None else byte_rate
    body = struct.pack("<HHIIHH", tag, channels, rate, byte_rate & 0xFFFFFFFF, align & 0xFFFF, bits) + ext
    return b"fmt " + struct.pack("<I", len(body)) + body


def riff(*chunks: bytes, riff_size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def data_chunk(payload: bytes, claimed: int | None = None) -> bytes:
    return b"data" + struct.pack("<I", len(payload) if claimed is None else claimed) + payload


def tone_bytes(n: int, channels: int = 1) -> bytes:
    t = np.arange(n) / 16000
    x = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    return np.repeat(x[:, None], channels, axis=1).tobytes()


def extensible(channels: int, bits: int, guid: bytes, valid_bits: int | None = None, cb: int = 22) -> bytes:
    ext = struct.pack("<HHI", cb, bits if valid_bits is None else valid_bits, 0) + guid
    return fmt_chunk(0xFFFE, channels, 16000, bits, ext=ext)


def hostile_files(folder: Path) -> dict[str, Path]:
    """name -> a file that the strict reader must refuse (and the gate call unreadable or absurd)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    pcm = tone_bytes(16000)
    cases = {
        # A few kB of FLAC that decodes to 30 s x 6 channels at 96 kHz (silence compresses to nothing).
        "flac_bomb_named_wav": None,
        "ogg_named_wav": None,
        "id3_mp3_named_wav": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 4000,
        "rate_two_gigahertz": riff(fmt_chunk(rate=2_000_000_000), data_chunk(pcm)),  # a consistent header
        "rate_four_gigahertz": riff(fmt_chunk(rate=4_000_000_000, byte_rate=0), data_chunk(pcm)),
        "rate_zero": riff(fmt_chunk(rate=0, byte_rate=0), data_chunk(pcm)),
        "zero_channels": riff(fmt_chunk(channels=0, align=0), data_chunk(pcm)),
        "sixty_five_thousand_channels": riff(fmt_chunk(channels=65535), data_chunk(pcm)),
        "data_claims_two_gigabytes": riff(fmt_chunk(), data_chunk(pcm, claimed=0x7FFFFFF0)),
        "riff_claims_four_gigabytes": riff(fmt_chunk(), data_chunk(pcm), riff_size=0xFFFFFFF0),
        "fmt_claims_a_megabyte": riff(b"fmt " + struct.pack("<I", 1 << 20) + b"\0" * 16, data_chunk(pcm)),
        "block_align_lies": riff(fmt_chunk(align=1), data_chunk(pcm)),
        "twelve_bit_pcm": riff(fmt_chunk(bits=12, align=2, byte_rate=32000), data_chunk(pcm)),
        "adpcm_tag": riff(fmt_chunk(tag=2), data_chunk(pcm)),
        "extensible_garbage_guid": riff(extensible(2, 16, bytes(range(16))), data_chunk(tone_bytes(8000, 2))),
        "extensible_without_extension": riff(fmt_chunk(0xFFFE, 1, 16000, 16), data_chunk(pcm)),
        "extensible_valid_bits_over": riff(extensible(1, 16, PCM_GUID, valid_bits=32), data_chunk(pcm)),
        "data_before_fmt": riff(data_chunk(pcm), fmt_chunk()),
        "ten_thousand_chunks": riff(*[b"junk" + struct.pack("<I", 2) + b"xx"] * 10000, fmt_chunk(), data_chunk(pcm)),
        "truncated_header": riff(fmt_chunk())[:30],
        "rf64": b"RF64" + b"\xff" * 4 + b"WAVE" + fmt_chunk() + data_chunk(pcm),
    }
    paths = {}
    for name, payload in cases.items():
        path = folder / f"{name}.wav"
        if name == "flac_bomb_named_wav":
            with sf.SoundFile(path, "w", 96000, 6, format="FLAC", subtype="PCM_16") as f:
                block = np.zeros((96000, 6), np.float32)
                for _ in range(30):
                    f.write(block)
        elif name == "ogg_named_wav":
            sf.write(path, np.zeros((48000, 2), np.float32), 48000, format="OGG", subtype="VORBIS")
        else:
            path.write_bytes(payload)
        paths[name] = path
    return paths


def largest_honest_file(path: Path) -> Path:
    """The biggest output a normalised run can hand over: 60 s, 8 channels, 48 kHz, float32 (92 MB)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 48000, 8, format="WAV", subtype="FLOAT") as f:
        for _ in range(60):
            f.write((rng.standard_normal((48000, 8)) * 0.1).astype(np.float32))
    return path


GATE_PROBE = """
import json, resource, sys, time
from tasks.judges import gate
out = {}
for path in sys.argv[1:]:
    t0 = time.monotonic()
    result = gate.check(path)
    out[path] = {"ok": result.ok, "problems": result.problems, "seconds": time.monotonic() - t0}
out["__maxrss_mb__"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def gate_in_fresh_process(paths: list[Path]) -> tuple[dict, float]:
    """Gate each file in one new interpreter; (results by path, the process's peak RSS in MB)."""
    proc = subprocess.run(
        [sys.executable, "-c", GATE_PROBE, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    return out, out.pop("__maxrss_mb__")
