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

from audioprobe.schema import Judgement
from tasks.judges import audio
from tasks.judges.cache import JudgementCache
from tasks.judges.clap import DISTRACTORS, five_way
from tasks.judges.embeddings import Embedding, LogMelStats, embed_files

JUDGE = "classify/offline-audio-knn"
TEMPERATURE = 0.1


class OfflineClassifier:
    def __init__(self, bank: Mapping[str, Sequence[str | Path]], embedding: Embedding | None = None,
                 cache_dir: Path | None = None) -> None:
        self.embedding = embedding or LogMelStats()
        self.cache_dir = cache_dir
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
        bank_id = hashlib.sha256("|".join(f"{l}:{s}" for l, s in zip(self.labels, self.shas)).encode()).hexdigest()
        self.version = f"offline-knn-v1+{self.embedding.version}+{audio.PREPROCESS_VERSION}+bank-{bank_id[:12]}"

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

    def judge_file(self, path: str | Path, target: str, *, seed: int = 0, exclude_self: bool = False,
                   cache: JudgementCache | None = None) -> Judgement:
        cache = cache or JudgementCache()
        if target not in set(self.labels):
            raise ValueError(f"target {target!r} has no reference clips in the bank")
        sha = audio.sha256_file(path)
        params = {"target": target, "seed": seed, "exclude_self": exclude_self, "distractors": DISTRACTORS}

        def compute() -> Judgement:
            scores = self.scores_for(path, exclude_self=exclude_self)
            if target not in scores:
                return Judgement(judge=JUDGE, judge_version=self.version, audio_sha256=sha, params=params,
                                 error=f"{target!r}: its only reference is this clip")
            v = five_way(scores, target, seed)
            v["judge"] = JUDGE
            return Judgement(judge=JUDGE, judge_version=self.version, audio_sha256=sha, params=params,
                             correct=v["correct"], score=v["confidence"], values=v)

        return cache.get_or_compute(sha, JUDGE, self.version, params, compute)
