"""What every report section shares: the Row, Wilson intervals, and small helpers over records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audioprobe.schema import ItemOutcome
from tasks import stats
from tasks.records import Run, outcome_key
from tasks.tiers import UnknownTier, all_tiers, get_tier

GROUP = ["run", "model", "tier", "method"]


# A forced choice's accuracy table: over judged clips, and over the WAVs produced (the paper's denominator)
ACCURACY_COLUMNS = [
    "run",
    "model",
    "method",
    "items",
    "wav_produced",
    "valid_audio",
    "judged",
    "correct",
    "accuracy_rate",
    "accuracy_ci_lo",
    "accuracy_ci_hi",
    "accuracy_of_wavs_rate",
    "accuracy_of_wavs_ci_lo",
    "accuracy_of_wavs_ci_hi",
]


@dataclass(eq=False)  # identity: comparing whole outcomes field by field is slow and never wanted
class Row:
    """One outcome with where it came from: its run's id, its Run, and its key."""

    run_id: str
    run: Run
    outcome: ItemOutcome

    @property
    def key(self) -> str:
        o = self.outcome
        return outcome_key(o.model, o.method, o.item.id, o.sample)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """tasks.stats.wilson as a table's two columns: (None, None) where there is nothing to count."""
    return stats.wilson(k, n, z) or (None, None)


def stages(o: ItemOutcome) -> tuple[bool, bool, bool]:
    g = o.generation
    generated = bool(g and g.code and not g.error and g.extraction_status != "llm_error")
    executed = bool(o.execution and o.execution.status == "ok")
    valid = bool(o.gate and o.gate.ok)
    return generated, executed, valid


def judged_correct(o: ItemOutcome) -> bool | None:
    """ "Judged correct", one definition for every table: False without valid audio or when a judge said
    wrong; None when the audio is valid but no judge decided (a pitch outside the tracker's range): such
    an item is left out of the denominator, as the pitch table leaves it, never counted as a failure."""
    if not stages(o)[2] or o.failure is not None:
        return False
    verdicts = [j.correct for j in o.judgements if j.correct is not None]
    if not verdicts:
        return None
    return any(verdicts)


def wav_produced(o: ItemOutcome) -> bool:
    """The program wrote a WAV (gated or not): the paper's denominator ("generated .WAV files")."""
    e = o.execution
    return o.gate is not None or bool(e and e.status == "ok" and e.files)


def judgements_of(o: ItemOutcome, prefix: str):
    return [j for j in o.judgements if j.judge.startswith(prefix) and j.error is None]


def judge_names(judgements) -> str:
    return ", ".join(sorted({f"{j.judge} {j.judge_version}".strip() for j in judgements}))


def num(x) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=columns) if records else pd.DataFrame(columns=columns)


def rate_cols(record: dict, k: int, n: int, name: str) -> None:
    record[f"{name}_rate"] = k / n if n else None
    lo, hi = wilson(k, n)
    record[f"{name}_ci_lo"], record[f"{name}_ci_hi"] = lo, hi


def resolve_audio(row: Row) -> Path | None:
    """The generated clip: the recorded path (absolute or run-relative), else files/<key>/output.wav."""
    candidates = []
    if row.outcome.audio_path:
        p = Path(row.outcome.audio_path)
        candidates += [p] if p.is_absolute() else [row.run.dir / p, p]
    candidates.append(row.run.files_dir(row.key) / "output.wav")
    return next((c for c in candidates if c.is_file()), None)


def tier_names(tiers_run: list[str]) -> list[str]:
    """The report's tiers in the registry's order: the paper's always (their sections say when a run has
    none), any other tier a run has; a tier no module registers (an old run's) last."""
    present = set(tiers_run)
    names = [t.name for t in all_tiers() if t.paper or t.name in present]
    return names + sorted(present - set(names))


def section_of(tier: str) -> str:
    """The report section a tier declares (Tier.report_section); "" for the generic one or a tier no
    module registers (a run of a tier since removed)."""
    try:
        return get_tier(tier).report_section
    except UnknownTier:
        return ""


def in_section(tier: str, section: str) -> bool:
    return section_of(tier) == section


def tiers_in(section: str) -> list[str]:
    return [t.name for t in all_tiers() if t.report_section == section]


def distances_per_class(tier: str) -> bool:
    try:
        return get_tier(tier).distances_per_class
    except UnknownTier:
        return False


def tier_title(name: str) -> str:
    try:
        return get_tier(name).title
    except UnknownTier:
        return name
