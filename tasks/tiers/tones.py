"""Tones: two sine tones played together, given by their frequencies (an interval), 16 kHz, 2 s.

Not one of the paper's tiers (`--tier tones` asks for it). Its items are made here, deterministically,
with no dataset; a DSP check judges them: each asked frequency must be one of the clip's strongest
spectral peaks, within 25 cents. It is the example of docs/CONTRIBUTING.md's "add a tier".
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from audioprobe.schema import ItemOutcome, Judgement, ProbeItem, SkippedItem
from tasks.tiers import Asked, Contract, Tier, register

# (interval, lower frequency in Hz, frequency ratio): just intonation, so the upper is exact
INTERVALS = (
    ("perfect fifth", 220.0, 3 / 2),
    ("major third", 261.63, 5 / 4),
    ("octave", 329.63, 2.0),
    ("perfect fourth", 392.0, 4 / 3),
    ("minor third", 440.0, 6 / 5),
    ("major sixth", 293.66, 5 / 3),
    ("minor seventh", 196.0, 9 / 5),
    ("major second", 523.25, 9 / 8),
)
TOLERANCE_CENTS = 25.0
JUDGE, JUDGE_VERSION = "tones/peaks", "1"


def frequencies(item: ProbeItem) -> list[float]:
    """The asked frequencies, from the label ("220+330")."""
    return [float(f) for f in item.label.split("+")]


def _item(interval: str, low: float, ratio: float) -> ProbeItem:
    high = round(low * ratio, 2)
    label = f"{low:g}+{high:g}"
    return ProbeItem(
        id=f"tones/{label}",
        tier="tones",
        label=label,
        dataset="tones",
        display_name=interval,
        description=f"a {interval}: {low:g} Hz and {high:g} Hz",
    )


def peaks(path: Path, count: int) -> list[float]:
    """The `count` strongest spectral peaks of the clip (mono mix), in Hz, parabola-refined."""
    import numpy as np
    import soundfile as sf
    from scipy.signal import find_peaks

    signal, sr = sf.read(str(path), dtype="float64", always_2d=True)
    mono = signal.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), n=max(len(mono), 4 * sr)))
    found, _ = find_peaks(spectrum)
    found = found[np.argsort(spectrum[found])[::-1][:count]]
    out = []
    for k in found:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
        out.append(float((k + shift) * sr / (2 * (len(spectrum) - 1))))
    return sorted(out)


@lru_cache(maxsize=1)
def tones_judge():
    """The DSP check as a judge of the protocol (tasks/judges/base.py), so its verdicts are cached; built
    on first use, as the registry imports no judge code (numpy, soundfile) when the CLI starts."""
    import numpy as np

    from tasks.judges.base import ClipJudge

    class TonesJudge(ClipJudge):
        name, version = JUDGE, JUDGE_VERSION

        def params(self, item: ProbeItem) -> dict:
            return {"targets_hz": frequencies(item), "tolerance_cents": TOLERANCE_CENTS}

        def judge_clip(self, clip: Path, item: ProbeItem) -> Judgement:
            targets = frequencies(item)
            found = peaks(clip, len(targets))
            cents = [min((abs(1200 * np.log2(p / t)) for p in found if p > 0), default=None) for t in targets]
            hits = [c is not None and c <= TOLERANCE_CENTS for c in cents]
            return self.verdict(
                clip,
                item,
                correct=all(hits),
                score=sum(hits) / len(targets),
                values={
                    "peaks_hz": [round(p, 2) for p in found],
                    "cents_off": [None if c is None else round(float(c), 1) for c in cents],
                },
            )

    return TonesJudge()


class TonesTier(Tier):
    def load_items(
        self, root: Path | None, limit: int | None, seed: int, **options
    ) -> tuple[list[ProbeItem], list[SkippedItem]]:
        items = [_item(*row) for row in INTERVALS]
        random.Random(seed).shuffle(items)
        return items[:limit] if limit is not None else items, []

    def prompt_values(self, item: ProbeItem) -> dict[str, str | None]:
        low, high = frequencies(item)
        return {"low": f"{low:g}", "high": f"{high:g}", "interval": item.display_name}

    def judges(self, dataset_root: str | None = None) -> list:
        return [tones_judge()]

    def wrong_sound_feedback(self, outcome: ItemOutcome, values: dict) -> tuple[str, dict[str, object]]:
        heard = ", ".join(f"{p:g} Hz" for p in values.get("peaks_hz", [])) or "no tone"
        asked = " and ".join(f"{f:g} Hz" for f in frequencies(outcome.item))
        return "repair.tones.txt", {"heard": heard, "asked": asked}

    def baseline_program(self, item: ProbeItem, out_name: str) -> str:
        """The two sines, summed, with 10 ms fades."""
        return PROGRAM.format(freqs=frequencies(item), out=out_name)


TIER = register(
    TonesTier(
        name="tones",
        title="Tones (two-tone intervals)",
        methods=("paper",),
        asked=Asked(16000, 2.0, 0.1),
        contract=Contract(".wav", 16000, 2.0),
        paper=False,
        controls=("silence", "white_noise", "tone_burst"),
        headline=JUDGE,
        columns=("display_name",),
    )
)

PROGRAM = """import wave
import numpy as np

SR, SECONDS = 16000, 2.0
FREQS = {freqs}
t = np.arange(int(SR * SECONDS)) / SR
signal = sum(np.sin(2 * np.pi * f * t) for f in FREQS) / len(FREQS)
fade = np.minimum(1.0, np.minimum(t, SECONDS - t) / 0.01)
signal = 0.6 * signal * fade
with wave.open("{out}", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(SR)
    w.writeframes((signal * 32767).astype("<i2").tobytes())
"""
