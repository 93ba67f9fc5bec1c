"""Program baselines run as models: `--model baseline/template` answers every item, without an LLM, with
a plain program written from the item's own metadata.

- notes: a sine with an attack/decay envelope at the asked pitch and amplitude (16 kHz, 4 s);
- environmental: band-limited noise bursts, the band placed by the class name's hash (44.1 kHz, 2.5 s);
- speech: a 120 Hz glottal buzz through formant filters, one vowel per vowel of the word's phones.

The program goes through the same sandbox, gate and judges as an LLM's, so every model is read against
the floor a trivial program reaches. It is a Generation like any other (raw text, code, content key),
with `params` naming the template, so the report's provenance shows what made it.
"""

from __future__ import annotations

import hashlib
import re

from audioprobe.schema import Generation, ProbeItem, RenderedPrompt

PREFIX = "baseline/"
TEMPLATES = ("template",)
TEMPLATE_VERSION = "1"

# ARPAbet vowels -> (F1, F2, F3) in Hz, adult male averages (Peterson & Barney; Hillenbrand et al.)
FORMANTS = {
    "IY": (270, 2290, 3010), "IH": (390, 1990, 2550), "EH": (530, 1840, 2480), "AE": (660, 1720, 2410),
    "AA": (730, 1090, 2440), "AO": (570, 840, 2410), "UH": (440, 1020, 2240), "UW": (300, 870, 2240),
    "AH": (640, 1190, 2390), "ER": (490, 1350, 1690), "EY": (480, 2100, 2600), "AY": (700, 1400, 2500),
    "OW": (500, 900, 2400), "AW": (700, 1200, 2500), "OY": (550, 950, 2400),
}
NEUTRAL_VOWEL = "AH"


def is_baseline(model: str) -> bool:
    return model.startswith(PREFIX)


def _check(model: str) -> str:
    name = model.removeprefix(PREFIX)
    if name not in TEMPLATES:
        raise ValueError(f"unknown baseline {model!r}; known: {', '.join(PREFIX + t for t in TEMPLATES)}")
    return name


def output_name(item: ProbeItem, prompt: RenderedPrompt) -> str:
    from tasks.prompting import sound_id

    return prompt.output_name or f"{sound_id(item)}.wav"


def vowels_of(item: ProbeItem) -> list[str]:
    """The vowels of the word's phones (the cmudict description "Y EH1 S: ..."), or a neutral one."""
    phones = (item.description or "").split(":")[0].split()
    found = [re.sub(r"\d", "", p) for p in phones if re.sub(r"\d", "", p) in FORMANTS]
    return found or [NEUTRAL_VOWEL]


def program_for(item: ProbeItem, out_name: str) -> str:
    """The baseline program for one item: plain numpy/scipy, no randomness but a fixed seed."""
    if item.tier == "notes":
        if item.pitch is None:
            raise ValueError(f"item {item.id!r}: a notes item without a pitch has no baseline program")
        amplitude = item.amplitude if item.amplitude is not None else (item.velocity or 100) / 127
        return NOTE_PROGRAM.format(pitch=item.pitch, amplitude=round(min(0.95, amplitude), 4), out=out_name)
    if item.tier == "environmental":
        digest = int(hashlib.sha256(item.label.encode()).hexdigest()[:8], 16)
        center = 200.0 * 2 ** (4.3 * (digest % 1000) / 1000)  # 200 Hz .. ~4 kHz, log-spaced
        return NOISE_PROGRAM.format(low=round(center / 1.5, 1), high=round(center * 1.5, 1), out=out_name)
    formants = [FORMANTS[v] for v in vowels_of(item)]
    return SPEECH_PROGRAM.format(formants=formants, out=out_name)


def generate(item: ProbeItem, prompt: RenderedPrompt, model: str, sample: int = 0) -> Generation:
    template = _check(model)
    code = program_for(item, output_name(item, prompt))
    key = hashlib.sha256(f"{model}|{TEMPLATE_VERSION}|{code}".encode()).hexdigest()
    return Generation(
        response_id=key, model=model, sample=sample,
        params={"template": template, "template_version": TEMPLATE_VERSION},
        raw_text=f"```python\n{code}```\n", extraction_status="single_block", code=code, finish_reason="stop",
        tokens_in=0, tokens_out=0, latency_s=0.0, cost=0.0,
    )


NOTE_PROGRAM = '''import wave
import numpy as np

SR, SECONDS = 16000, 4.0
PITCH, AMPLITUDE = {pitch}, {amplitude}
t = np.arange(int(SR * SECONDS)) / SR
f0 = 440.0 * 2 ** ((PITCH - 69) / 12)
envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / 1.2)  # 10 ms attack, exponential decay
signal = AMPLITUDE * envelope * np.sin(2 * np.pi * f0 * t)
with wave.open("{out}", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(SR)
    w.writeframes((signal * 32767).astype("<i2").tobytes())
'''

NOISE_PROGRAM = '''import wave
import numpy as np

SR, SECONDS = 44100, 2.5
LOW, HIGH = {low}, {high}  # the band, Hz
rng = np.random.default_rng(0)
n = int(SR * SECONDS)
spectrum = np.fft.rfft(rng.standard_normal(n))
freqs = np.fft.rfftfreq(n, 1 / SR)
spectrum[(freqs < LOW) | (freqs > HIGH)] = 0
noise = np.fft.irfft(spectrum, n)
t = np.arange(n) / SR
bursts = (np.sin(2 * np.pi * 2.0 * t) > 0).astype(float)  # four bursts of 0.25 s on, 0.25 s off
ramp = np.convolve(bursts, np.ones(441) / 441, mode="same")  # 10 ms ramps, no clicks
signal = noise * ramp
signal = 0.5 * signal / np.max(np.abs(signal))
with wave.open("{out}", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(SR)
    w.writeframes((signal * 32767).astype("<i2").tobytes())
'''

SPEECH_PROGRAM = '''import wave
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
'''
