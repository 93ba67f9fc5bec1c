"""Embedding backends for FAD and the offline classifier, behind one interface.

Each backend turns a mono waveform at its own sample rate into (examples, dim) frame embeddings, one
row per 0.96 s example, and is named (with its version) in every result that uses it.

- `vggish`: the real VGGish (tasks/judges/vggish.py) from a local checkpoint; the paper's embedding and
  the only one its FAD bands were calibrated on.
- `logmel-stats`: works here with no download. Per 0.96 s VGGish example (the same front end, so the
  same number of frames per clip as vggish), the mean and standard deviation over time of each of the 64
  log-mel bands: 128 numbers describing spectral envelope (timbre, register, brightness) and its
  movement (attack, vibrato, noise). Chosen over torchcrepe's embedding, which is a pitch tracker's
  2048-d hidden layer trained to ignore timbre (the thing FAD on instruments is meant to see), and whose
  dimension makes covariances singular at the sample sizes we have. It is not a learned perceptual
  space: its FAD values are on a different scale and the paper's bands do not apply to it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Protocol

import numpy as np

from tasks.judges import audio, vggish

BACKENDS = ("vggish", "logmel-stats")


class Embedding(Protocol):
    name: str
    version: str
    sample_rate: int
    dim: int

    def embed(self, waves: list[np.ndarray]) -> list[np.ndarray]: ...


class LogMelStats:
    name = "logmel-stats"
    version = "logmel-stats-v1"
    sample_rate = vggish.SAMPLE_RATE
    dim = 2 * vggish.NUM_BANDS

    def embed(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for w in waves:
            ex = vggish.examples(w)
            out.append(np.concatenate([ex.mean(axis=1), ex.std(axis=1)], axis=1).astype(np.float32))
        return out


class VGGishEmbedding:
    name = "vggish"
    version = vggish.VGGISH_VERSION
    sample_rate = vggish.SAMPLE_RATE
    dim = 128

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu", batch_size: int = 256,
                 download: bool = True) -> None:
        self.device = device
        self.batch_size = batch_size
        self.model = vggish.load_model(checkpoint, device=device, download=download)

    def embed(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        ex = [vggish.examples(w) for w in waves]
        flat = np.concatenate(ex, axis=0)[:, None]
        rows = []
        with torch.inference_mode():
            for i in range(0, len(flat), self.batch_size):
                batch = torch.from_numpy(flat[i : i + self.batch_size]).to(self.device)
                rows.append(self.model(batch).float().cpu().numpy())
        emb = np.concatenate(rows, axis=0)
        bounds = np.cumsum([0] + [len(e) for e in ex])
        return [emb[a:b] for a, b in itertools.pairwise(bounds)]


def resolve_device(device: str | None = None) -> str:
    from audioprobe.settings import get_settings

    device = device or get_settings().judge_device
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def get_embedding(name: str = "auto", device: str | None = None, checkpoint: str | Path | None = None) -> Embedding:
    """`auto`: vggish when its checkpoint is at hand (or downloads), else logmel-stats."""
    if name == "logmel-stats":
        return LogMelStats()
    if name in ("vggish", "auto"):
        try:
            return VGGishEmbedding(checkpoint, device=resolve_device(device))
        except vggish.CheckpointError:
            if name == "vggish":
                raise
            return LogMelStats()
    raise ValueError(f"unknown embedding {name!r}; choose from {BACKENDS} or auto")


def reference_window(ref_paths: list[str | Path]) -> float:
    """The fixed window clips are embedded over: the references' median length in seconds."""
    import soundfile as sf

    if not ref_paths:
        raise ValueError("no reference files to take the window length from")
    return round(float(np.median([sf.info(str(p)).duration for p in ref_paths])), 2)


def embed_files(backend: Embedding, paths: list[str | Path], cache_dir: Path | None = None,
                chunk: int = 64, window_s: float | None = None) -> list[np.ndarray]:
    """Per-clip embeddings, cached by (audio sha256, backend version, preprocessing version, window).

    window_s: every clip is cut or zero-padded to this many seconds first, so each brings the same
    number of frames (one clip, one weight); None embeds each clip whole.
    """
    from audioprobe.settings import get_settings

    window = "" if window_s is None else f"+w{window_s:g}"
    root = (cache_dir or get_settings().cache_dir / "embeddings") / f"{backend.version}+{audio.PREPROCESS_VERSION}{window}"
    out: list[np.ndarray | None] = []
    todo: list[int] = []
    files: list[Path] = []
    for i, p in enumerate(paths):
        f = root / f"{audio.sha256_file(p)}.npy"
        files.append(f)
        if f.is_file():
            out.append(np.load(f))
        else:
            out.append(None)
            todo.append(i)
    for start in range(0, len(todo), chunk):  # bounded memory: 64 clips of audio at a time
        part = todo[start : start + chunk]
        waves = [audio.prepare(paths[i], backend.sample_rate, loudness="keep", min_seconds=window_s or 0.0,
                               max_seconds=window_s) for i in part]
        for i, emb in zip(part, backend.embed(waves)):
            root.mkdir(parents=True, exist_ok=True)
            tmp = files[i].with_suffix(".tmp.npy")
            np.save(tmp, emb)
            tmp.replace(files[i])
            out[i] = emb
    return out  # type: ignore[return-value]
