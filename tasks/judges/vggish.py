"""VGGish as in the TensorFlow reference, loaded from harritaylor/torchvggish's state dict.

Weights: `vggish-10086976.pth` (key names `features.N.*`, `embeddings.N.*`), a port of the TF
checkpoint. The torch ports put a ReLU after the last layer; the TF reference's `fc2` has no
activation, so neither has this one (the state dict is unchanged: a ReLU has no weights). No PCA or
8-bit quantisation: FAD uses the raw 128-d embedding, as Google's and fadtk's FAD code do.

Front end (vggish_input / mel_features): 16 kHz mono, 25 ms periodic-Hann window, 10 ms hop, 512-point
FFT magnitude, 64 HTK mel bands 125-7500 Hz, log(mel + 0.01), non-overlapping 0.96 s examples of
96x64. Clips shorter than one example are zero-padded to one (the reference would return nothing).
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
WINDOW_S, HOP_S = 0.025, 0.010
NUM_BANDS, FMIN, FMAX = 64, 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
MIN_SAMPLES = round(WINDOW_S * SAMPLE_RATE) + (EXAMPLE_FRAMES - 1) * round(HOP_S * SAMPLE_RATE)
CHECKPOINT_NAME = "vggish-10086976.pth"
CHECKPOINT_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/" + CHECKPOINT_NAME
VGGISH_VERSION = "vggish-tf-v1"


class CheckpointError(Exception):
    """A checkpoint is missing or does not fit the model; the message says what to do."""


# --------------------------------------------------------------------------- log-mel front end


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)


def mel_matrix(num_spec_bins: int = 257) -> np.ndarray:
    """(num_spec_bins, 64) triangular HTK weights, DC bin zeroed, as mel_features.spectrogram_to_mel_matrix."""
    nyquist = SAMPLE_RATE / 2.0
    spec_mel = _hz_to_mel(np.linspace(0.0, nyquist, num_spec_bins))
    edges = np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), NUM_BANDS + 2)
    weights = np.empty((num_spec_bins, NUM_BANDS))
    for i in range(NUM_BANDS):
        lower, center, upper = edges[i : i + 3]
        lo = (spec_mel - lower) / (center - lower)
        hi = (upper - spec_mel) / (upper - center)
        weights[:, i] = np.maximum(0.0, np.minimum(lo, hi))
    weights[0, :] = 0.0
    return weights


_MEL = mel_matrix()


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    n = 1 + (len(x) - length) // hop
    idx = np.arange(length)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def log_mel(wave16k: np.ndarray) -> np.ndarray:
    """(frames, 64) log-mel spectrogram of mono 16 kHz audio."""
    win = round(WINDOW_S * SAMPLE_RATE)
    hop = round(HOP_S * SAMPLE_RATE)
    fft = 2 ** int(np.ceil(np.log2(win)))
    x = np.asarray(wave16k, dtype=np.float64)
    if len(x) < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - len(x)))
    window = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))  # periodic Hann
    spec = np.abs(np.fft.rfft(_frames(x, win, hop) * window, fft))
    return np.log(spec @ _MEL + LOG_OFFSET)


def examples(wave16k: np.ndarray) -> np.ndarray:
    """(n, 96, 64) non-overlapping 0.96 s log-mel examples."""
    return _frames(log_mel(wave16k), EXAMPLE_FRAMES, EXAMPLE_FRAMES).astype(np.float32)


# --------------------------------------------------------------------------- network


def build_model():
    import torch
    from torch import nn

    def conv(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True)]

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            pool = lambda: nn.MaxPool2d(2, 2)
            self.features = nn.Sequential(
                *conv(1, 64), pool(), *conv(64, 128), pool(),
                *conv(128, 256), *conv(256, 256), pool(), *conv(256, 512), *conv(512, 512), pool(),
            )
            # TF's fc2 has no activation: no ReLU after the last Linear (torchvggish adds one).
            self.embeddings = nn.Sequential(
                nn.Linear(512 * 4 * 6, 4096), nn.ReLU(inplace=True),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 128),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, 1, 96, 64)
            x = self.features(x)  # (n, 512, 6, 4)
            x = x.permute(0, 2, 3, 1).contiguous()  # NHWC, the order TF flattened in
            return self.embeddings(x.view(x.size(0), -1))

    return VGGish()


def checkpoint_path(explicit: str | Path | None = None, download: bool = True) -> Path:
    """Explicit path, else settings.vggish_checkpoint, else models_dir/vggish-10086976.pth (downloaded when online)."""
    from audioprobe.settings import get_settings

    settings = get_settings()
    named = explicit or settings.vggish_checkpoint
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise CheckpointError(f"VGGish checkpoint {path} does not exist (see docs/judges.md)")
        return path
    path = settings.models_dir / CHECKPOINT_NAME
    if path.is_file():
        return path
    if download and settings.allow_downloads:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            with urllib.request.urlopen(CHECKPOINT_URL, timeout=20) as r, open(tmp, "wb") as f:
                f.write(r.read())
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            if not digest.startswith(CHECKPOINT_NAME.split("-")[1].split(".")[0]):
                tmp.unlink()
                raise CheckpointError(f"downloaded {CHECKPOINT_URL} has sha256 {digest[:8]}..., expected 10086976")
            tmp.replace(path)
            return path
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to fetch ends in the same advice
            reason = f"download of {CHECKPOINT_URL} failed ({type(exc).__name__}: {exc})"
    else:
        reason = "downloads are off (AUDIOPROBE_ALLOW_DOWNLOADS=1 turns them on)"
    raise CheckpointError(
        f"no VGGish checkpoint: {reason}. Put {CHECKPOINT_NAME} at {path} or set "
        "AUDIOPROBE_VGGISH_CHECKPOINT (see docs/judges.md)"
    )


def load_model(path: str | Path | None = None, device: str = "cpu", download: bool = True):
    import torch

    path = checkpoint_path(path, download=download)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a torch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = build_model()
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path} does not fit VGGish (torchvggish format expected): missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}, wrong shapes {wrong[:4]}"
        )
    model.load_state_dict(state)
    return model.eval().to(device)
