"""Issue 21 (2): the matched-N table scores every model against one reference set per class: every
reference of the class's items, never only those of the items a model answered with valid audio."""

from __future__ import annotations

import pandas as pd

from audioprobe.schema import ExecutionResult, GateResult, ItemOutcome, ProbeItem, RunManifest
from tasks import comparisons
from tasks.records import Run
from tests.judges_audio import synth_class, write


def test_matched_n_uses_one_reference_set_for_every_model(tmp_path, monkeypatch):
    from audioprobe.settings import get_settings

    monkeypatch.setenv("AUDIOPROBE_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    try:
        manifest = RunManifest(run_id="r", created="now", config_hash="h", models=["a", "b"], tiers=["notes"],
                               methods={"notes": ["paper"]})
        store = Run.create(manifest, runs_dir=tmp_path / "runs")
        rows = []
        for i in range(4):
            refs = [str(write(tmp_path / "refs" / f"{i}-{j}.wav", synth_class("rumble", 10 * i + j))) for j in range(3)]
            item = ProbeItem(id=f"notes/n{i}", tier="notes", label="guitar_acoustic", dataset="t", pitch=60,
                             instrument_family="guitar", references=refs)
            for model in ("a", "b"):
                valid = model == "a" or i < 2  # model b made no valid clip of items 2 and 3
                clip = write(tmp_path / model / f"{i}.wav", synth_class("whistle" if model == "a" else "rumble", i))
                o = ItemOutcome(run_id="r", item=item, model=model, method="paper", execution=ExecutionResult(status="ok"),
                                gate=GateResult(ok=valid), audio_path=str(clip))
                rows.append(o)
        fad = pd.DataFrame([{"run": "r", "model": m, "method": "paper", "label": "guitar", "group": "instrument",
                             "n_gen": n, "n_ref": 12, "embedding": "logmel-stats-v1", "window_s": 1.0}
                            for m, n in (("a", 4), ("b", 2))])
        comparisons.save(store, comparisons.matched_n(store, rows, fad))
        table = comparisons.load(store).set_index("model")  # as stored, as the report reads it
    finally:
        get_settings.cache_clear()
    assert list(table["n_ref"]) == [12, 12], "the n_ref shown is the one used: every reference of the class"
    assert table.loc["a", "matched_n"] == table.loc["b", "matched_n"] == 2
    # same references, same n: the same-distribution baselines must be the same for both models
    assert table.loc["a", "fad_baseline"] == table.loc["b", "fad_baseline"]
    assert table.loc["a", "kad_baseline"] == table.loc["b", "kad_baseline"]
    assert table.loc["a", "fad"] > table.loc["b", "fad"], "whistles are further from rumbles than rumbles"


def test_retry_only_judging_stores_the_table_of_a_run_from_before(tmp_path):
    """A run without matched_n.json (made before it was stored) and with nothing to judge again: `audioprobe
    retry RUN --only judging` computes the table and rebuilds the report on it, without a flow run."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from audioprobe.schema import FADResult

    manifest = RunManifest(run_id="old", created="now", config_hash="h", models=["a", "b"], tiers=["notes"],
                           methods={"notes": ["paper"]})
    run = Run.create(manifest, runs_dir=tmp_path / "data" / "runs")
    refs = [str(write(tmp_path / "refs" / f"{j}.wav", synth_class("rumble", j))) for j in range(4)]
    for i in range(3):
        item = ProbeItem(id=f"notes/n{i}", tier="notes", label="guitar_acoustic", dataset="t", pitch=60,
                         instrument_family="guitar", references=refs)
        for model in ("a", "b"):
            sound = "whistle" if model == "a" else "rumble"
            clip = write(tmp_path / model / f"{i}.wav", synth_class(sound, i))
            run.save_outcome(ItemOutcome(run_id="old", item=item, model=model, method="paper",
                                         execution=ExecutionResult(status="ok"), gate=GateResult(ok=True),
                                         audio_path=str(clip), stage_reached="done"))
    run.save_fad([FADResult(label="guitar", fad=1.0, n_gen=3, n_ref=4, embedding="logmel-stats-v1",
                            model=m, method="paper", group="instrument", window_s=1.0) for m in ("a", "b")])
    assert comparisons.load(run) is None
    env = {**os.environ, "AUDIOPROBE_DATA_DIR": str(tmp_path / "data"),
           "AUDIOPROBE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "audioprobe", "retry", "old", "--only", "judging"], env=env,
                          capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["retried"] == 0
    table = comparisons.load(run).set_index("model")
    assert list(table["matched_n"]) == [3, 3] and list(table["n_ref"]) == [4, 4]
    assert table.loc["a", "fad"] > table.loc["b", "fad"]
    page = (run.dir / "report" / "index.html").read_text()
    assert "--only judging</code> computes it" not in page and "3 → 3" in page
