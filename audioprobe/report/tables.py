"""From run records to the report's numbers: a pure function of Runs, returning pandas tables.

Every count is derived from the ItemOutcome records themselves (generation, execution, gate,
judgements) and FADResults, so a report can be rebuilt from a run directory at any time. Every rate
carries its N and a Wilson 95% interval; every judged number names the judge (and version) that made it.

The tables of each report section live in audioprobe/report/sections/<section>.py; this module assembles
them (build_tables) and re-exports the names other modules use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from audioprobe.report.sections import generic, protocols
from audioprobe.report.sections.common import (
    GROUP,
    Row,
    distances_per_class,
    frame,
    resolve_audio,
    tier_names,
    tiers_in,
    wilson,
)
from audioprobe.report.sections.distances import per_note, stored_matched_n
from audioprobe.report.sections.environmental import environmental
from audioprobe.report.sections.human_calibration import banded, load, thresholds_table
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
    tiers: list[str] = field(default_factory=list)  # the sections' order (tasks.tiers' registry)
    calibration: dict | None = None  # the listening study's fits (listening/calibration.json), if any
    missing: dict[str, list[str]] = field(default_factory=dict)  # a stored table -> runs without it

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def build_tables(run: Run, compare: list[Run] | None = None) -> ReportTables:
    runs = [run] + list(compare or [])
    manifests = [r.manifest for r in runs]
    # One item, one vote: sections 1-7 count sample 0's first answer of each item; the other samples are
    # section 8's (pass@k, with intervals over items). Per-note scores of other samples are left out too.
    every_round = {r.run_id: r.outcomes(all_rounds=True) for r in runs}  # read once: 5,800 files a run
    every = [Row(r.run_id, r, o) for r in runs for o in every_round[r.run_id] if o.round == 0]
    rows = [r for r in every if r.outcome.sample == 0]
    families = {
        r.outcome.item.instrument_family
        for r in rows
        if distances_per_class(r.outcome.item.tier) and r.outcome.item.instrument_family
    }
    rt = ReportTables(runs=manifests, rows=rows, tiers=tier_names([t for m in manifests for t in m.tiers]))
    t = rt.tables
    t["overview"] = overview(rows)
    t["failures"], t["missing_modules"], t["failure_details"] = failures(rows)
    t["fad"] = fad_table(runs, manifests)
    t["notes"] = per_note(runs, every, families)
    t["notes_similarity"] = notes_similarity(t["notes"])
    t["matched_n"], missing = stored_matched_n(runs)
    if missing:
        rt.missing["matched_n"] = missing
    t["pitch"] = pitch(rows)
    t["environmental_table1"], t["confidence_histogram"], t["confidence_stats"] = environmental(rows)
    t["speech"], t["speech_text"] = speech(rows)
    t["reference_point_clips"] = reference_point_clips(runs)
    t["reference_points"] = reference_points(t["reference_point_clips"])
    t["empirical_chance"] = empirical_chance(runs)
    t["pitch"] = with_noise_floor(t["pitch"], t["reference_points"])
    t["speech"] = with_empirical_chance(t["speech"], t["empirical_chance"], tiers_in("spoken_words"))
    t["environmental_table1"] = with_empirical_chance(
        t["environmental_table1"], t["empirical_chance"], tiers_in("table1")
    )
    t["items"] = items(rows)
    rt.calibration = load(run.dir)
    t["human_calibration"] = thresholds_table(run.dir)
    fits = rt.calibration and [f for f in rt.calibration["fits"] if "thresholds" in f]
    t["human_calibration_bands"] = banded(run.dir, rt.calibration) if fits else pd.DataFrame()
    t["judgements"], t["verdicts"] = generic.judgements(rows), generic.verdicts(rows)
    t["usage"] = usage(rows)
    t["judges"], t["prompts"], t["versions"] = provenance(rows, manifests, t["fad"])
    t["sandbox_packages"] = sandbox_packages()
    t.update(protocols.build(runs, every_round))  # section 8: samples, repair rounds, paired comparisons
    t["skipped"] = frame(
        [
            {"run": m.run_id, "key": s.key, "tier": s.tier, "reason": s.reason}
            for m in manifests
            for s in m.skipped
        ],
        ["run", "key", "tier", "reason"],
    )
    return rt
