"""The shared helpers that replaced copies: tasks.stats.wilson, tasks.fileio.atomic_write, the 35 words."""

from __future__ import annotations

import threading

import pytest

from tasks.fileio import atomic_write
from tasks.stats import wilson


def test_wilson_known_values_and_no_trials():
    lo, hi = wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # textbook Wilson 95 % interval
    assert wilson(0, 0) is None  # no data, no interval (one copy said None, the other (None, None))
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0  # clamped, never a float just outside [0, 1]
    with pytest.raises(ValueError, match="k=3, n=2"):
        wilson(3, 2)


def test_atomic_write_threads_never_leave_a_partial_file_or_temp(tmp_path):
    path = tmp_path / "sub" / "record.json"
    payloads = [str(i) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(path, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_text() in payloads
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]
    atomic_write(path, b"\x00bytes", fsync=True)
    assert path.read_bytes() == b"\x00bytes"


def test_atomic_write_that_fails_at_the_rename_leaves_no_temp(tmp_path):
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a non-empty folder: the rename over it fails
    with pytest.raises(OSError):
        atomic_write(target, "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_one_list_of_the_35_words():
    from tasks.judges import speech
    from tasks.probesets import speech_commands

    assert speech.SPEECH_COMMANDS_WORDS is speech_commands.WORDS
    assert len(set(speech_commands.WORDS)) == 35


def test_bench_headline_lines_are_the_issue_s_wording():
    import re

    from tests.bench.orchestration_bench import extrapolate, headline
    from tests.bench.run_all import HEADLINES

    cli_runs = [{"n": 40, "wall_s": 50.0, "load_before": [2.1, 2.0, 1.9]},
                {"n": 120, "wall_s": 110.0, "load_before": [2.0, 2.0, 1.9]}]
    m = {"rounds": 1, "items": 24, "samples": 1, "overhead_pct_of_run": 8.4,
         "cli_runs": cli_runs, "cli_run": extrapolate(cli_runs)}
    lines = headline(m)
    assert lines[0] == "orchestration overhead: 8% (24 items)"
    # 0.75 s per item through the two runs, 20 s fixed: 20 + 0.75 * 1500 = 1145 s
    assert re.fullmatch(r"replayed 1,500-note run: 19\.1 min \(extrapolated from replayed runs of 40 and 120 "
                        r"item-samples: 20 s fixed \+ 0\.75 s per item; load \[2\.1, 2\.0, 1\.9\]\)", lines[1])
    measured = extrapolate([{"n": 1500, "wall_s": 1200.0, "load_before": [2.0]}])
    assert measured["how"] == "measured" and measured["extrapolated_1500_s"] == 1200.0
    assert all(line.startswith(HEADLINES) for line in lines)
    rounds = headline(m | {"overhead_pct_by_round": [8.4, 12.6, 3.1]})
    assert rounds[0] == "orchestration overhead: 8% (24 items; rounds 3 to 13%)"
    assert headline({"rounds": 0}) == []


def test_bench_replay_fills_the_key_a_multi_sample_run_asks_for(tmp_path, monkeypatch):
    from audioprobe.schema import ProbeItem
    from audioprobe.settings import get_settings
    from tasks import pipeline
    from tasks.generation.llm import is_answered
    from tests.bench.orchestration_bench import METHOD, MODEL, populate

    monkeypatch.setenv("AUDIOPROBE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        item = ProbeItem(id="notes/x/flute_acoustic_001-060-100", tier="notes", label="flute_acoustic",
                         dataset="x", pitch=60, note_name="C4", velocity=100, amplitude=0.787,
                         instrument_family="flute", instrument_source="acoustic")
        populate([item], samples=3, good_share=0.5)
        prompt = pipeline.render_prompt(item, METHOD)
        assert all(is_answered(prompt, MODEL, sample, samples=3) for sample in range(3))
        assert not is_answered(prompt, MODEL, 0, samples=1)  # another temperature: another key
    finally:
        get_settings.cache_clear()


def test_bench_a_b_undoes_every_server_setting_the_project_tunes():
    from audioprobe.prefect_server import SERVER_TUNING
    from tests.bench.orchestration_bench import PREFECT_DEFAULTS

    assert PREFECT_DEFAULTS.keys() == SERVER_TUNING.keys()
