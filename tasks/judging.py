"""Which judge listens to which tier, with what it was asked: the pipeline's one door to tasks.judges.

- notes: the gate against 16 kHz / 4 s; pitch per clip; FAD per instrument and instrument x source
  over the whole set (VGGish with a checkpoint, log-mel statistics offline).
- environmental: the gate against 44.1 kHz / 2-3 s; CLAP 5-way with a checkpoint, else the offline
  audio-to-audio 5-way over the reference bank of the dataset the items came from.
- speech: the gate against ~2 s; pocketsphinx 5-way forced choice plus free decoding.
Judges that embed a bank or a model are built once per process and dataset.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from audioprobe.schema import FADResult, GateResult, ItemOutcome, Judgement, ProbeItem
from audioprobe.settings import get_settings

# What each tier's paper prompt asks for: (sample rate, seconds, relative tolerance on duration).
ASKED = {
    "notes": (16000, 4.0, 0.1),
    "environmental": (44100, 2.5, 0.2),  # "2-3 seconds"
    "speech": (None, 2.0, 0.25),  # "approximately 2 seconds"; no rate asked
}
DISTRACTOR_SEED = 0  # the same 5 candidates for an item in every run and for every model


def gate_for_tier(audio: Path, tier: str) -> GateResult:
    from tasks.judges import gate

    sr, seconds, tolerance = ASKED[tier]
    return gate.check(audio, sr=sr, seconds=seconds, duration_tolerance=tolerance)


def judge_item(audio: Path, item: ProbeItem, dataset_root: str | None = None) -> list[Judgement]:
    if item.tier == "notes":
        return [_pitch(audio, item)]
    if item.tier == "environmental":
        return [_classify(audio, item, dataset_root)]
    return [_speech(audio, item)]


def judge_items(audios: list[Path], items: list[ProbeItem], dataset_root: str | None = None) -> list[list[Judgement]]:
    """judge_item over a batch: the pitch judge measures all notes' frames in one pass (a GPU's batch
    speed); the other judges go clip by clip. Every judge caches per clip content."""
    notes = [i for i, item in enumerate(items) if item.tier == "notes"]
    out: list[list[Judgement]] = [[] for _ in items]
    if notes:
        from tasks.judges import pitch

        judged = pitch.judge_files([audios[i] for i in notes], [float(items[i].pitch) for i in notes],
                                   device=_device())
        for i, judgement in zip(notes, judged):
            out[i] = [judgement]
    for i, item in enumerate(items):
        if item.tier != "notes":
            out[i] = judge_item(audios[i], item, dataset_root)
    return out


def _device() -> str:
    from tasks.judges.embeddings import resolve_device

    return resolve_device(get_settings().judge_device)


def _pitch(audio: Path, item: ProbeItem) -> Judgement:
    from tasks.judges import pitch

    return pitch.judge_file(audio, float(item.pitch), device=_device())


def _speech(audio: Path, item: ProbeItem) -> Judgement:
    from tasks.judges import speech

    return speech.judge_file(audio, item.label, seed=DISTRACTOR_SEED)


def _classify(audio: Path, item: ProbeItem, dataset_root: str | None) -> Judgement:
    settings = get_settings()
    if settings.clap_checkpoint:
        from tasks.judges import clap

        return clap.judge_file(audio, item.label, _clap_vocabulary(), _clap_judge(str(settings.clap_checkpoint)),
                               seed=DISTRACTOR_SEED)
    return _offline_classifier(dataset_root).judge_file(audio, item.label, seed=DISTRACTOR_SEED)


@lru_cache(maxsize=1)
def _clap_vocabulary() -> dict[str, str]:
    """All 200 FSD50K labels and their AudioSet names: the paper draws distractors from the 199 others."""
    from tasks.probesets.descriptions import vocabulary

    return {label: entry["name"] for label, entry in vocabulary().items()}


@lru_cache(maxsize=2)
def _clap_judge(checkpoint: str):
    from tasks.judges import clap

    return clap.ClapJudge(checkpoint, device=_device())


@lru_cache(maxsize=4)
def _offline_classifier(dataset_root: str | None):
    """The reference bank: every class of the dataset that has clips, not only the run's items."""
    from tasks.judges.classify import OfflineClassifier
    from tasks.probesets.loaders import OFFLINE_DIRS, load_items

    dataset = Path(dataset_root) / OFFLINE_DIRS["environmental"] if dataset_root else None
    items, _ = load_items("environmental", dataset)
    bank = {item.label: item.references for item in items if item.references}
    return OfflineClassifier(bank, cache_dir=get_settings().cache_dir / "embeddings")


def fad_for_outcomes(outcomes: list[ItemOutcome], model: str = "", method: str = "") -> list[FADResult]:
    """The paper's per-instrument FAD, and per instrument x source, over the clips that passed the gate,
    labelled with the model and prompt method whose outcomes they are."""
    from tasks.judges.fad import fad_per_class

    settings = get_settings()
    embedding = "vggish" if settings.vggish_checkpoint else "auto"
    results: list[FADResult] = []
    for group, key in (("instrument", lambda i: i.instrument_family), ("instrument_source", lambda i: i.label)):
        generated: dict[str, list[str]] = defaultdict(list)
        items_of: dict[str, list[str]] = defaultdict(list)  # samples of one item are resampled together
        references: dict[str, set[str]] = defaultdict(set)
        for outcome in outcomes:
            label = key(outcome.item)
            references[label].update(outcome.item.references)
            if outcome.audio_path and outcome.gate is not None and outcome.gate.ok:
                generated[label].append(outcome.audio_path)
                items_of[label].append(outcome.item.id)
        per_class, _macro = fad_per_class(dict(generated), {k: sorted(v) for k, v in references.items()},
                                          embedding=embedding, group=group, groups=dict(items_of))
        results += [r.model_copy(update={"model": model, "method": method}) for r in per_class]
    return results
