"""The paper's own numbers, quoted beside ours for orientation (never mixed into our tables' numbers)."""

from __future__ import annotations

# FAD bands from the paper's human study (section 4.1.2), for drawing them; which score gets a band is
# tasks.judges.frechet.band's decision (per-note VGGish FAD at 4 s only).
BAND_HIGH = 10.0
BAND_MODERATE = 15.0
BANDS = ("highly similar", "moderately similar", "distinct")


# Section 4.1.1: audio files produced out of 1500 NSynth notes.
NOTES_GENERATED = [
    {"model": "Llama 3.1-70b", "items": 1500, "generated": 1163},
    {"model": "GPT-4", "items": 1500, "generated": 919},
]

# Section 4.2.1 and Table 1: 200 FSD50K classes per method; CLAP 5-way.
TABLE1 = [
    {
        "model": "GPT-4",
        "method": "detailed",
        "items": 200,
        "generated": 176,
        "correct": 42,
        "mean_conf": 0.82,
    },
    {
        "model": "GPT-4",
        "method": "detailed_description",
        "items": 200,
        "generated": 164,
        "correct": 36,
        "mean_conf": 0.83,
    },
    {
        "model": "Llama 3.1-70b",
        "method": "detailed",
        "items": 200,
        "generated": 98,
        "correct": 16,
        "mean_conf": 0.72,
    },
    {
        "model": "Llama 3.1-70b",
        "method": "detailed_description",
        "items": 200,
        "generated": 95,
        "correct": 25,
        "mean_conf": 0.77,
    },
]

# Appendix, "deep dive into correctly generated audio" (Figure 4): 119 correct of 533.
FIG4 = {
    "n": 119,
    "max": 1.00,
    "min": 0.33,
    "mean": 0.80,
    "median": 0.88,
    "bins": {"0-0.3": 0, "0.3-0.5": 11, "0.5-0.7": 26, "0.7-1.0": 82},
}
CONF_BINS = (0.0, 0.3, 0.5, 0.7, 1.0)
CONF_BIN_LABELS = ("0-0.3", "0.3-0.5", "0.5-0.7", "0.7-1.0")

QUOTES = {
    "notes_fad": "FAD scores ranged from 1.44 (mallet) to 200 (bass); the median FAD of 6 of 10 instruments "
    "lies in the moderately similar band; GPT-4 almost always outperformed Llama 3.1-70b (Figure 2). "
    "Mallet, keyboard and organ did best; wind instruments (except flute) worst.",
    "notes_similar": "GPT-4o outperformed the text-only models for 7 of 10 instruments, by a small amount "
    "(Figure 3, percentage of highly similar notes; the paper gives no numbers in its text).",
    "failures": "Failures were mostly Python modules that were deprecated or do not exist, e.g. 'midutil' "
    "for MIDIUtil and 'pydsmid' for pydsmidi.",
    "environmental": "Of 533 generated samples CLAP placed 119 (22.5%) in the target class, 5-way "
    "(chance 20%).",
    "speech": "GPT-4, GPT-4o and Llama 3.1-70b: no successful generations for 35 Speech Commands words.",
}
