"""From run records to the report's numbers: a pure function of Runs, returning pandas tables.

Every count is derived from the ItemOutcome records themselves (generation, execution, gate,
judgements) and FADResults, so a report can be rebuilt from a run directory at any time. Every rate
carries its N and a Wilson 95% interval; every judged number names the judge (and version) that made it.

The tables of each report section live in audioprobe/report/sections/<section>.py; this module assembles
them (build_tables) and re-exports the names other modules use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from audioprobe.report import protocols
from audioprobe.report.human_calibration import thresholds_table
from audioprobe.report.sections.common import GROUP, Row, frame, wilson
from audioprobe.report.sections.distances import matched_n, per_note
from audioprobe.report.sections.environmental import environmental
from audioprobe.report.sections.notes import (
    PITCH_TOLERANCE_CENTS,
    fad_table,
    instrument_rows,
    notes_similarity,
    pitch,
)
from audioprobe.report.sections.overview import KIND_LABELS, KINDS, failures, overview, stored_failure
from audioprobe.report.sections.provenance import items, provenance, sandbox_packages, usage
from audioprobe.report.sections.reference_points import (
    empirical_chance,
    reference_point_clips,
    reference_points,
    with_empirical_chance,
    with_noise_floor,
)
from audioprobe.report.sections.speech import speech
from audioprobe.schema import RunManifest
from tasks.records import Run

__all__ = [
    "GROUP",
    "KINDS",
    "KIND_LABELS",
    "PITCH_TOLERANCE_CENTS",
    "ReportTables",
    "Row",
    "build_tables",
    "stored_failure",
    "instrument_rows",
    "resolve_audio",
    "wilson",
]


@dataclass
class ReportTables:
    runs: list[RunManifest]
    rows: list[Row]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def build_tables(store: Run, compare: list[Run] | None = None) -> ReportTables:
    stores = [store] + list(compare or [])
    manifests = [s.manifest for s in stores]
    # One item, one vote: sections 1-7 count sample 0's first answer of each item; the other samples are
    # section 8's (pass@k, with intervals over items). Per-note scores of other samples are left out too.
    every = [Row(s.run_id, s, o) for s in stores for o in s.outcomes()]
    rows = [r for r in every if r.outcome.sample == 0]
    families = {
        r.outcome.item.instrument_family
        for r in rows
        if r.outcome.item.tier == "notes" and r.outcome.item.instrument_family
    }
    rt = ReportTables(runs=manifests, rows=rows)
    t = rt.tables
    t["overview"] = overview(rows)
    t["failures"], t["missing_modules"], t["failure_details"] = failures(rows)
    t["fad"] = fad_table(stores, manifests)
    t["notes"] = per_note(stores, every, families)
    t["notes_similarity"] = notes_similarity(t["notes"])
    t["matched_n"] = matched_n(stores, manifests, rows, t["fad"], families)
    t["pitch"] = pitch(rows)
    t["environmental_table1"], t["confidence_histogram"], t["confidence_stats"] = environmental(rows)
    t["speech"], t["speech_text"] = speech(rows)
    t["reference_point_clips"] = reference_point_clips(stores)
    t["reference_points"] = reference_points(t["reference_point_clips"])
    t["empirical_chance"] = empirical_chance(stores)
    t["pitch"] = with_noise_floor(t["pitch"], t["reference_points"])
    t["speech"] = with_empirical_chance(t["speech"], t["empirical_chance"], "speech")
    t["environmental_table1"] = with_empirical_chance(t["environmental_table1"], t["empirical_chance"], "environmental")
    t["items"] = items(rows)
    t["human_calibration"] = thresholds_table(store.dir)
    t["usage"] = usage(rows)
    t["judges"], t["prompts"], t["versions"] = provenance(rows, manifests, t["fad"])
    t["sandbox_packages"] = sandbox_packages()
    t.update(protocols.build(stores))  # section 8: samples, repair rounds, paired comparisons
    t["skipped"] = frame(
        [
            {"run": m.run_id, "key": s.key, "tier": s.tier, "reason": s.reason}
            for m in manifests
            for s in m.skipped
        ],
        ["run", "key", "tier", "reason"],
    )
    return rt


def resolve_audio(row: Row) -> Path | None:
    """The generated clip: the recorded path (absolute or run-relative), else files/<key>/output.wav."""
    candidates = []
    if row.outcome.audio_path:
        p = Path(row.outcome.audio_path)
        candidates += [p] if p.is_absolute() else [row.store.dir / p, p]
    candidates.append(row.store.files_dir(row.key) / "output.wav")
    return next((c for c in candidates if c.is_file()), None)
