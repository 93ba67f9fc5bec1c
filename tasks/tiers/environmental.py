"""Environmental: one FSD50K class (name and description), 44.1 kHz, "2-3 seconds".

Judged per clip by a 5-way forced choice: CLAP with a checkpoint, else the offline audio-to-audio
classifier over the reference bank of the dataset the items came from.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from audioprobe.schema import Judgement, ProbeItem
from tasks.tiers import Asked, Contract, Tier, register


class EnvironmentalTier(Tier):
    def build_refs(self, root: Path, fetcher, progress, force: bool, **subset) -> dict:
        from tasks.probesets.refs_environmental import build_environmental

        return build_environmental(root, fetcher, progress, subset.get("env_labels"), force)

    def prompt_values(self, item: ProbeItem) -> dict[str, str | None]:
        return {"input": item.display_name or item.label, "description": item.description}

    def judges(self, dataset_root: str | None = None) -> list:
        """CLAP with a checkpoint, else the offline classifier over the dataset's reference bank."""
        from audioprobe.settings import get_settings
        from tasks.judging import device

        checkpoint = get_settings().clap_checkpoint
        return [_clap_judge(str(checkpoint), device()) if checkpoint else offline_classifier(dataset_root)]

    def judge_control(
        self, audio: Path, item: ProbeItem, control: str, dataset_root: str | None = None
    ) -> list[Judgement]:
        """A held-out real clip is judged with itself left out of the offline bank (exclude_self)."""
        from tasks.judges.base import judge_all

        judges = self.judges(dataset_root)
        if control == "held_out_real":
            judges = [j.configured(exclude_self=True) if hasattr(j, "exclude_self") else j for j in judges]
        return judge_all(judges, [audio], [item])[0]

    def baseline_program(self, item: ProbeItem, out_name: str) -> str:
        """Band-limited noise bursts, the band placed by the class name's hash (200 Hz .. ~4 kHz)."""
        digest = int(hashlib.sha256(item.label.encode()).hexdigest()[:8], 16)
        center = 200.0 * 2 ** (4.3 * (digest % 1000) / 1000)
        return PROGRAM.format(low=round(center / 1.5, 1), high=round(center * 1.5, 1), out=out_name)


@lru_cache(maxsize=2)
def _clap_judge(checkpoint: str, device: str):
    from tasks.judges.clap import ClapJudge
    from tasks.judging import DISTRACTOR_SEED

    # its default vocabulary: all 200 FSD50K labels, so distractors come from the 199 others (the paper's)
    return ClapJudge(checkpoint, device=device, seed=DISTRACTOR_SEED)


@lru_cache(maxsize=4)
def offline_classifier(dataset_root: str | None):
    """The reference bank: every class of the dataset that has clips, not only the run's items."""
    from audioprobe.settings import get_settings
    from tasks.judges.classify import OfflineClassifier
    from tasks.judging import DISTRACTOR_SEED
    from tasks.probesets.loaders import load_items

    dataset = Path(dataset_root) / TIER.offline_dir if dataset_root else None
    items, _ = load_items(TIER.name, dataset)
    bank = {item.label: item.references for item in items if item.references}
    return OfflineClassifier(bank, cache_dir=get_settings().cache_dir / "embeddings", seed=DISTRACTOR_SEED)


TIER = register(
    EnvironmentalTier(
        name="environmental",
        title="Environmental sounds",
        methods=("detailed", "detailed_description"),
        asked=Asked(44100, 2.5, 0.2),  # "2-3 seconds"
        contract=Contract(".wav", 44100, 3.0),  # 3: inside the paper's "2-3 seconds"
        offline_dir="fsd50k",
        loader="tasks.probesets.fsd50k",
        controls=("silence", "white_noise", "tone_burst", "held_out_real"),
        headline="classify",
        report_section="table1",
        forced_choice=True,
        described=True,
        columns=("display_name",),
    )
)

PROGRAM = """import wave
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
"""
