"""CLAP 5-way: is the target's text the nearest of 5 to the clip? (the paper's environmental judge)

Model: LAION-CLAP weights through transformers' ClapModel/ClapProcessor from a local folder (e.g.
laion/clap-htsat-unfused, the 630k-audioset-best checkpoint, or laion/larger_clap_music). Not the
`laion-clap` package: it pins numpy<2 (this project uses numpy 2) and downloads three tokenizers at
import, which fails offline; transformers loads the same converted weights with no network.

Protocol: the clip at 48 kHz (first 10 s: longer clips would be cut at a random offset by the
processor), text "This is a sound of {label}." for every label of the vocabulary, logits = exp(logit_scale_a)
(read from the checkpoint) x cosine. The 5 candidates are the target and 4 seeded distractors
(tasks/judges/choices.py); chosen = argmax, confidence = softmax probability of the chosen label over
the 5. Beside it, the exact expected accuracy over all distractor draws from the target's rank among
all labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from audioprobe.schema import Judgement, ProbeItem
from tasks.judges import audio, choices, compat
from tasks.judges.base import ClipJudge, cached, target_item
from tasks.judges.cache import JudgementCache
from tasks.judges.vggish import CheckpointError

SAMPLE_RATE = 48000
MAX_SECONDS = 10.0
TEMPLATE = "This is a sound of {label}."
CLAP_VERSION = f"clap-hf-v1+{audio.PREPROCESS_VERSION}"


def _fingerprint(folder: Path) -> str:
    """config + weight file names and sizes: cheap, and changes when the checkpoint does."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin")):
            h.update(f.name.encode())
            h.update(f.read_bytes() if f.suffix == ".json" else str(f.stat().st_size).encode())
    return h.hexdigest()[:12]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()


class ClapJudge(ClipJudge):
    """The asked label (item.label) among 4 distractors drawn with `seed` from `vocabulary` (label -> the
    text put in the template; default: the 200 FSD50K labels and their AudioSet names)."""

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "cpu",
        vocabulary: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        from audioprobe.settings import get_settings

        self._vocabulary = dict(vocabulary) if vocabulary is not None else None
        self.seed = seed

        folder = checkpoint or get_settings().clap_checkpoint
        if not folder:
            raise CheckpointError(
                "no CLAP checkpoint: set AUDIOPROBE_CLAP_CHECKPOINT to a folder holding a transformers "
                "ClapModel and ClapProcessor (see docs/judges.md)"
            )
        self.folder = Path(folder).expanduser()
        if not (self.folder / "config.json").is_file():
            raise CheckpointError(f"CLAP checkpoint {self.folder} has no config.json (see docs/judges.md)")
        ClapModel, ClapProcessor = compat.import_transformers_clap()
        try:
            self.model = ClapModel.from_pretrained(self.folder, local_files_only=True).eval().to(device)
            self.processor = ClapProcessor.from_pretrained(self.folder, local_files_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"{self.folder} is not a loadable ClapModel + ClapProcessor: {type(exc).__name__}: {exc}"
            ) from exc
        self.device = device
        self.name = f"classify/clap-{self.folder.name}"
        self.version = f"{CLAP_VERSION}+{_fingerprint(self.folder)}"
        self.logit_scale = float(self.model.logit_scale_a.detach().exp().cpu())
        self._text: dict[str, np.ndarray] = {}

    @property
    def vocabulary(self) -> dict[str, str]:
        if self._vocabulary is None:
            from tasks.probesets.descriptions import vocabulary

            self._vocabulary = {label: entry["name"] for label, entry in vocabulary().items()}
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, value: Mapping[str, str]) -> None:
        self._vocabulary = dict(value)

    def params(self, item: ProbeItem) -> dict:
        if item.label not in self.vocabulary:
            raise ValueError(
                f"target {item.label!r} is not in the vocabulary of {len(self.vocabulary)} labels"
            )
        digest = hashlib.sha256(repr(sorted(self.vocabulary.items())).encode()).hexdigest()[:12]
        return {
            "target": item.label,
            "seed": self.seed,
            "distractors": DISTRACTORS,
            "template": TEMPLATE,
            "vocabulary": digest,
        }

    def judge_clip(self, clip: Path, item: ProbeItem) -> Judgement:
        wave = audio.prepare(clip, SAMPLE_RATE, loudness="keep", max_seconds=MAX_SECONDS)
        v = five_way(self.scores(wave, self.vocabulary), item.label, self.seed)
        v["judge"] = self.name
        return self.verdict(clip, item, correct=v["correct"], score=v["confidence"], values=v)

    @staticmethod
    def _pooled(out):
        import torch

        emb = out if torch.is_tensor(out) else out.pooler_output  # transformers 4 vs 5
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    def text_embeddings(self, texts: list[str]) -> np.ndarray:
        import torch

        todo = [t for t in dict.fromkeys(texts) if t not in self._text]
        for i in range(0, len(todo), 64):
            batch = todo[i : i + 64]
            inp = self.processor(text=batch, return_tensors="pt", padding=True).to(self.device)
            with torch.inference_mode():
                emb = self._pooled(self.model.get_text_features(**inp))
            self._text.update(zip(batch, emb))
        return np.stack([self._text[t] for t in texts])

    def audio_embeddings(self, waves48k: list[np.ndarray]) -> np.ndarray:
        import torch

        inp = self.processor(
            audio=[w.astype(np.float32) for w in waves48k], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            return self._pooled(self.model.get_audio_features(**inp))

    def scores(self, wave48k: np.ndarray, vocabulary: Mapping[str, str]) -> dict[str, float]:
        """label -> logit for every label; vocabulary maps label -> the text put in the template."""
        labels = list(vocabulary)
        text = self.text_embeddings([TEMPLATE.format(label=vocabulary[lb]) for lb in labels])
        a = self.audio_embeddings([wave48k])[0]
        return dict(zip(labels, (self.logit_scale * (text @ a)).tolist()))


DISTRACTORS = "ontology-relatives-excluded-v1"  # in every judgement's params: old caches are not reused


def five_way(scores: Mapping[str, float], target: str, seed: int) -> dict:
    """The 5-way verdict from a score for every label (shared with the offline classifier). The target's
    ancestors and descendants in the AudioSet ontology are neither distractors nor counted against it."""
    from tasks.probesets.descriptions import ontology_relatives

    related = ontology_relatives(target)
    scores = {label: s for label, s in scores.items() if label == target or label not in related}
    opts = choices.draw(target, list(scores), seed=seed)
    logits = np.array([scores[o] for o in opts])
    prob = softmax(logits)
    best = int(np.argmax(logits))
    return {
        "choices": opts,
        "chosen": opts[best],
        "correct": opts[best] == target,
        "confidence": round(float(prob[best]), 6),
        "target_probability": round(float(prob[opts.index(target)]), 6),
        "rank": choices.rank(scores, target),
        "n_labels": len(scores),
        "expected_accuracy": round(choices.expected_accuracy(scores, target), 6),
        "excluded_relatives": sorted(related),
        "seed": seed,
    }


def judge_file(
    path: str | Path,
    target: str,
    vocabulary: Mapping[str, str],
    judge: ClapJudge,
    *,
    seed: int = 0,
    cache: JudgementCache | None = None,
) -> Judgement:
    """Shim for callers not yet on the protocol (tasks/judges/cli.py, validate.py, the benches)."""
    twin = cached(judge.configured(vocabulary=vocabulary, seed=seed), cache)
    return twin.judge([Path(path)], [target_item("environmental", target)])[0]
