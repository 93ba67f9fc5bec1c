"""The content-addressed audio store (data_dir/audio/<sha256>.wav) and its garbage collection.

`execute` moves each accepted output here; every run keeps its own hard link of the clips it used
(Run.keep_audio), so the store is only what a cached execution points at. `collect` keeps the
clips referenced by the records of the runs kept, removes the rest and the temporary folders of
executions that died, then removes the oldest clips until the store is under its size cap.
`keep_runs=N` first removes all but the N newest runs (their folders: records and clips).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from audioprobe.settings import get_settings
from tasks.records import Run, list_runs

TMP_MAX_AGE_S = 6 * 3600  # an execution's temporary folder older than this belongs to a dead process


def store_dir() -> Path:
    return get_settings().data_dir / "audio"


def referenced_clips(runs: list[Run]) -> set[str]:
    """sha256 of every clip an outcome record of these runs points at."""
    shas = set()
    for store in runs:
        for outcome in store.outcomes():
            for output in outcome.execution.files if outcome.execution else []:
                shas.add(output.sha256)
    return shas


def collect(keep_runs: int | None = None, max_mb: int | None = None, dry_run: bool = False) -> dict:
    """Remove unreferenced clips (and old runs when keep_runs is set); returns what was (or would be) removed."""
    settings = get_settings()
    max_mb = settings.audio_store_max_mb if max_mb is None else max_mb
    manifests = list_runs()
    stale_runs = manifests[: max(0, len(manifests) - keep_runs)] if keep_runs is not None else []
    kept = [Run.open(m.run_id) for m in manifests if m not in stale_runs]
    removed_runs = []
    for manifest in stale_runs:
        removed_runs.append(manifest.run_id)
        if not dry_run:
            shutil.rmtree(settings.runs_dir / manifest.run_id)
    folder = store_dir()
    keep = referenced_clips(kept)
    removed, freed = [], 0
    clips = sorted(folder.glob("*.wav"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
    survivors = []
    for clip in clips:
        if clip.stem in keep:
            survivors.append(clip)
            continue
        removed.append(clip.name)
        freed += clip.stat().st_size
        if not dry_run:
            clip.unlink()
    total = sum(p.stat().st_size for p in survivors)
    for clip in survivors:  # oldest first; runs keep their own links, only cache hits lose the file
        if total <= max_mb * 1024 * 1024:
            break
        size = clip.stat().st_size
        removed.append(clip.name)
        freed += size
        total -= size
        if not dry_run:
            clip.unlink()
    tmp_dirs = [d for d in folder.glob("tmp*") if d.is_dir() and time.time() - d.stat().st_mtime > TMP_MAX_AGE_S]
    for d in tmp_dirs if not dry_run else []:
        shutil.rmtree(d, ignore_errors=True)
    return {
        "dry_run": dry_run,
        "runs_removed": removed_runs,
        "runs_kept": len(kept),
        "clips_removed": len(removed),
        "bytes_freed": freed,
        "clips_kept": len(clips) - len(removed),
        "bytes_kept": total,
        "tmp_dirs_removed": len(tmp_dirs),
    }
