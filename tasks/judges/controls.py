"""Reference points: what known inputs score under every judge of a tier, so each number has a scale.

For a few items of a tier (seeded), four controls go through the same gate and judges as generated clips:
- `silence`: 2 s (notes: 4 s) of zeros, the floor;
- `white_noise`: seeded Gaussian noise at -12 dBFS RMS;
- `sine_at_target` (notes: a sine at the item's MIDI pitch, with a 3 s note-off) or `tone_burst`
  (environmental and speech: a 1 kHz burst of 0.5 s in 2 s): right pitch or energy, no timbre;
- `held_out_real`: one of the class's real references, taken out of the pool it is compared with, the
  ceiling (only for classes with 2 or more references). Notes prefer the reference at the item's pitch.

The environmental judge is asked with the held-out clip left out of its reference bank (exclude_self);
notes add the per-note FAD and kernel score against the class's other references. The speech forced
choice's empirical chance is its accuracy on the non-speech controls it decided on (`empirical_chance`):
pocketsphinx is not a fair 5-sided die on noise, and it abstains on some (never decoded: silence; no word
chosen: some noise and tones), which are counted apart as abstentions, not as misses.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from audioprobe import stored
from audioprobe.schema import ProbeItem, ReferencePoint
from tasks.tiers import all_tiers, get_tier

CONTROLS = {tier.name: tier.controls for tier in all_tiers()}  # each tier declares its own (tasks/tiers)
NON_SPEECH = ("silence", "white_noise", "tone_burst")
CONTROL_ITEMS = 5  # items per tier: enough for a floor and a ceiling, cheap enough for every run
SR = 16000
FILE = "reference_points.json"
CONTROLS_VERSION = "controls-v1"


def synthesise(control: str, item: ProbeItem, seed: int = 0) -> np.ndarray:
    seconds = get_tier(item.tier).control_seconds
    t = np.arange(int(seconds * SR)) / SR
    if control == "silence":
        return np.zeros_like(t)
    if control == "white_noise":
        digest = hashlib.sha256(f"{seed}|{item.id}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        return np.clip(rng.standard_normal(len(t)) * 10 ** (-12 / 20), -1, 1)
    if control == "sine_at_target":
        f0 = 440.0 * 2 ** ((float(item.pitch) - 69) / 12)
        envelope = np.minimum(1.0, t / 0.01) * np.where(t < 3.0, 1.0, np.exp(-(t - 3.0) / 0.1))
        return 0.5 * np.sin(2 * np.pi * f0 * t) * envelope
    if control == "tone_burst":
        on = (t >= 0.75) & (t < 1.25)
        return 0.5 * np.sin(2 * np.pi * 1000.0 * t) * on
    raise ValueError(f"{control!r} is not a synthesised control")


def held_out(item: ProbeItem) -> str | None:
    """The reference left out for the ceiling: the item's own pitch where the file names say so."""
    refs = [r for r in item.references if Path(r).is_file()]
    if len(refs) < 2:
        return None
    if item.pitch is not None:  # NSynth file names carry the pitch
        same = [r for r in refs if f"-{int(item.pitch):03d}-" in Path(r).name]
        if same:
            return same[0]
    return refs[0]


def pick_items(items: Sequence[ProbeItem], n: int = CONTROL_ITEMS, seed: int = 0) -> list[ProbeItem]:
    """n items, different labels first, those with a reference to hold out (2 or more) first, seeded.
    An item with a single reference gets the synthesised controls only."""
    usable = sorted(items, key=lambda i: i.id)
    random.Random(seed).shuffle(usable)
    usable.sort(key=lambda i: held_out(i) is None)  # stable: the seeded order within each group
    out, labels = [], set()
    for item in usable:
        if item.label not in labels:
            out.append(item)
            labels.add(item.label)
    return (out + [i for i in usable if i not in out])[:n]


def control_files(item: ProbeItem, folder: Path, seed: int = 0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", item.id)  # item ids hold slashes: notes/nsynth/<note>
    out = {}
    for control in get_tier(item.tier).controls:
        path = folder / f"{stem}.{control}.wav"
        if control == "held_out_real":
            source = held_out(item)
            if source is None:
                continue
            path = path.with_suffix(Path(source).suffix)
            shutil.copyfile(source, path)  # byte copy: same sha256, so the bank can leave it out
        else:
            sf.write(path, synthesise(control, item, seed).astype(np.float32), SR, subtype="PCM_16")
        out[control] = path
    return out


def reference_points(tier: str, items: Sequence[ProbeItem], folder: Path, dataset_root: str | None = None,
                     n_items: int = CONTROL_ITEMS, seed: int = 0) -> list[ReferencePoint]:
    """Every control of up to n_items items through the tier's gate and judges."""
    from tasks import judging

    points = []
    for item in pick_items([i for i in items if i.tier == tier], n_items, seed):
        files = control_files(item, folder / tier, seed)
        pool = [r for r in item.references if r != held_out(item)]
        distances = _note_distances(files, pool) if get_tier(tier).distances_per_class else {}
        for control, path in files.items():
            gate = judging.gate_for_tier(path, tier)
            base = {"tier": tier, "control": control, "item": item.id, "label": item.label,
                    "gate_ok": gate.ok, "gate_problems": gate.problems}
            try:
                judgements = _judge(path, item, control, dataset_root)
            except Exception as exc:  # noqa: BLE001 - a judge that cannot run says so in its row
                points.append(ReferencePoint(**base, judge=tier, error=f"{type(exc).__name__}: {exc}"))
                continue
            for j in judgements:
                points.append(ReferencePoint(**base, judge=j.judge, judge_version=j.judge_version,
                                             correct=j.correct, values=j.values, error=j.error))
            if control in distances:
                points.append(ReferencePoint(**base, judge="distance/per-note", judge_version=CONTROLS_VERSION,
                                             values=distances[control]))
    return points


def _judge(path: Path, item: ProbeItem, control: str, dataset_root: str | None):
    return get_tier(item.tier).judge_control(path, item, control, dataset_root)


def _note_distances(files: dict[str, Path], pool: list[str]) -> dict[str, dict]:
    from audioprobe.settings import get_settings
    from tasks.judges import frechet
    from tasks.judges.distance import per_note_distances
    from tasks.judges.embeddings import reference_window

    if len(pool) < 2:
        return {}
    embedding = "vggish" if get_settings().vggish_checkpoint else "auto"
    window = reference_window(pool)
    names = list(files)
    scores = per_note_distances([str(files[n]) for n in names], pool, embedding=embedding, window_s=window)
    return {
        n: {"fad": s.fad, "kad": s.kad, "embedding": s.embedding, "n_ref": len(pool),
            "band": frechet.band(s.fad, s.embedding, "note", window)}
        for n, s in zip(names, scores)
    }


def decided(p: ReferencePoint) -> bool:
    """The judge chose one of the 5 words or labels: not refused undecoded (silence), not abstained."""
    return p.error is None and p.correct is not None and p.values.get("chosen") is not None


def empirical_chance(points: Sequence[ReferencePoint], judge_prefix: str = "speech") -> dict:
    """The forced choice's accuracy on the non-speech controls it decided on: the chance level it has.

    Silence is never decoded (error "silent: not decoded") and pocketsphinx may choose nothing on noise or
    a tone (chosen None): counting those as misses would put a verdict the judge never gave in the
    denominator and push the "chance" towards 0. They are counted apart, as abstentions."""
    js = [p for p in points if p.judge.startswith(judge_prefix) and p.control in NON_SPEECH]
    made = [p for p in js if decided(p)]
    k = sum(bool(p.correct) for p in made)
    return {"correct": k, "n": len(made), "rate": k / len(made) if made else None,
            "abstained": len(js) - len(made), "controls": sorted({p.control for p in made})}


# --------------------------------------------------------------------------- the run's file


def save(run_dir: Path, tier: str, points: Sequence[ReferencePoint]) -> Path:
    from tasks.records import atomic_write

    path = Path(run_dir) / FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    data[tier] = [p.model_dump(mode="json") for p in points]
    atomic_write(path, json.dumps(data, indent=1))
    return path


def load(run_dir: Path) -> list[ReferencePoint]:
    path = Path(run_dir) / FILE
    if not path.exists():
        return []
    return stored.load_all(ReferencePoint, [p for tier in json.loads(path.read_text()).values() for p in tier])


def has_tier(run_dir: Path, tier: str) -> bool:
    path = Path(run_dir) / FILE
    return path.exists() and tier in json.loads(path.read_text())
