"""Speech: pocketsphinx (its US English model ships in the wheel) in a 5-way forced choice, plus free text.

Forced choice: a JSGF grammar whose only sentences are the target and its 4 distractors (the scheme of
tasks/judges/choices.py), so the decoder must pick the closest word; free decoding with the default
language model records what it "heard". Silence is gated first: pocketsphinx decodes silence as a word
("dog" in the grammar-free decoder), which would score a silent file as speech.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from audioprobe.schema import Judgement, ProbeItem
from tasks.judges import audio, choices
from tasks.judges.base import ClipJudge, cached, target_item
from tasks.judges.cache import JudgementCache
from tasks.judges.gate import SILENCE_PEAK
from tasks.probesets.speech_commands import WORDS

SAMPLE_RATE = 16000
PAD_S = 0.25  # silence either side: the model expects a lead-in before speech
SPEECH_VERSION = f"speech-v1+{audio.PREPROCESS_VERSION}+pocketsphinx-5.1.1-en-us"
JUDGE = "speech/pocketsphinx"
SPEECH_COMMANDS_WORDS = (
    WORDS  # the 35 words the paper's speech tier draws from (order is irrelevant: draws sort)
)

_lock = threading.Lock()  # one Decoder, not thread-safe
_decoder = None


def _get_decoder():
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        _decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    return _decoder


def _pcm(wave16k: np.ndarray) -> bytes:
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), dtype=np.float32)
    x = np.concatenate([pad, wave16k, pad])
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _decode(dec, pcm: bytes) -> str:
    dec.start_utt()
    dec.process_raw(pcm, no_search=False, full_utt=True)
    dec.end_utt()
    hyp = dec.hyp()
    return hyp.hypstr.strip() if hyp is not None else ""


def grammar(words: list[str]) -> str:
    return "#JSGF V1.0;\ngrammar choice;\npublic <choice> = " + " | ".join(words) + " ;\n"


def recognise(wave16k: np.ndarray, options: list[str]) -> dict:
    """Forced choice among `options` and free decoding of one 16 kHz clip."""
    pcm = _pcm(wave16k)
    with _lock:
        dec = _get_decoder()
        missing = [w for w in options if dec.lookup_word(w) is None]
        if missing:
            raise ValueError(f"not in pocketsphinx's dictionary: {missing}")
        dec.activate_search()  # the default language model
        text = _decode(dec, pcm)
        name = "choice_" + "_".join(options)
        try:
            dec.activate_search(name)
        except KeyError:
            dec.add_jsgf_string(name, grammar(options))
            dec.activate_search(name)
        chosen = _decode(dec, pcm) or None
        dec.activate_search()
    return {"chosen": chosen, "text": text}


class SpeechJudge(ClipJudge):
    """The asked word (item.label) among 4 distractors drawn from `vocabulary` with `seed`."""

    name, version = JUDGE, SPEECH_VERSION

    def __init__(self, seed: int = 0, vocabulary: tuple[str, ...] = SPEECH_COMMANDS_WORDS) -> None:
        self.seed, self.vocabulary = seed, tuple(vocabulary)

    def params(self, item: ProbeItem) -> dict:
        word = item.label.lower()
        words = self.vocabulary if word in self.vocabulary else (*self.vocabulary, word)
        return {"word": word, "seed": self.seed, "choices": choices.draw(word, words, seed=self.seed)}

    def judge_clip(self, clip: Path, item: ProbeItem) -> Judgement:
        asked = self.params(item)
        word, opts = asked["word"], asked["choices"]
        wave = audio.prepare(clip, SAMPLE_RATE, loudness="keep", max_seconds=30.0)
        values = {"choices": opts, "chosen": None, "correct": False, "text": ""}
        if wave.size == 0 or float(np.max(np.abs(wave))) < SILENCE_PEAK:
            return self.verdict(clip, item, correct=False, values=values, error="silent: not decoded")
        values.update(recognise(audio.apply_loudness(wave, "peak"), opts))
        values["correct"] = values["chosen"] == word
        return self.verdict(
            clip, item, correct=values["correct"], score=float(values["correct"]), values=values
        )


def judge_file(
    path: str | Path,
    word: str,
    *,
    seed: int = 0,
    vocabulary: tuple[str, ...] = SPEECH_COMMANDS_WORDS,
    cache: JudgementCache | None = None,
) -> Judgement:
    """Shim for callers not yet on the protocol (tasks/judges/cli.py, validate.py, the benches)."""
    judge = cached(SpeechJudge(seed, vocabulary), cache)
    return judge.judge([Path(path)], [target_item("speech", word)])[0]
