"""The words a prompt gets besides the label: NSynth quality meanings, AudioSet descriptions, phonetics.

Every description carries its source (`description_source` on the item): "nsynth", "audioset-ontology",
"cmudict", or "llm:<model>" for descriptions written by a language model and cached, as the paper did
with GPT-4o for FSD50K's classes.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from tasks.fileio import atomic_write
from tasks.tiers import get_tier

DATA_DIR = Path(__file__).resolve().parents[2] / "audioprobe" / "data"
VOCABULARY_TSV = DATA_DIR / "fsd50k_vocabulary.tsv"  # AudioSet ontology text, CC BY-SA 4.0 (see NOTICE)

# NSynth's documented note qualities (magenta.tensorflow.org/datasets/nsynth), in its bit order.
NSYNTH_QUALITIES: dict[str, str] = {
    "bright": "A large amount of high frequency content and strong upper harmonics.",
    "dark": "A distinct lack of high frequency content, giving a muted and bassy sound. "
    "Also sometimes described as 'Warm'.",
    "distortion": "Waveshaping that produces a distinctive crunchy sound and presence of many harmonics. "
    "Sometimes paired with non-harmonic noise.",
    "fast_decay": "Amplitude envelope of all harmonics decays substantially before the 'note-off' point "
    "at 3 seconds.",
    "long_release": "Amplitude envelope decays slowly after the 'note-off' point, sometimes still present "
    "at the end of the sample 4 seconds.",
    "multiphonic": "Presence of overtone frequencies related to more than one fundamental frequency.",
    "nonlinear_env": "Modulation of the sound with a distinct envelope behavior different than the "
    "monotonic decrease of the note. Can also include filter envelopes as well as dynamic envelopes.",
    "percussive": "A loud non-harmonic sound at note onset.",
    "reverb": "Room acoustics that were not able to be removed from the original sample.",
    "tempo-synced": "Rhythmic modulation of the sound to a fixed tempo.",
}
QUALITY_ALIASES = {"tempo_synced": "tempo-synced"}


def quality_descriptions(qualities: list[str]) -> list[str]:
    out = []
    for q in qualities:
        name = QUALITY_ALIASES.get(q, q)
        if name not in NSYNTH_QUALITIES:
            raise KeyError(f"unknown NSynth quality {q!r}; known: {', '.join(NSYNTH_QUALITIES)}")
        out.append(NSYNTH_QUALITIES[name])
    return out


# --------------------------------------------------------------------------- environmental


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, dict[str, str]]:
    """FSD50K label -> {mid, name, description} from the AudioSet ontology."""
    with VOCABULARY_TSV.open(newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {
            r["fsd50k_label"]: {"mid": r["mid"], "name": r["audioset_name"], "description": r["description"]}
            for r in rows
        }


@lru_cache(maxsize=1)
def _ontology() -> dict[str, set[str]]:
    """FSD50K label -> its ancestors and descendants among the 200 labels (AudioSet ontology)."""
    out: dict[str, set[str]] = {}
    with open(DATA_DIR / "fsd50k_ontology.tsv", newline="", encoding="utf-8") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        for r in rows:
            out[r["fsd50k_label"]] = {x for x in (r["ancestors"] + ";" + r["descendants"]).split(";") if x}
    return out


def ontology_relatives(label: str) -> set[str]:
    """Labels that are the target's ancestors or descendants in the AudioSet ontology: never a "wrong"
    choice in a 5-way test (a dog's bark is a dog sound). Empty for labels outside FSD50K."""
    return _ontology().get(label, set())


def display_name(label: str) -> str:
    entry = vocabulary().get(label)
    return entry["name"] if entry else label.replace("_and_", ", ").replace("_", " ")


def ontology_description(label: str) -> str | None:
    entry = vocabulary().get(label)
    return entry["description"] if entry else None


LLM_PROMPT = (
    "Describe in detail the sound of the class '{name}' from the AudioSet ontology: what produces it, "
    "its frequency range and dominant frequencies, its temporal structure (attack, decay, sustain, "
    "release), its texture and any rhythm. Answer with one paragraph of plain text."
)


def llm_descriptions(
    labels: list[str], complete: Callable[[str], str], model: str, cache_dir: Path
) -> dict[str, str]:
    """Descriptions written by `complete` (a call to `model`), cached per model so a rerun pays nothing."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)
    path = cache_dir / "descriptions" / f"environmental-{slug}.json"
    cache: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [lb for lb in labels if lb not in cache]
    for label in missing:
        text = complete(LLM_PROMPT.format(name=display_name(label))).strip()
        if not text:
            raise ValueError(f"{model} returned an empty description for {label!r}")
        cache[label] = text
        atomic_write(path, json.dumps(cache, indent=1, sort_keys=True))
    return {lb: cache[lb] for lb in labels}


FROM_SETTINGS = "from-settings"


def describe_items(items: list, model: str | None = FROM_SETTINGS, cache_dir: Path | None = None,
                   complete: Callable[[str], str] | None = None) -> list:
    """Environmental items with descriptions written by the describer model (settings.describer_model;
    the paper had GPT-4o write them; "local" is the embedded model, offline), cached per model, and
    description_source "llm:<model>". No describer: the items keep the AudioSet ontology's text. A
    describer that fails leaves the ontology text and names the failure in description_source."""
    from audioprobe.settings import get_settings

    settings = get_settings()
    model = settings.describer_model if model == FROM_SETTINGS else model
    env = [i for i in items if get_tier(i.tier).described]
    if not model or not env:
        return items
    if complete is None:
        from tasks.generation import llm

        if model == "local":
            from tasks.generation import local_server

            try:
                local_server.ensure_server(model)
            except RuntimeError as exc:  # LocalModelError: the source then names the failure
                return [i.model_copy(update={"description_source": f"audioset-ontology (describer {model} "
                                                                   f"unavailable: {str(exc)[:120]})"})
                        if get_tier(i.tier).described else i for i in items]

        def complete(prompt: str) -> str:
            g = llm.generate(prompt, model, raise_transient=False)
            if g.error:
                raise RuntimeError(f"{g.error_kind}: {g.error}")
            return g.raw_text

    # "local" names whichever embedded model is configured: the cache and the source say which one
    who = f"local-{settings.local_model}" if model == "local" else model
    try:
        written = llm_descriptions(sorted({i.label for i in env}), complete, who, cache_dir or settings.cache_dir)
    except (RuntimeError, ValueError) as exc:
        return [i.model_copy(update={"description_source": f"audioset-ontology (describer {model} failed: "
                                                           f"{str(exc)[:120]})"})
                if get_tier(i.tier).described else i for i in items]
    return [i.model_copy(update={"description": written[i.label], "description_source": f"llm:{who}"})
            if get_tier(i.tier).described else i for i in items]


# --------------------------------------------------------------------------- speech

# ARPAbet as CMUdict writes it -> (IPA, a common word with that sound)
ARPABET: dict[str, tuple[str, str]] = {
    "AA": ("ɑ", "odd"),
    "AE": ("æ", "at"),
    "AH": ("ʌ", "hut"),
    "AO": ("ɔ", "ought"),
    "AW": ("aʊ", "cow"),
    "AY": ("aɪ", "hide"),
    "B": ("b", "be"),
    "CH": ("tʃ", "cheese"),
    "D": ("d", "dee"),
    "DH": ("ð", "thee"),
    "EH": ("ɛ", "Ed"),
    "ER": ("ɝ", "hurt"),
    "EY": ("eɪ", "ate"),
    "F": ("f", "fee"),
    "G": ("ɡ", "green"),
    "HH": ("h", "he"),
    "IH": ("ɪ", "it"),
    "IY": ("i", "eat"),
    "JH": ("dʒ", "gee"),
    "K": ("k", "key"),
    "L": ("l", "lee"),
    "M": ("m", "me"),
    "N": ("n", "knee"),
    "NG": ("ŋ", "ping"),
    "OW": ("oʊ", "oat"),
    "OY": ("ɔɪ", "toy"),
    "P": ("p", "pee"),
    "R": ("ɹ", "read"),
    "S": ("s", "sea"),
    "SH": ("ʃ", "she"),
    "T": ("t", "tea"),
    "TH": ("θ", "theta"),
    "UH": ("ʊ", "hood"),
    "UW": ("u", "two"),
    "V": ("v", "vee"),
    "W": ("w", "we"),
    "Y": ("j", "yield"),
    "Z": ("z", "zee"),
    "ZH": ("ʒ", "seizure"),
}
VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def cmudict_path() -> Path | None:
    """The CMU pronouncing dictionary that the pocketsphinx wheel ships, if pocketsphinx is installed."""
    try:
        import pocketsphinx
    except ImportError:
        return None
    model = Path(pocketsphinx.get_model_path())
    for candidate in (model / "en-us" / "cmudict-en-us.dict", *model.rglob("cmudict-en-us.dict")):
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[str]]:
    path = cmudict_path()
    if path is None:
        return {}
    entries: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and "(" not in parts[0]:  # first pronunciation only
            entries.setdefault(parts[0].lower(), [p.rstrip("012") for p in parts[1:]])
    return entries


def phonemes(word: str) -> list[str] | None:
    return _cmudict().get(word.lower())


def phonetic_description(word: str) -> str | None:
    """A prose phonetic description from CMUdict, or None when the dictionary or the word is missing."""
    phones = phonemes(word)
    if not phones:
        return None
    ipa = "".join(ARPABET[p][0] for p in phones)
    parts = []
    for p in phones:
        kind = "vowel" if p in VOWELS else "consonant"
        parts.append(f"{p} /{ARPABET[p][0]}/ ({kind}, as in '{ARPABET[p][1]}')")
    n_syll = sum(p in VOWELS for p in phones)
    return (
        f"'{word}' is pronounced /{ipa}/ (ARPAbet {' '.join(phones)}): {n_syll} syllable"
        f"{'s' if n_syll != 1 else ''}, {len(phones)} phonemes in order: " + ", ".join(parts) + "."
    )
