"""Stored records change (audioprobe/stored.py): runs written by earlier versions of the code load with today's,
and a record is migrated on its raw dict before it is validated.

tests/fixtures/runs/<format>-<commit>/<run_id>/ are run directories written by the code at <commit>
(tests/fixtures/runs/README.md says how); audio is left out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from audioprobe import stored
from audioprobe.schema import (
    FADResult,
    ItemOutcome,
    MatchedNTable,
    Record,
    ReferencePoint,
    RunItems,
    RunManifest,
)
from tasks.records import Run, outcome_key

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
RUN_DIRS = sorted(p.parent for p in FIXTURES.glob("*/*/run.json"))
STORED = (ItemOutcome, RunManifest, FADResult, ReferencePoint, RunItems, MatchedNTable)
DERIVED = {"failure_detail", "row", "format_version"}  # computed when written; absent from format 1


def raw(path: Path):
    return json.loads(path.read_text())


def kept(written, loaded, path: str = "") -> list[str]:
    """Where `loaded` (a record dumped) lost or changed a value of `written` (as stored), nested records
    included; a field added since is only in `loaded`, with its default."""
    if isinstance(written, dict) and isinstance(loaded, dict):
        return [p for k, v in written.items() for p in kept(v, loaded.get(k, "<dropped>"), f"{path}.{k}")]
    if isinstance(written, list) and isinstance(loaded, list) and len(written) == len(loaded):
        return [p for i, (w, x) in enumerate(zip(written, loaded)) for p in kept(w, x, f"{path}[{i}]")]
    return [] if written == loaded else [path]


def survives(record, written: dict, derived=frozenset({"format_version"})) -> None:
    written = {k: v for k, v in written.items() if k not in derived}
    assert kept(written, record.model_dump(mode="json")) == []


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=lambda p: p.parent.name)
def test_every_field_of_an_old_run_survives_loading(run_dir):
    run = Run(dir=run_dir)
    manifest = run.manifest
    assert manifest.format_version == stored.current(RunManifest)
    survives(manifest, raw(run_dir / "run.json"))

    outcomes = run.outcomes(all_rounds=True)
    files = sorted((run_dir / "outcomes").glob("*.json"))
    assert len(outcomes) == len(files) == 4 and len(run.outcomes()) == 3
    for outcome, path in zip(outcomes, files, strict=True):
        assert (
            outcome_key(outcome.model, outcome.method, outcome.item.id, outcome.sample, outcome.round)
            == path.stem
        )
        survives(outcome, raw(path), DERIVED)
        assert outcome.format_version == stored.current(ItemOutcome)

    fad, written = run.fad(), raw(run_dir / "fad.json")
    assert len(fad) == len(written) == 2
    for record, stored_dict in zip(fad, written, strict=True):
        survives(record, stored_dict)
    written = raw(run_dir / "items-notes.json")
    assert isinstance(written, list), "format 1 of the items file: a bare list"
    items = stored.load(RunItems, written)
    assert items.format_version == stored.current(RunItems) == 2 and len(items.items) == len(written) >= 1
    for record, stored_dict in zip(items.items, written, strict=True):
        survives(record, stored_dict)
    points = [p for tier in raw(run_dir / "reference_points.json").values() for p in tier]
    assert len(points) >= 8
    for record, stored_dict in zip(stored.load_all(ReferencePoint, points), points, strict=True):
        survives(record, stored_dict)


def test_outcomes_of_the_first_format_get_the_derived_facts_the_second_format_stored():
    """The v1 run's records carry no failure detail and no row; loaded, they have the ones the v2 writer stored
    for the same records (all but the run id, where the clip was kept and how long the program ran)."""
    v1, v2 = (Run(dir=next(p for p in RUN_DIRS if p.parent.name.startswith(v))) for v in ("v1", "v2"))
    for path in sorted((v1.dir / "outcomes").glob("*.json")):
        assert not DERIVED & raw(path).keys(), "the fixture is of the first format"
    first, second = v1.outcomes(all_rounds=True), v2.outcomes(all_rounds=True)
    by_key = {(o.sample, o.round): o for o in second}
    details = {}
    for old in first:
        new = by_key[(old.sample, old.round)]
        assert old.failure == new.failure and old.stage_reached == new.stage_reached
        assert old.failure_detail == new.failure_detail
        differ = {k for k in old.row if old.row[k] != new.row.get(k)}
        assert differ <= {"run_id", "audio_path", "wall_s"}, differ  # the run, where its clip is, a timing
        details[(old.sample, old.round)] = (old.row["status"], old.failure_detail)
    assert details == {
        (0, 0): ("ok", ""),
        (1, 0): ("missing_module", "gtts"),
        (1, 1): ("timeout", "60.0 s"),
        (2, 0): ("no_code", "refusal"),
    }


def test_derived_fields_are_kept_as_written_from_the_second_format_on(tmp_path):
    """Computed once, when written: a current record is not re-derived when read."""
    source = next(p for p in RUN_DIRS if p.parent.name.startswith("v2"))
    path = next((source / "outcomes").glob("*__s1.json"))
    record = raw(path)
    record["failure_detail"] = "as the writer said"
    assert stored.load(ItemOutcome, record).failure_detail == "as the writer said"
    record["format_version"] = 1
    assert stored.load(ItemOutcome, record).failure_detail == "gtts", "format 1 records are derived anew"


def test_writing_stamps_the_current_format(tmp_path):
    run = Run(
        dir=shutil.copytree(next(p for p in RUN_DIRS if p.parent.name.startswith("v1")), tmp_path / "run")
    )
    outcome = run.outcomes()[0]
    run.save_outcome(outcome)
    run.save_manifest()
    run.save_fad(run.fad())
    assert raw(run.outcome_path(outcome_key(outcome.model, outcome.method, outcome.item.id, 0)))[
        "format_version"
    ] == stored.current(ItemOutcome)
    assert raw(run.dir / "run.json")["format_version"] == stored.current(RunManifest)
    assert {r["format_version"] for r in raw(run.dir / "fad.json")} == {stored.current(FADResult)}
    assert Run(dir=run.dir).outcomes()[0] == outcome


class Renamed(Record):
    """A stored type whose version 2 renamed `secs` to `duration_s` and dropped `legacy`."""

    duration_s: float
    format_version: int = 2


@stored.migration(Renamed, 1)
def _renamed_1_to_2(raw: dict) -> dict:
    raw = {k: v for k, v in raw.items() if k != "legacy"}
    raw["duration_s"] = raw.pop("secs")
    return raw


def test_a_renamed_field_is_migrated_before_validation():
    old = {"secs": 1.5, "legacy": "x"}  # format 1: no version field
    with pytest.raises(ValidationError):
        Renamed.model_validate(old)  # validating first cannot work: extra fields are forbidden
    record = stored.load(Renamed, old)
    assert record == Renamed(duration_s=1.5) and record.format_version == 2
    assert old == {"secs": 1.5, "legacy": "x"}, "the caller's dict is left as it was"
    assert stored.load(Renamed, json.dumps({"duration_s": 2.0, "format_version": 2})).duration_s == 2.0
    with pytest.raises(stored.FormatError, match="newer than this code reads"):
        stored.load(Renamed, {"duration_s": 2.0, "format_version": 3})


def test_every_stored_type_has_a_migration_for_every_version_change():
    from pydantic import BaseModel

    from audioprobe.listening.ratings import BlindLabel, Rating
    from audioprobe.listening.trials import Trial

    def subclasses(cls):
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    ours = ("audioprobe.", "tasks.", "flows.")
    carriers = {
        c
        for c in subclasses(BaseModel)
        if c.__module__.startswith(ours) and "format_version" in c.model_fields
    }
    assert carriers >= {*STORED, Rating, BlindLabel, Trial}
    for cls in carriers:
        assert stored.missing_steps(cls) == [], cls.__name__

    class Skipped(Record):
        format_version: int = 3

    stored.migration(Skipped, 1)(lambda r: r)
    assert stored.missing_steps(Skipped) == [2]
    with pytest.raises(stored.FormatError, match="no migration of|no migration from format 2"):
        stored.load(Skipped, {})
