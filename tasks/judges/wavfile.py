"""Strict, bounded reading of untrusted WAV files: the only way the host decodes generated audio.

Accepted: RIFF/WAVE with format tag 1 (PCM, 8/16/24/32-bit), 3 (IEEE float, 32/64-bit), or
WAVE_FORMAT_EXTENSIBLE whose sub-format is PCM or IEEE float; 1..MAX_CHANNELS channels; a positive
sample rate (whether it is a sensible one is the gate's call). Everything else (FLAC or MP3 under a
`.wav` name, RF64, compressed WAV codecs) is refused before a sample is decoded. The header is checked
against the file size: a chunk that claims more bytes than the file has is refused, not trusted.
Samples are read in blocks straight into float32, at most `max_frames`, under a wall-clock limit, so
a reader holds one float32 copy of what it returns plus one block. Standard library + numpy only:
no codec library ever sees the bytes.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_CHANNELS = 8
MAX_CHUNKS = 64  # a header of thousands of tiny chunks is not a WAV anyone wrote
BLOCK_FRAMES = 1 << 16
READ_TIMEOUT_S = 8.0
MAX_SAMPLES = 48000 * 60 * MAX_CHANNELS  # what a normalised output can hold: 88 MiB as float32
WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_*
BITS = {"pcm": (8, 16, 24, 32), "float": (32, 64)}


class WavError(Exception):
    """Not a WAV this reader accepts, or not readable within its limits; the message says why."""


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits: int
    encoding: str  # "pcm" or "float"
    frames: int
    data_offset: int
    file_bytes: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def read_info(path: str | Path) -> WavInfo:
    """The header, checked against the file size; raises WavError."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            kind = _sniff(head)
            raise WavError(f"not RIFF/WAVE{f' (looks like {kind})' if kind else ''}")
        riff_size = struct.unpack("<I", head[4:8])[0]
        if riff_size + 8 > size:
            raise WavError(f"RIFF header claims {riff_size + 8} bytes, the file has {size}")
        fmt = None
        pos = 12
        for _ in range(MAX_CHUNKS):
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise WavError("no data chunk" if fmt else "no fmt chunk")
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            body = pos + 8
            if body + csize > size:
                raise WavError(f"chunk {cid!r} claims {csize} bytes at offset {body}, the file has {size}")
            if cid == b"fmt ":
                if csize < 16 or csize > 1024:
                    raise WavError(f"fmt chunk of {csize} bytes")
                fmt = _parse_fmt(f.read(csize))
            elif cid == b"data":
                if fmt is None:
                    raise WavError("data chunk before the fmt chunk")
                rate, channels, bits, encoding = fmt
                frames = csize // (channels * bits // 8)
                return WavInfo(rate, channels, bits, encoding, frames, body, size)
            pos = body + csize + (csize & 1)  # chunks are word-aligned
        raise WavError(f"more than {MAX_CHUNKS} chunks before the data")


def _parse_fmt(raw: bytes) -> tuple[int, int, int, str]:
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(raw) < 40 or struct.unpack("<H", raw[16:18])[0] < 22:
            raise WavError("WAVE_FORMAT_EXTENSIBLE without its extension")
        valid_bits = struct.unpack("<H", raw[18:20])[0]
        sub = raw[24:40]
        if sub[2:] != GUID_TAIL or struct.unpack("<H", sub[:2])[0] not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
            raise WavError(f"WAVE_FORMAT_EXTENSIBLE with sub-format {sub.hex()}, not PCM or float")
        if valid_bits > bits:
            raise WavError(f"{valid_bits} valid bits in a {bits}-bit container")
        tag = struct.unpack("<H", sub[:2])[0]
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        raise WavError(f"format tag {tag:#06x}: only PCM (1), float (3) or EXTENSIBLE of those")
    encoding = "pcm" if tag == WAVE_FORMAT_PCM else "float"
    if bits not in BITS[encoding]:
        raise WavError(f"{bits}-bit {encoding} samples")
    if not 1 <= channels <= MAX_CHANNELS:
        raise WavError(f"{channels} channels (1 to {MAX_CHANNELS} accepted)")
    if rate < 1:
        raise WavError("sample rate 0")
    if align != channels * bits // 8 or byte_rate != rate * align:
        raise WavError(f"block align {align} / byte rate {byte_rate} disagree with {channels} x {bits} bits at {rate} Hz")
    return rate, channels, bits, encoding


def _sniff(head: bytes) -> str | None:
    for magic, kind in ((b"fLaC", "FLAC"), (b"OggS", "Ogg"), (b"ID3", "MP3"), (b"RF64", "RF64"), (b"FORM", "AIFF")):
        if head.startswith(magic):
            return kind
    return None


def iter_blocks(
    path: str | Path, info: WavInfo | None = None, max_frames: int | None = None, timeout_s: float = READ_TIMEOUT_S
) -> Iterator[np.ndarray]:
    """float32 blocks (frames, channels) of at most BLOCK_FRAMES; ints scaled to [-1, 1)."""
    info = info or read_info(path)
    frames = info.frames if max_frames is None else min(info.frames, max(0, max_frames))
    width = info.bits // 8
    frame_bytes = width * info.channels
    deadline = time.monotonic() + timeout_s
    with open(path, "rb") as f:
        f.seek(info.data_offset)
        left = frames
        while left > 0:
            if time.monotonic() > deadline:
                raise WavError(f"not read within {timeout_s:g} s")
            n = min(BLOCK_FRAMES, left)
            raw = f.read(n * frame_bytes)
            n = len(raw) // frame_bytes
            if n == 0:
                raise WavError("file shorter than its header says")
            yield _decode(raw[: n * frame_bytes], info).reshape(n, info.channels)
            left -= n


def _decode(raw: bytes, info: WavInfo) -> np.ndarray:
    if info.encoding == "float":
        return np.frombuffer(raw, "<f4" if info.bits == 32 else "<f8").astype(np.float32)
    if info.bits == 8:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if info.bits == 16:
        return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if info.bits == 32:
        return (np.frombuffer(raw, "<i4") / 2147483648.0).astype(np.float32)
    b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    return (np.where(v >= 1 << 23, v - (1 << 24), v) / 8388608.0).astype(np.float32)


def read(
    path: str | Path, max_frames: int | None = None, max_samples: int = MAX_SAMPLES, timeout_s: float = READ_TIMEOUT_S
) -> tuple[np.ndarray, int]:
    """Samples as float32 (frames, channels) and the rate; at most max_frames, refused past max_samples."""
    info = read_info(path)
    frames = info.frames if max_frames is None else min(info.frames, max(0, max_frames))
    if frames * info.channels > max_samples:
        raise WavError(
            f"{frames} frames x {info.channels} channels is over the reader's cap of {max_samples} samples"
        )
    out = np.empty((frames, info.channels), np.float32)
    pos = 0
    for block in iter_blocks(path, info, frames, timeout_s):
        out[pos : pos + len(block)] = block
        pos += len(block)
    return out, info.sample_rate
