"""The pipeline's one door to the judges: the gate against what the item's tier asked, then that tier's
judges (tasks/tiers/<tier>.py says which). Judges that embed a bank or a model are built once per
process and dataset; each caches per clip content.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from audioprobe.schema import FADResult, GateResult, ItemOutcome, Judgement, ProbeItem
from audioprobe.settings import get_settings
from tasks.tiers import get_tier

DISTRACTOR_SEED = 0  # the same 5 candidates for an item in every run and for every model

def gate_for_tier(audio: Path, tier: str) -> GateResult:
    from tasks.judges import gate

    asked = get_tier(tier).asked
    return gate.check(audio, sr=asked.sample_rate, seconds=asked.seconds, duration_tolerance=asked.tolerance)


def judge_item(audio: Path, item: ProbeItem, dataset_root: str | None = None) -> list[Judgement]:
    return judge_items([audio], [item], dataset_root)[0]


def judge_items(audios: list[Path], items: list[ProbeItem], dataset_root: str | None = None) -> list[list[Judgement]]:
    """Each tier's judges over its clips of the batch, as one batch (the pitch judge measures all notes'
    frames in one pass: a GPU's batch speed)."""
    out: list[list[Judgement]] = [[] for _ in items]
    by_tier: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_tier[item.tier].append(i)
    for tier, indices in by_tier.items():
        judged = get_tier(tier).judge([audios[i] for i in indices], [items[i] for i in indices], dataset_root)
        for i, judgements in zip(indices, judged, strict=True):
            out[i] = judgements
    return out


def device() -> str:
    from tasks.judges.embeddings import resolve_device

    return resolve_device(get_settings().judge_device)


FAD_INPUTS_VERSION = "1"  # bump when fad_for_outcomes computes differently from the same inputs


def fad_inputs_key(outcomes: list[ItemOutcome]) -> str:
    """What a model's FAD records are computed from: each item's references, the clips that passed the gate
    (by content where a judge hashed them) and the embedding in use."""
    embedding = "vggish" if get_settings().vggish_checkpoint else "auto"
    parts = []
    for o in outcomes:
        passed = bool(o.audio_path and o.gate is not None and o.gate.ok)
        sha = next((j.audio_sha256 for j in o.judgements if j.audio_sha256), "") if passed else ""
        parts.append([o.item.id, o.sample, o.item.label, sorted(o.item.references), passed, sha or o.audio_path])
    blob = json.dumps([FAD_INPUTS_VERSION, embedding, sorted(parts, key=json.dumps)])
    return hashlib.sha256(blob.encode()).hexdigest()


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
