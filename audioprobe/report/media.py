"""Pictures and sounds for the page, as data URIs: players, spectrograms, the paper's figures.

Players play a copy made for the page: mono, 16-bit PCM WAV, the first CLIP_SECONDS, at most 48 kHz,
NaN/inf set to 0 (Chromium plays that everywhere; a float or 24-bit WAV does not always).
"""

from __future__ import annotations

import base64
import io
from math import gcd
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy.signal import resample_poly, spectrogram  # noqa: E402

from audioprobe.report import paper  # noqa: E402
from tasks.judges import wavfile  # noqa: E402

CLIP_SECONDS = 10.0
MAX_RATE = 48000
MAX_SOURCE_RATE = 384000  # above: not resampled (the cost grows with the rate)
MAX_RATIO_TERM = 1000
MAGMA = matplotlib.colormaps["magma"]
COLORS = ["#3b6ea8", "#d08c2f", "#5a9e5a", "#a8456b", "#7a68a6", "#4a9ca8", "#8c6d46", "#666666"]
plt.rcParams.update(
    {
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 110,
        "savefig.bbox": "tight",
    }
)


def read_clip(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 in [-1, 1]-ish, the first CLIP_SECONDS, at most MAX_RATE.

    Read with the strict reader; a rate above MAX_RATE is resampled only from a plausible rate with a
    small ratio (sandbox outputs are at most 48 kHz already), never from an absurd one.
    """
    info = wavfile.read_info(path)
    if info.sample_rate > MAX_RATE:
        g = gcd(info.sample_rate, MAX_RATE)
        up, down = MAX_RATE // g, info.sample_rate // g
        if info.sample_rate > MAX_SOURCE_RATE or max(up, down) > MAX_RATIO_TERM:
            raise wavfile.WavError(f"sample rate {info.sample_rate} Hz: not resampled for the page")
    data, rate = wavfile.read(path, max_frames=int(CLIP_SECONDS * info.sample_rate))
    mono = np.nan_to_num(data.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    if rate > MAX_RATE:
        mono, rate = resample_poly(mono, up, down).astype(np.float32), MAX_RATE
    return mono, rate


def wav_bytes(mono: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(mono, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return data_uri(buf.getvalue(), "image/png")


def _log_rows(f: np.ndarray, db: np.ndarray, lo: float, hi: float, rows: int = 160) -> np.ndarray:
    """Resample spectrogram rows onto log-spaced frequencies: imshow of this is fast, pcolormesh is not."""
    idx = np.interp(np.geomspace(lo, hi, rows), f, np.arange(len(f)))
    return db[np.clip(np.round(idx).astype(int), 0, len(f) - 1)]


SPEC_ROWS, SPEC_COLS, SPEC_GAP = 120, 300, 6  # pixels of one spectrogram, and between two
SPEC_LOW_HZ, SPEC_RANGE_DB = 30.0, 90.0


def spectrograms(clips: list[tuple[str, np.ndarray, int]]) -> str:
    """Log-frequency spectrograms side by side (generated, reference) on one dB scale, one PNG, drawn as
    pixels: a matplotlib figure per card cost a second and a half of a report's build (issue 24, 5); the
    card's caption gives the axes."""
    specs = []
    for _, mono, rate in clips:
        if len(mono) < 256:
            specs.append(None)
            continue
        f, _t, s = spectrogram(mono, fs=rate, nperseg=1024 if len(mono) >= 4096 else 256)
        specs.append(_log_rows(f, 10 * np.log10(s + 1e-12), SPEC_LOW_HZ, rate / 2, SPEC_ROWS))
    top = max((float(sp.max()) for sp in specs if sp is not None), default=0.0)
    width = len(clips) * SPEC_COLS + (len(clips) - 1) * SPEC_GAP
    image = np.ones((SPEC_ROWS, width, 4))
    for i, sp in enumerate(specs):
        x = i * (SPEC_COLS + SPEC_GAP)
        if sp is None:  # too short to draw: a grey panel
            image[:, x : x + SPEC_COLS, :3] = 0.85
            continue
        cols = np.minimum((np.arange(SPEC_COLS) * sp.shape[1]) // SPEC_COLS, sp.shape[1] - 1)
        level = np.clip((sp[:, cols] - (top - SPEC_RANGE_DB)) / SPEC_RANGE_DB, 0, 1)
        image[:, x : x + SPEC_COLS] = MAGMA(level[::-1])  # low frequencies at the bottom
    buf = io.BytesIO()
    plt.imsave(buf, image, format="png")
    return data_uri(buf.getvalue(), "image/png")


def _who(df: pd.DataFrame) -> pd.Series:
    several_runs = df["run"].nunique() > 1
    return df["model"] + (" @ " + df["run"] if several_runs else "") + " · " + df["method"]


def figure_fad(fad: pd.DataFrame, labels: list[str]) -> str | None:
    """Figure 2: FAD per instrument and model with each class's baseline; the paper's bands only where
    every score shown is one they were calibrated on."""
    df = fad[fad["fad"].notna() & fad["label"].isin(labels)].copy()
    if df.empty:
        return None
    df["who"] = _who(df)
    whos = sorted(df["who"].unique())
    labels = [label for label in labels if label in set(df["label"])]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(labels) * max(1, len(whos)) ** 0.5 + 2), 2.9))
    width = 0.8 / len(whos)
    x = np.arange(len(labels))
    for i, who in enumerate(whos):
        sub = df[df["who"] == who].set_index("label").reindex(labels)
        pos = x - 0.4 + width * (i + 0.5)
        err = None
        if sub["ci_lo"].notna().any():
            err = np.vstack(
                [
                    (sub["fad"] - sub["ci_lo"]).clip(lower=0).fillna(0),
                    (sub["ci_hi"] - sub["fad"]).clip(lower=0).fillna(0),
                ]
            )
        ax.bar(pos, sub["fad"], width, yerr=err, capsize=2, label=who, color=COLORS[i % len(COLORS)])
        ax.scatter(
            pos,
            sub["baseline"],
            marker="_",
            s=120,
            color="black",
            zorder=3,
            label="reference baseline" if i == 0 else None,
        )
    if df["band"].notna().all():  # shade the paper's bands only on scores they were calibrated for
        ax.axhspan(0, paper.BAND_HIGH, color="#5a9e5a", alpha=0.08)
        ax.axhspan(paper.BAND_HIGH, paper.BAND_MODERATE, color="#d08c2f", alpha=0.08)
        ax.axhline(paper.BAND_HIGH, color="#5a9e5a", lw=0.8, ls="--")
        ax.axhline(paper.BAND_MODERATE, color="#d08c2f", lw=0.8, ls="--")
    ax.set_xticks(
        x, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center"
    )
    ax.set_ylabel("FAD (lower is closer)")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig)


def figure_similar(sim: pd.DataFrame) -> str | None:
    """Figure 3: share of instrument classes per band, stacked, one bar per model."""
    if sim.empty or sim["highly_share"].isna().all():  # no calibrated band: nothing to stack
        return None
    df = sim[sim["highly_share"].notna()].copy()
    df["who"] = _who(df)
    fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.45 * len(df)))
    left = np.zeros(len(df))
    for band, color in zip(paper.BANDS, ["#5a9e5a", "#d08c2f", "#b0b0b0"]):
        share = df[f"{band.split()[0]}_share"].fillna(0).to_numpy() * 100
        ax.barh(df["who"], share, left=left, color=color, label=band)
        left += share
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of instrument classes")
    ax.legend(fontsize=7, frameon=False, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1))
    return _png(fig)


def figure_confidence(hist: pd.DataFrame) -> str | None:
    """Figure 4: confidences of correctly classified clips in the paper's bins, ours beside the paper's."""
    df = hist[(hist["method"] == "all") & (hist["run"] != "all")]
    if df.empty or df["count"].sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 2.5))
    series = [
        (
            "paper (GPT-4 + Llama 3.1-70b)",
            [paper.FIG4["bins"][b] / paper.FIG4["n"] for b in paper.CONF_BIN_LABELS],
        )
    ]
    for (run, model), g in df.groupby(["run", "model"]):
        g = g.set_index("bin").reindex(paper.CONF_BIN_LABELS)
        name = model if df["run"].nunique() == 1 else f"{model} @ {run}"
        series.append((f"{name} (n={int(g['count'].sum())})", g["share"].fillna(0).tolist()))
    width = 0.8 / len(series)
    x = np.arange(len(paper.CONF_BIN_LABELS))
    for i, (name, share) in enumerate(series):
        color = "#bbbbbb" if i == 0 else COLORS[(i - 1) % len(COLORS)]
        ax.bar(x - 0.4 + width * (i + 0.5), np.array(share) * 100, width, label=name, color=color)
    ax.set_xticks(x, paper.CONF_BIN_LABELS)
    ax.set_xlabel("CLAP-style confidence of correctly classified clips")
    ax.set_ylabel("% of correct clips")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig)
