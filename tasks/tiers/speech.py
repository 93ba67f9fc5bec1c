"""Speech: one Speech Commands word, "approximately 2 seconds", no sample rate asked.

Judged per clip by pocketsphinx: a 5-way forced choice among the words, plus free decoding.
"""

from __future__ import annotations

import re
from pathlib import Path

from audioprobe.schema import ProbeItem
from tasks.tiers import Asked, Contract, Tier, register

# ARPAbet vowels -> (F1, F2, F3) in Hz, adult male averages (Peterson & Barney; Hillenbrand et al.)
FORMANTS = {
    "IY": (270, 2290, 3010),
    "IH": (390, 1990, 2550),
    "EH": (530, 1840, 2480),
    "AE": (660, 1720, 2410),
    "AA": (730, 1090, 2440),
    "AO": (570, 840, 2410),
    "UH": (440, 1020, 2240),
    "UW": (300, 870, 2240),
    "AH": (640, 1190, 2390),
    "ER": (490, 1350, 1690),
    "EY": (480, 2100, 2600),
    "AY": (700, 1400, 2500),
    "OW": (500, 900, 2400),
    "AW": (700, 1200, 2500),
    "OY": (550, 950, 2400),
}
NEUTRAL_VOWEL = "AH"


def vowels_of(item: ProbeItem) -> list[str]:
    """The vowels of the word's phones (the cmudict description "Y EH1 S: ..."), or a neutral one."""
    phones = (item.description or "").split(":")[0].split()
    found = [re.sub(r"\d", "", p) for p in phones if re.sub(r"\d", "", p) in FORMANTS]
    return found or [NEUTRAL_VOWEL]


class SpeechTier(Tier):
    def build_refs(self, root: Path, fetcher, progress, force: bool, **subset) -> dict:
        from tasks.probesets.refs_speech import build_speech

        return build_speech(root, fetcher, progress, subset.get("words"), force)

    def prompt_values(self, item: ProbeItem) -> dict[str, str | None]:
        return {"word": item.label, "description": item.description}

    def judges(self, dataset_root: str | None = None) -> list:
        from tasks.judges.speech import SpeechJudge
        from tasks.judging import DISTRACTOR_SEED

        return [SpeechJudge(seed=DISTRACTOR_SEED)]

    def baseline_program(self, item: ProbeItem, out_name: str) -> str:
        """A 120 Hz glottal buzz through formant filters, one vowel per vowel of the word's phones."""
        return PROGRAM.format(formants=[FORMANTS[v] for v in vowels_of(item)], out=out_name)


TIER = register(
    SpeechTier(
        name="speech",
        title="Speech",
        methods=("paper",),
        asked=Asked(None, 2.0, 0.25),  # "approximately 2 seconds"; no rate asked
        contract=Contract(".wav", 16000, 2.0),
        offline_dir="speech_commands",
        loader="tasks.probesets.speech_commands",
        tfds_name="speech_commands",
        controls=("silence", "white_noise", "tone_burst", "held_out_real"),
        headline="speech",
        report_section="spoken_words",
        forced_choice=True,
        columns=(),
    )
)

PROGRAM = """import wave
import numpy as np
from scipy.signal import lfilter

SR, SECONDS, F0 = 16000, 2.0, 120.0
FORMANTS = {formants}  # (F1, F2, F3) per vowel of the word
BANDWIDTHS = (80.0, 100.0, 120.0)
n_voiced = int(SR * 0.6)
pulses = np.zeros(n_voiced)
pulses[:: int(SR / F0)] = 1.0  # the glottal buzz
segment = n_voiced // len(FORMANTS)
voiced = np.zeros(n_voiced)
for index, formants in enumerate(FORMANTS):
    part = pulses[index * segment:(index + 1) * segment]
    for freq, bandwidth in zip(formants, BANDWIDTHS):
        r = np.exp(-np.pi * bandwidth / SR)
        part = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], part)
    voiced[index * segment:index * segment + len(part)] = part
voiced *= np.hanning(n_voiced)
signal = np.zeros(int(SR * SECONDS))
start = (len(signal) - n_voiced) // 2
signal[start:start + n_voiced] = voiced
signal = 0.6 * signal / np.max(np.abs(signal))
with wave.open("{out}", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(SR)
    w.writeframes((signal * 32767).astype("<i2").tobytes())
"""
