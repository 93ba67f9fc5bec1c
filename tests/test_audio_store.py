"""The audio store's garbage collection: only clips a kept run record references stay, under a size cap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioprobe.schema import ExecutionResult, ItemOutcome, OutputFile, ProbeItem, RunManifest
from audioprobe.settings import get_settings
from tasks import audio_store
from tasks.records import Run, outcome_key

REPO = Path(__file__).resolve().parent.parent
ITEM = ProbeItem(id="notes/x/flute_001-060-100", tier="notes", label="flute", dataset="x")


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOPROBE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def add_run(run_id: str, created: str, shas: list[str]) -> None:
    store = Run.create(RunManifest(run_id=run_id, created=created, config_hash=run_id, models=["m"],
                                       tiers=["notes"], methods={"notes": ["paper"]}))
    for i, sha in enumerate(shas):
        clip = audio_store.store_dir() / f"{sha}.wav"
        clip.parent.mkdir(parents=True, exist_ok=True)
        clip.write_bytes(b"RIFF" + sha.encode() * 1000)
        execution = ExecutionResult(status="ok", files=[OutputFile(name="n.wav", bytes=1, sha256=sha, path=str(clip))])
        outcome = ItemOutcome(run_id=run_id, item=ITEM, model="m", method="paper", sample=i, execution=execution)
        store.save_outcome(outcome)
        assert store.load_outcome(outcome_key("m", "paper", ITEM.id, i))


def test_store_growth_is_collected(data_dir):
    add_run("old", "2026-01-01T00:00:00", ["a" * 64, "b" * 64])
    add_run("new", "2026-02-01T00:00:00", ["b" * 64, "c" * 64])
    for orphan in ("d" * 64, "e" * 64):  # executions whose runs were deleted, or that never got recorded
        (audio_store.store_dir() / f"{orphan}.wav").write_bytes(b"x" * 5000)
    names = lambda: sorted(p.stem[0] for p in audio_store.store_dir().glob("*.wav"))  # noqa: E731
    assert audio_store.collect(dry_run=True)["clips_removed"] == 2 and names() == list("abcde")
    result = audio_store.collect()
    assert result["clips_removed"] == 2 and result["bytes_freed"] == 10000 and names() == list("abc")
    result = audio_store.collect(keep_runs=1)
    assert result["runs_removed"] == ["old"] and names() == list("bc")
    assert not (get_settings().runs_dir / "old").exists() and (get_settings().runs_dir / "new").exists()
    result = audio_store.collect(max_mb=0)  # the cap: oldest first, even when referenced
    assert names() == [] and result["bytes_kept"] == 0


def test_gc_command(data_dir):
    add_run("only", "2026-03-01T00:00:00", ["f" * 64])
    (audio_store.store_dir() / ("0" * 64 + ".wav")).write_bytes(b"x")
    main = "import sys; from audioprobe.cli import main; sys.exit(main())"
    env = {**os.environ, "AUDIOPROBE_DATA_DIR": str(data_dir), "DOCKER_HOST": "unix:///nonexistent.sock"}
    proc = subprocess.run([sys.executable, "-c", main, "gc", "--keep-runs", "5"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["clips_removed"] == 1 and out["clips_kept"] == 1 and out["containers_removed"] is None


def test_an_execution_whose_clip_was_collected_runs_again(data_dir):
    from audioprobe.schema import Generation, RenderedPrompt
    from tasks.executions import ExecutionCache, execution_key

    gen = Generation(response_id="r", model="m", code="import numpy", extraction_status="single_block")
    prompt = RenderedPrompt(text="make a note", output_name="note.wav", method="paper",
                            template="notes.paper.txt", template_sha256="0" * 64)
    clip = audio_store.store_dir() / f"{'a' * 64}.wav"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"RIFF")
    cache, key = ExecutionCache(), execution_key(gen, prompt)
    cache.put(key, ExecutionResult(status="ok", files=[OutputFile(name="note.wav", bytes=4, sha256="a" * 64,
                                                                   path=str(clip))]))
    assert cache.get(key).cached and cache.get(key).files[0].path == str(clip)
    tighter = key != execution_key(gen, prompt.model_copy(update={"output_name": "other.wav"}))
    assert tighter, "what the program was asked to write is part of the key"
    audio_store.collect(max_mb=0)  # no run references the clip: collected
    assert not clip.exists() and cache.get(key) is None, "a miss, so the program runs again"
