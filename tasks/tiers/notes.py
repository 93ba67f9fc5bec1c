"""Notes: one NSynth note (instrument, production, pitch, velocity, qualities), 16 kHz, 4 s.

Judged per clip by the pitch judge (all clips' frames in one pass: a GPU's batch speed) and, over the
whole set, by FAD per instrument and per instrument x source against the NSynth references.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from audioprobe.schema import ItemOutcome, ProbeItem
from tasks.tiers import Asked, Contract, Tier, register


@lru_cache(maxsize=2)
def _pitch_judge(device: str):
    """One pass of the pitch tracker over every clip's chosen frames: a GPU's batch speed."""
    from tasks.judges.pitch import PitchJudge

    return PitchJudge(device)


def _num(x: float) -> str:
    return f"{round(float(x), 3):g}"


class NotesTier(Tier):
    def build_refs(self, root: Path, fetcher, progress, force: bool, **subset) -> dict:
        from tasks.probesets.refs_notes import GM_PROGRAMS, VELOCITIES, build_notes

        pitches = subset.get("notes_pitches")
        return build_notes(
            root,
            fetcher,
            progress,
            subset.get("notes_families"),
            subset.get("notes_sources"),
            {f: pitches for f in GM_PROGRAMS} if pitches else None,
            subset.get("notes_velocities") or VELOCITIES,
            force,
        )

    def prompt_values(self, item: ProbeItem) -> dict[str, str | None]:
        amp = (
            item.amplitude
            if item.amplitude is not None
            else (item.velocity / 127 if item.velocity is not None else None)
        )
        return {
            "pitch": None if item.pitch is None else str(item.pitch),
            "velocity": None if item.velocity is None else str(item.velocity),
            "note": item.note_name,
            "amplitude": None if amp is None else _num(amp),
            "instrument": item.instrument_family,
            "production": item.instrument_source,
            # An NSynth note without qualities is real data, not a gap: say so rather than fail.
            "quality_des": "; ".join(item.quality_descriptions) if item.quality_descriptions else "none",
        }

    def judges(self, dataset_root: str | None = None) -> list:
        from tasks.judging import device

        return [_pitch_judge(device())]

    def set_judges(self, run, outcomes: list[ItemOutcome], model: str, method: str) -> None:
        from tasks import judging, pipeline

        key = judging.fad_inputs_key(outcomes)
        if any(r.inputs_sha256 == key for r in run.fad() if (r.model, r.method) == (model, method)):
            return  # a resume that brought no new clip: the stored FAD stands (its bootstrap takes minutes)
        results = pipeline.fad_per_class(outcomes, model, method)
        run.replace_fad(model, method, [r.model_copy(update={"inputs_sha256": key}) for r in results])

    def wrong_sound_feedback(self, outcome: ItemOutcome, values: dict) -> tuple[str, dict[str, object]]:
        measured = "no pitch at all" if values.get("f0_hz") is None else f"{values['f0_hz']:.1f} Hz"
        cents = "?" if values.get("cents_error") is None else f"{values['cents_error']:+.0f}"
        return "repair.pitch.txt", {
            "measured": measured,
            "midi": outcome.item.pitch,
            "target_hz": f"{values.get('target_hz', 0):.1f}",
            "cents": cents,
        }

    def baseline_program(self, item: ProbeItem, out_name: str) -> str:
        """A sine with an attack/decay envelope at the asked pitch and amplitude."""
        if item.pitch is None:
            raise ValueError(f"item {item.id!r}: a notes item without a pitch has no baseline program")
        amplitude = item.amplitude if item.amplitude is not None else (item.velocity or 100) / 127
        return PROGRAM.format(pitch=item.pitch, amplitude=round(min(0.95, amplitude), 4), out=out_name)


TIER = register(
    NotesTier(
        name="notes",
        title="Notes",
        methods=("paper",),
        asked=Asked(16000, 4.0, 0.1),
        contract=Contract(".WAV", 16000, 4.0),
        offline_dir="nsynth",
        loader="tasks.probesets.nsynth",
        tfds_name="nsynth",
        split_option=True,
        controls=("silence", "white_noise", "sine_at_target", "held_out_real"),
        control_seconds=4.0,
        distances_per_class=True,
        headline="pitch",
        report_section="pitch_and_fad",
        columns=("instrument_family", "instrument_source", "note_name", "qualities", "quality_descriptions"),
    )
)

PROGRAM = """import wave
import numpy as np

SR, SECONDS = 16000, 4.0
PITCH, AMPLITUDE = {pitch}, {amplitude}
t = np.arange(int(SR * SECONDS)) / SR
f0 = 440.0 * 2 ** ((PITCH - 69) / 12)
envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / 1.2)  # 10 ms attack, exponential decay
signal = AMPLITUDE * envelope * np.sin(2 * np.pi * f0 * t)
with wave.open("{out}", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(SR)
    w.writeframes((signal * 32767).astype("<i2").tobytes())
"""
