"""The run directory: the record of a benchmark run that outlives the Prefect database.

    runs/<run_id>/
      run.json                 RunManifest: what was asked, config snapshot, versions
      outcomes/<key>.json      one ItemOutcome per (model, method, item, sample), rewritten per stage
      files/<key>/             prompt.txt, response.txt, program.py, stdout.txt, stderr.txt, output.wav
      fad.json                 set-level FAD results per (model, method, class)
      items.parquet            the outcome table, derived from outcomes/ (rebuilt, never edited)
      report/                  index.html and its CSV/Parquet numbers

Writes are atomic (temp file + rename), so a run killed at any moment leaves only whole records. Every record
is read through audioprobe.stored.load (migrated on its raw dict, then validated) and written stamped with
its type's current format version (docs/records.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, PrivateAttr

from audioprobe import stored
from audioprobe.schema import FADResult, ItemOutcome, RunManifest
from audioprobe.settings import get_settings
from tasks.fileio import atomic_write  # also imported from here by callers
from tasks.outcomes import finalize

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, limit: int = 60) -> str:
    cleaned = _UNSAFE.sub("-", text).strip("-")
    if len(cleaned) <= limit:
        return cleaned
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{cleaned[: limit - 9]}-{digest}"


def outcome_key(model: str, method: str, item_id: str, sample: int, round: int = 0) -> str:
    """The one name of an outcome record (its file and its files/ folder). Round 0 keeps the single-shot
    key, so runs recorded before repair rounds read the same."""
    return f"{slug(model, 40)}__{method}__{slug(item_id, 80)}__s{sample}" + (f"__r{round}" if round else "")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Run(BaseModel):
    """One run: its directory and its manifest, opened once by the CLI and passed down to the flows and
    tasks (nothing below the CLI opens a run by id). A pydantic model so Prefect can show it as a flow
    parameter (its directory) and rebuild it on a retried flow run; the manifest is read on first use
    and kept, and every change goes through `save_manifest`, so no layer rereads run.json."""

    dir: Path
    _manifest: RunManifest | None = PrivateAttr(default=None)

    # -- creation and lookup
    @classmethod
    def create(cls, manifest: RunManifest, runs_dir: Path | None = None) -> Run:
        run = cls(dir=(runs_dir or get_settings().runs_dir) / manifest.run_id)
        run.dir.mkdir(parents=True, exist_ok=True)
        run.save_manifest(manifest)
        return run

    @classmethod
    def open(cls, run_id: str | Path, runs_dir: Path | None = None) -> Run:
        """A run by id, or by its directory: for the command line, the report and tools over many runs."""
        candidate = Path(run_id)
        run_dir = (
            candidate if (candidate / "run.json").exists() else (runs_dir or get_settings().runs_dir) / run_id
        )
        if not (run_dir / "run.json").exists():
            raise FileNotFoundError(f"no run {str(run_id)!r}: {run_dir / 'run.json'} does not exist")
        return cls(dir=run_dir)

    @property
    def run_id(self) -> str:
        return self.dir.name

    # -- manifest
    @property
    def manifest(self) -> RunManifest:
        if self._manifest is None:
            self._manifest = stored.load(RunManifest, (self.dir / "run.json").read_text())
        return self._manifest

    def save_manifest(self, manifest: RunManifest | None = None) -> None:
        """Write the manifest (this run's own, changed in place, unless another is given)."""
        if manifest is not None:
            self._manifest = manifest
        atomic_write(self.dir / "run.json", stored.dumps(self.manifest, indent=2))

    # -- outcomes
    def outcome_path(self, key: str) -> Path:
        return self.dir / "outcomes" / f"{key}.json"

    def files_dir(self, key: str) -> Path:
        return self.dir / "files" / key

    def save_outcome(self, outcome: ItemOutcome) -> Path:
        """Write the record with its derived facts (tasks.outcomes.finalize, done here if not done yet)."""
        key = outcome_key(outcome.model, outcome.method, outcome.item.id, outcome.sample, outcome.round)
        path = self.outcome_path(key)
        atomic_write(path, stored.dumps(finalize(outcome), indent=1))
        self._save_side_files(key, outcome)
        return path

    def load_outcome(self, key: str) -> ItemOutcome | None:
        path = self.outcome_path(key)
        return stored.load(ItemOutcome, path.read_text()) if path.exists() else None

    def outcomes(self, all_rounds: bool = False) -> list[ItemOutcome]:
        """The first answers (the paper's single shot); `all_rounds` adds every repair round's record."""
        folder = self.dir / "outcomes"
        if not folder.exists():
            return []
        found = [stored.load(ItemOutcome, p.read_text()) for p in sorted(folder.glob("*.json"))]
        return found if all_rounds else [o for o in found if o.round == 0]

    def _save_side_files(self, key: str, outcome: ItemOutcome) -> None:
        """Plain-text copies a person can open: prompt, response, program, logs."""
        folder = self.files_dir(key)
        texts = {
            "prompt.txt": outcome.prompt.text if outcome.prompt else None,
            "response.txt": outcome.generation.raw_text if outcome.generation else None,
            "program.py": outcome.generation.code if outcome.generation and outcome.generation.code else None,
            "stdout.txt": outcome.execution.stdout_tail if outcome.execution else None,
            "stderr.txt": outcome.execution.stderr_tail if outcome.execution else None,
        }
        for name, text in texts.items():
            if text is not None:
                atomic_write(folder / name, text)

    def keep_audio(self, key: str, source: Path) -> Path:
        """Copy a generated clip into the run (hard link when on the same filesystem)."""
        target = self.files_dir(key) / "output.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return target

    # -- set-level results
    def save_fad(self, results: Iterable[FADResult]) -> None:
        atomic_write(self.dir / "fad.json", json.dumps([stored.dump(r) for r in results], indent=1))

    def replace_fad(self, model: str, method: str, results: list[FADResult]) -> None:
        """A (model, method)'s FAD results in place of its earlier ones; the others' are kept."""
        self.save_fad([r for r in self.fad() if (r.model, r.method) != (model, method)] + results)

    def fad(self) -> list[FADResult]:
        path = self.dir / "fad.json"
        return stored.load_all(FADResult, json.loads(path.read_text())) if path.exists() else []

    def conclude(self, unfinished: str | None) -> None:
        """Finished only when every item has a final outcome; else the reason, and the same command resumes."""
        self.manifest.finished = None if unfinished else now_iso()
        self.manifest.incomplete = unfinished
        self.save_manifest()

    @property
    def report_path(self) -> Path:
        return self.dir / "report" / "index.html"


def list_runs(runs_dir: Path | None = None) -> list[RunManifest]:
    folder = runs_dir or get_settings().runs_dir
    if not folder.exists():
        return []
    manifests = [stored.load(RunManifest, p.read_text()) for p in folder.glob("*/run.json")]
    return sorted(manifests, key=lambda m: m.created)
