"""Set-up and usage mistakes, as a user makes them: each ends in one line naming the option or key and
the reason, a non-zero exit, no traceback, and no run directory. Also `--help` of every command,
`--version`, and `audioprobe runs` telling complete, incomplete and running runs apart."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioprobe.cli import build_parser


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIOPROBE_", "PREFECT_API_URL"))}
    refs = Path(os.environ.get("AUDIOPROBE_CACHE_DIR", Path.home() / ".cache" / "audioprobe"))
    # A Prefect port where nothing listens: a usage error must be refused before any server is needed.
    return clean | {
        "AUDIOPROBE_DATA_DIR": str(tmp_path / "data"),
        "AUDIOPROBE_CACHE_DIR": str(refs),
        "AUDIOPROBE_PREFECT_PORT": "9",
    }


def audioprobe(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "audioprobe", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))


def test_every_command_has_help_and_every_option_a_text():
    found = list(commands(build_parser()))
    assert ("judge", "distance") in found and ("serve",) in found and len(found) > 25
    for command in found:
        proc = subprocess.run(
            [sys.executable, "-m", "audioprobe", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0 and "usage:" in proc.stdout and not proc.stderr, (command, proc.stderr)
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert action.help, f"{parser.prog} {action.option_strings[0]} has no help text"


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_version():
    proc = subprocess.run([sys.executable, "-m", "audioprobe", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("audioprobe ")


BAD_INPUTS = [
    (("run", "--limit", "-3"), "--limit: must be at least 1, got -3"),
    (("run", "--limit", "0"), "--limit: must be at least 1, got 0"),
    (("run", "--limit", "two"), "'two' is not a whole number"),
    (("run", "--samples", "0"), "--samples: must be at least 1"),
    (("run", "--repair-rounds", "-1"), "--repair-rounds: must be 0 or more, got -1"),
    (
        ("run", "--method", "detaild"),
        "unknown --method for tier(s) notes, environmental, speech: 'detaild'; "
        "valid: detailed, detailed_description, paper",
    ),
    (
        ("run", "--tier", "notes", "--method", "detailed"),
        "unknown --method for tier(s) notes: 'detailed'; valid: paper",
    ),
    (("run", "--tier", "note"), "invalid choice: 'note'"),
    (("run", "--dataset-root", "/no/such/folder"), "--dataset-root /no/such/folder: no such folder"),
    (("run", "--split", "dev"), "invalid choice: 'dev'"),
    (("retry", "no-such-run"), "no run 'no-such-run'"),
    (("retry", "x", "--only", "generating"), "invalid choice: 'generating'"),
    (("runs", "--status", "done"), "invalid choice: 'done'"),
    (("report",), "name a run"),
    (("serve", "--timezone", "Mars/Olympus"), "not an IANA time zone"),
    (("serve", "--limit", "0"), "--limit: must be at least 1"),
]


@pytest.mark.parametrize("args, reason", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_leaves_nothing(env, args, reason):
    proc = audioprobe(env, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not proc.stdout
    assert not (Path(env["AUDIOPROBE_DATA_DIR"]) / "runs").exists(), "no run directory is left"


def test_a_dataset_root_without_a_tier_s_folder_is_named(env, tmp_path):
    (tmp_path / "ds" / "nsynth").mkdir(parents=True)
    proc = audioprobe(
        env, "run", "--dataset-root", str(tmp_path / "ds"), "--tier", "notes", "--tier", "speech"
    )
    assert proc.returncode == 2 and "no speech_commands/ folder for the speech tier" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_retry_statuses_are_checked_against_the_names_a_record_can_carry(env, tmp_path):
    from audioprobe.schema import RunManifest
    from tasks.records import Run

    run = Run.create(
        RunManifest(
            run_id="r1",
            created="2026-01-01T00:00:00+00:00",
            config_hash="x",
            models=["local"],
            tiers=["notes"],
            methods={"notes": ["paper"]},
        ),
        runs_dir=Path(env["AUDIOPROBE_DATA_DIR"]) / "runs",
    )
    for bad in ("auht", "timeout,memroy"):
        proc = audioprobe(env, "retry", run.run_id, "--status", bad)
        assert proc.returncode == 2 and "unknown --status" in proc.stderr and "valid:" in proc.stderr
        assert "timeout" in proc.stderr.split("valid:")[1] and "auth" in proc.stderr.split("valid:")[1]
    proc = audioprobe(env, "retry", run.run_id, "--status", "auth")
    assert proc.returncode == 0 and "retrying 0" in proc.stderr, "a model error name is a valid status"


CONFIGS = [
    ("sandbox_concurency = 3\n", "unknown key 'sandbox_concurency' (did you mean 'sandbox_concurrency'?)"),
    (
        '[models."openai/gpt-4o"]\ntemprature = 0.3\n',
        "unknown key 'models.openai/gpt-4o.temprature' (did you mean 'temperature'?)",
    ),
    ("[limits]\ntimeout = 30\n", "unknown key 'limits.timeout' (did you mean 'timeout_s'?)"),
    ("sandbox_concurrency = 'two'\n", "sandbox_concurrency"),
    ("a = 1\nb = \n", "not valid TOML: Invalid value (at line 2, column 5)"),
]


@pytest.mark.parametrize("text, reason", CONFIGS, ids=[r.split(" (")[0][:40] for _, r in CONFIGS])
@pytest.mark.parametrize("command", [("runs",), ("run", "--tier", "notes")])
def test_a_config_mistake_is_named_on_every_command(env, tmp_path, text, reason, command):
    config = tmp_path / "audioprobe.toml"
    config.write_text(text)
    proc = audioprobe(env | {"AUDIOPROBE_CONFIG": str(config)}, *command)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"audioprobe: config {config}") and reason in line, line


def test_a_misspelt_setting_variable_is_named(env):
    proc = audioprobe(env | {"AUDIOPROBE_SANDBOX_CONCURENCY": "3"}, "runs")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "audioprobe: environment variable AUDIOPROBE_SANDBOX_CONCURENCY: "
        "'sandbox_concurency' is not a setting (did you mean 'sandbox_concurrency'?)"
    )


def test_runs_shows_each_run_s_status_and_filters_by_it(env):
    from audioprobe.schema import RunManifest
    from tasks.records import Run

    runs_dir = Path(env["AUDIOPROBE_DATA_DIR"]) / "runs"

    def make(run_id: str, **fields) -> Run:
        return Run.create(
            RunManifest(
                run_id=run_id,
                created=f"2026-01-01T00:00:0{run_id[-1]}+00:00",
                config_hash="x",
                models=["local"],
                tiers=["notes"],
                methods={"notes": ["paper"]},
                **fields,
            ),
            runs_dir=runs_dir,
        )

    make("done1", finished="2026-01-01T01:00:00+00:00")
    make("open2", incomplete="1 of 2 items not done; model 'x' unavailable")
    make("kill3")
    busy = make("busy4")
    holder = subprocess.Popen(["flock", str(busy.dir / ".lock"), "sleep", "60"])  # a client holds the lock
    try:
        import time

        time.sleep(0.5)
        rows = [json.loads(line) for line in audioprobe(env, "runs").stdout.splitlines()]
        status = {r["run_id"]: (r["status"], r["reason"]) for r in rows}
        assert status["done1"] == ("complete", None)
        assert status["open2"] == ("incomplete", "1 of 2 items not done; model 'x' unavailable")
        assert status["kill3"][0] == "incomplete" and "the same command resumes it" in status["kill3"][1]
        assert status["busy4"] == ("running", None)
        running = [
            json.loads(line)["run_id"]
            for line in audioprobe(env, "runs", "--status", "running").stdout.splitlines()
        ]
        assert running == ["busy4"]
    finally:
        holder.kill()
