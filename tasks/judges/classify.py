"""Offline stand-in for CLAP: the same 5-way, by audio-to-audio similarity to reference clips.

Named `classify/offline-audio-knn` in every result, never passed off as CLAP. Each clip becomes the
mean of its logmel-stats frame embeddings (tasks/judges/embeddings.py), z-scored with the statistics
of the whole reference bank and L2-normalised; a label's score is the cosine similarity to its nearest
reference clip (1-NN: most offline classes have one or two clips). The 5 candidates, the softmax
confidence and the expected accuracy over all draws are exactly as for CLAP (clap.five_way); the
softmax temperature (0.1 on cosines) is a convention, not a calibration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from audioprobe.schema import Judgement, ProbeItem
from tasks.judges import audio
from tasks.judges.base import ClipJudge, cached, target_item
from tasks.judges.cache import JudgementCache
from tasks.judges.clap import DISTRACTORS, five_way
from tasks.judges.embeddings import Embedding, LogMelStats, embed_files

JUDGE = "classify/offline-audio-knn"
TEMPERATURE = 0.1


class OfflineClassifier(ClipJudge):
    """The asked label (item.label) among 4 seeded distractors, by the nearest reference of each label.
    `exclude_self`: a clip that is itself a reference is not compared with itself (leave-one-out)."""

    def __init__(
        self,
        bank: Mapping[str, Sequence[str | Path]],
        embedding: Embedding | None = None,
        cache_dir: Path | None = None,
        seed: int = 0,
        exclude_self: bool = False,
    ) -> None:
        self.embedding = embedding or LogMelStats()
        self.cache_dir = cache_dir
        self.seed, self.exclude_self = seed, exclude_self
        self.labels: list[str] = []
        paths: list[Path] = []
        for label, clips in sorted(bank.items()):
            for p in clips:
                self.labels.append(label)
                paths.append(Path(p))
        if len(set(self.labels)) < 5:
            raise ValueError(f"the reference bank has {len(set(self.labels))} labels; a 5-way choice needs 5")
        self.shas = [audio.sha256_file(p) for p in paths]
        raw = np.stack([e.mean(axis=0) for e in embed_files(self.embedding, paths, cache_dir)])
        self.mu, self.sd = raw.mean(axis=0), raw.std(axis=0) + 1e-6
        self.refs = self._normalise(raw)
        self.name = JUDGE
        bank_id = hashlib.sha256(
            "|".join(f"{l}:{s}" for l, s in zip(self.labels, self.shas)).encode()
        ).hexdigest()
        self.version = (
            f"offline-knn-v1+{self.embedding.version}+{audio.PREPROCESS_VERSION}+bank-{bank_id[:12]}"
        )

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mu) / self.sd
        return z / (np.linalg.norm(z, axis=-1, keepdims=True) + 1e-12)

    def scores_for(self, path: str | Path, exclude_self: bool = False) -> dict[str, float]:
        """label -> cosine to the label's nearest reference (scaled by 1/TEMPERATURE, as logits)."""
        sha = audio.sha256_file(path)
        v = self._normalise(embed_files(self.embedding, [path], self.cache_dir)[0].mean(axis=0))
        sims = self.refs @ v
        out: dict[str, float] = {}
        for label, s, ref_sha in zip(self.labels, sims, self.shas):
            if exclude_self and ref_sha == sha:
                continue  # leave-one-out when the clip is itself a reference
            out[label] = max(out.get(label, -np.inf), float(s) / TEMPERATURE)
        return out

    def params(self, item: ProbeItem) -> dict:
        if item.label not in set(self.labels):
            raise ValueError(f"target {item.label!r} has no reference clips in the bank")
        return {
            "target": item.label,
            "seed": self.seed,
            "exclude_self": self.exclude_self,
            "distractors": DISTRACTORS,
        }

    def judge_clip(self, clip: Path, item: ProbeItem) -> Judgement:
        scores = self.scores_for(clip, exclude_self=self.exclude_self)
        if item.label not in scores:
            return self.verdict(clip, item, error=f"{item.label!r}: its only reference is this clip")
        v = five_way(scores, item.label, self.seed)
        v["judge"] = JUDGE
        return self.verdict(clip, item, correct=v["correct"], score=v["confidence"], values=v)

    def judge_file(
        self,
        path: str | Path,
        target: str,
        *,
        seed: int = 0,
        exclude_self: bool = False,
        cache: JudgementCache | None = None,
    ) -> Judgement:
        """Shim for callers not yet on the protocol (tasks/judges/cli.py, validate.py, the benches)."""
        judge = cached(self.configured(seed=seed, exclude_self=exclude_self), cache)
        return judge.judge([Path(path)], [target_item("environmental", target)])[0]
