"""Small real audio for the judge tests and benchmarks: synthesised signals and espeak-ng words."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from audioprobe.schema import ProbeItem

SR = 16000


def tone(hz: float, seconds: float = 1.0, sr: int = SR, harmonics: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, harmonics + 1) if hz * k < sr / 2)
    env = np.minimum(1.0, np.minimum(t / 0.01, (seconds - t) / 0.05))
    return (amp * x / np.max(np.abs(x)) * env).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def synth_class(kind: str, i: int, sr: int = SR, seconds: float = 1.0) -> np.ndarray:
    """Clearly different sound classes with per-instance variation (seeded by i)."""
    rng = np.random.default_rng(zlib.crc32(kind.encode()) * 1000 + i)  # not hash(): salted per process
    n = int(seconds * sr)
    if kind == "low_hum":
        return tone(rng.uniform(60, 90), seconds, sr, harmonics=4, amp=0.4)
    if kind == "whistle":
        return tone(rng.uniform(1800, 2600), seconds, sr, amp=0.4)
    if kind == "white_noise":
        return (rng.uniform(0.1, 0.3) * rng.standard_normal(n)).astype(np.float32)
    if kind == "clicks":
        x = np.zeros(n)
        x[:: int(sr / rng.uniform(4, 8))] = 0.9
        return x.astype(np.float32)
    if kind == "chirp":
        f = np.cumsum(np.linspace(rng.uniform(200, 400), rng.uniform(3000, 5000), n)) / sr
        return (0.4 * np.sin(2 * np.pi * f)).astype(np.float32)
    if kind == "rumble":
        from scipy.signal import lfilter

        x = lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))
        return (0.5 * x / np.max(np.abs(x))).astype(np.float32)
    raise ValueError(kind)


SYNTH_CLASSES = ("low_hum", "whistle", "white_noise", "clicks", "chirp", "rumble")


def espeak(word: str, path: Path, voice: str = "en-us", speed: int = 140) -> Path | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [exe, "-v", voice, "-s", str(speed), "-w", str(path), word], check=True, capture_output=True
    )
    return path


def tiny_clap_checkpoint(d: Path) -> Path:
    """A randomly initialised CLAP saved in the real transformers format (ClapModel + ClapProcessor): the
    loading and judging code runs as on the LAION weights, in a second."""
    import json

    from tasks.judges import compat

    ClapModel, ClapProcessor = compat.import_transformers_clap()
    from transformers import ClapConfig, ClapFeatureExtractor, RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for c in [chr(i) for i in range(33, 127)] + ["Ġ"]:
        vocab.setdefault(c, len(vocab))
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = RobertaTokenizer(vocab_file=str(d / "vocab.json"), merges_file=str(d / "merges.txt"))
    cfg = ClapConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": 80,
            "projection_dim": 16,
        },
        audio_config={
            "patch_embeds_hidden_size": 8,
            "depths": [1, 1, 1, 1],
            "num_attention_heads": [1, 1, 1, 1],
            "hidden_size": 64,
            "projection_dim": 16,
            "enable_fusion": False,
        },
        projection_dim=16,
        logit_scale_init_value=20.0,
    )
    import torch

    torch.manual_seed(0)
    folder = d / "clap-tiny"
    ClapModel(cfg).save_pretrained(folder)
    ClapProcessor(
        feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tok
    ).save_pretrained(folder)
    return folder


def note_item(midi: int, label: str = "keyboard_synthetic") -> ProbeItem:
    """A notes item asking for `midi`: what the pitch judge reads of it."""
    return ProbeItem(id=f"note-{midi}", tier="notes", label=label, dataset="test", pitch=midi)


def label_item(label: str, tier: str = "environmental") -> ProbeItem:
    """An environmental or speech item asking for `label`."""
    return ProbeItem(id=f"{tier}-{label}", tier=tier, label=label, dataset="test")
