"""The listening study on a real run directory: real WAVs, the real server on 127.0.0.1, Debian's chromium.

`python -m tests.test_listening DIR` builds the fixture run under DIR, serves it, and writes the page's
screenshot to docs/listening.png.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from audioprobe.listening import calibrate as cal
from audioprobe.listening import trials as trial_mod
from audioprobe.listening.ratings import RatingLog, read_lines
from audioprobe.listening.server import MAX_BODY, serve
from audioprobe.schema import ItemOutcome, Judgement, RunManifest
from tasks.records import Run, outcome_key
from tests.browser import launch as launch_browser
from tests.test_report import gate, gen, item, noise_burst, note, ok_exec, prompt, write_wav

RUN_ID = "20261202-listening"
MODEL_A, MODEL_B = "local/qwen2.5-coder-1.5b", "openai/gpt-4o"
PORTS = range(8470, 8480)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 8470-8479")


def make_study_run(root: Path) -> Run:
    """12 notes from clean to all noise (so per-note distances spread), 3 sounds and a word, 5-way judged."""
    manifest = RunManifest(
        run_id=RUN_ID,
        created="2026-12-02T13:00:00+00:00",
        config_hash="beef",
        models=[MODEL_A, MODEL_B],
        tiers=["notes", "environmental", "speech"],
        methods={"notes": ["paper"], "environmental": ["detailed"], "speech": ["paper"]},
    )
    store = Run.create(manifest, runs_dir=root / "runs")
    refs = root / "refs"

    def save(o: ItemOutcome, samples: np.ndarray) -> None:
        key = outcome_key(o.model, o.method, o.item.id, o.sample)
        sha = write_wav(store.files_dir(key) / "output.wav", samples)
        o.audio_path, o.execution, o.gate, o.stage_reached = (
            f"files/{key}/output.wav",
            ok_exec(sha),
            gate(samples, sha),
            "done",
        )
        store.save_outcome(o)

    ref_note = refs / "notes" / "kb-60.wav"
    write_wav(ref_note, note(60, harmonics=8))
    for i, mix in enumerate(np.linspace(0, 1, 12)):
        model = (MODEL_A, MODEL_B)[i % 2]
        clean = note(60, harmonics=8)
        noisy = ((1 - mix) * clean + mix * 0.5 * noise_burst(4.0, seed=i)).astype(np.float32)
        it = item(
            "notes", f"kb-{i:02d}", "keyboard_acoustic", ref_note, pitch=60, instrument_family="keyboard"
        )
        save(
            ItemOutcome(
                run_id=RUN_ID,
                item=it,
                model=model,
                method="paper",
                prompt=prompt("notes", "paper", "C4"),
                generation=gen(model),
            ),
            noisy,
        )
    classes = ["Bell", "Dog", "Knock", "Rain", "Wind"]
    for k, cls in enumerate(classes[:3]):
        ref = refs / "env" / f"{cls}.wav"
        write_wav(ref, noise_burst(seed=10 + k))
        it = item("environmental", f"env-{cls}", cls, ref)
        o = ItemOutcome(
            run_id=RUN_ID,
            item=it,
            model=MODEL_B,
            method="detailed",
            prompt=prompt("environmental", "detailed", cls),
            generation=gen(MODEL_B),
        )
        o.judgements.append(
            Judgement(
                judge="classify/offline-audio-knn",
                judge_version="1",
                audio_sha256="y",
                correct=k != 2,
                values={"choices": classes, "chosen": cls if k != 2 else "Rain"},
            )
        )
        save(o, noise_burst(seed=20 + k))
    ref_word = refs / "speech" / "yes.wav"
    write_wav(ref_word, noise_burst(1.0, seed=30))
    o = ItemOutcome(
        run_id=RUN_ID,
        item=item("speech", "word-yes", "yes", ref_word, display_name="yes"),
        model=MODEL_A,
        method="paper",
        prompt=prompt("speech", "paper", "yes"),
        generation=gen(MODEL_A),
    )
    o.judgements.append(
        Judgement(
            judge="speech/pocketsphinx",
            judge_version="5",
            audio_sha256="z",
            correct=False,
            values={"choices": ["yes", "no", "up", "down", "left"], "chosen": "no"},
        )
    )
    save(o, noise_burst(1.0, seed=31))
    return store


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Run, list[trial_mod.Trial]]:
    """A cache dir of this module's own (embeddings), undone at the module's end: later modules and the
    processes they start must see the real cache again."""
    from audioprobe.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOPROBE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        get_settings.cache_clear()
        store = make_study_run(tmp_path_factory.mktemp("listening"))
        yield store, trial_mod.prepare(store, n=16)
    get_settings.cache_clear()


@pytest.fixture()
def server(study):
    store, trials = study
    srv, thread = serve(store, trials, port=free_port())
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def request(srv, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def rate(srv, **answer):
    """Post an answer as the page does: by the trial's public id, a 5-way label posted blind first."""
    answer["trial"] = srv.public.get(answer["trial"], answer["trial"])
    trial = srv.trials.get(answer["trial"])
    if trial is not None and trial.question == "label" and answer.get("label") in trial.choices:
        blind = {k: answer[k] for k in ("rater", "trial", "label")}
        assert request(srv, "POST", "/api/label", json.dumps(blind).encode())[0] in (200, 409)
    status, body = request(srv, "POST", "/api/rate", json.dumps(answer).encode())
    return status, json.loads(body)


def answer_for(trial: trial_mod.Trial, similarity: str) -> dict:
    label = trial.label if trial.question == "label" else None
    return {"trial": trial.id, "similarity": similarity, "label": label}


# --------------------------------------------------------------------------- trials and distances


def test_distances_follow_the_noise(study):
    store, _ = study
    pool = [t for t in trial_mod.candidates(store) if t.tier == "notes"]
    mixes = [int(t.key.split("kb-")[1][:2]) for t in pool]
    distances = [
        t.distances["centroid-l2"] if "centroid-l2" in t.distances else next(iter(t.distances.values()))
        for t in pool
    ]
    assert len(pool) == 12
    rho, _ = stats.spearmanr(mixes, distances)
    assert rho > 0.8, (mixes, distances)


def test_trials_cover_every_stratum_with_repeats(study):
    store, trials = study
    firsts = [t for t in trials if t.repeat == 0]
    assert {t.stratum for t in firsts if t.tier == "notes"} == {0, 1, 2}
    assert {t.tier for t in firsts} == {"notes", "environmental", "speech"}
    repeats = [t for t in trials if t.repeat]
    assert repeats and all(t.id == f"{t.base}-r1" for t in repeats)
    order = [t.id for t in trials]
    for t in repeats:
        assert order.index(t.id) >= order.index(t.base) + 2  # never straight after its first showing
    for t in trials:  # every clip played lies inside the run; references were copied in
        assert (store.dir / t.ref_path).resolve().is_relative_to(store.dir.resolve())
        assert (store.dir / t.ref_path).is_file() and (store.dir / t.gen_path).is_file()
    env = next(t for t in trials if t.tier == "environmental").public()
    assert set(env) == {"id", "tier", "question", "choices", "class"} and env["class"] == ""
    assert trial_mod.prepare(store) == trials  # drawn once: a restart keeps every rater's place


# --------------------------------------------------------------------------- endpoints


def test_rating_round_trip_and_double_submit(server, study):
    store, trials = study
    notes = next(t for t in trials if t.question == "similarity")
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(rate(server, rater="dbl", **answer_for(notes, "moderately")))
        )
        for _ in range(8)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r[1]["status"] for r in results) == ["duplicate"] * 7 + ["saved"]
    mine = [r for r in RatingLog(store).ratings() if r.rater == "dbl"]
    assert len(mine) == 1 and mine[0].gen_sha256 == notes.gen_sha256 and mine[0].similarity == "moderately"
    status, body = rate(server, rater="dbl", **answer_for(notes, "highly"))
    assert status == 409 and "already answered" in body["error"]
    status, body = request(server, "GET", "/api/trials?rater=dbl")
    assert status == 200 and json.loads(body)["answered"] == [server.public[notes.id]]


def test_torn_line_is_skipped_and_not_glued(server, study):
    store, trials = study
    log = RatingLog(store)
    with open(log.path, "a") as fh:
        fh.write('{"rater": "crash", "trial": "0123')  # a write cut by a crash
    first = trials[0]
    assert rate(server, rater="after-crash", **answer_for(first, "not"))[0] == 200
    ratings, bad = read_lines(log.path)
    assert bad == 1 and any(r.rater == "after-crash" for r in ratings)


@pytest.mark.parametrize(
    "body, status, says",
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"rater": "x", "trial": "TRIAL", "similarity": 1}', 400, "similarity"),
        (b'{"rater": "x", "trial": "TRIAL", "similarity": "highly", "extra": 1}', 400, "extra"),
        (b'{"rater": "../../etc", "trial": "TRIAL", "similarity": "highly"}', 400, "rater id"),
        (b'{"rater": "x", "trial": "../../run.json", "similarity": "highly"}', 400, "trial id"),
        (b'{"rater": "x", "trial": "abcdefabcdef", "similarity": "highly"}', 404, "not a trial"),
        (b'{"rater": "x", "trial": "TRIAL", "similarity": "very"}', 400, "one of"),
        (b'{"rater": "x", "trial": "TRIAL", "similarity": "highly", "label": "Dog"}', 400, "asks no label"),
        (b'{"rater": "x", "trial": "TRIAL", "similarity": "highly", "elapsed_ms": -5}', 400, "elapsed_ms"),
    ],
)
def test_bad_answers_are_refused(server, study, body, status, says):
    store, trials = study
    notes = next(t for t in trials if t.question == "similarity")
    before = log_size(store)
    got, text = request(server, "POST", "/api/rate", body.replace(b"TRIAL", server.public[notes.id].encode()))
    assert got == status and says in json.loads(text)["error"], text
    assert log_size(store) == before


def log_size(store: Run) -> int:
    path = RatingLog(store).path
    return path.stat().st_size if path.exists() else 0


def test_hostile_requests_are_refused(server, study, tmp_path):
    store, trials = study
    before = log_size(store)
    five = next(t for t in trials if t.question == "label")
    ok = json.dumps({"rater": "x", **answer_for(five, "highly")}).encode()
    assert rate(server, rater="x", trial=five.id, similarity="highly", label="Not-a-choice")[0] == 400
    assert request(server, "POST", "/api/rate", ok, {"Content-Type": "text/plain"})[0] == 415
    assert request(server, "POST", "/api/rate", ok, {"Origin": "http://evil.example"})[0] == 403
    assert request(server, "POST", "/api/rate", ok, {"Host": "evil.example"})[0] == 421
    assert request(server, "POST", "/elsewhere", ok)[0] == 404
    # a huge body is refused from its Content-Length, before it is read
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/api/rate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(50 * 2**20))
    conn.endheaders()
    conn.send(b"{" * 1000)
    assert conn.getresponse().status == 413
    conn.close()
    assert request(server, "POST", "/api/rate", b" " * (MAX_BODY + 1))[0] == 413
    assert log_size(store) == before
    # nothing outside the run is served, whatever the path
    secret = (store.dir / "run.json").read_bytes()
    for path in [
        "/clip/../../run.json",
        "/clip/..%2f..%2frun.json/gen",
        f"/clip/{five.id}/../../run.json",
        "/clip/%2e%2e/gen",
        "/etc/passwd",
        "/clip//etc/passwd/gen",
        f"/clip/{five.id}/run.json",
        "/../run.json",
        "/api/trials?rater=../../x",
        "/run.json",
        "/listening/ratings.jsonl",
    ]:
        status, body = request(server, "GET", path)
        assert status in (400, 404), path
        assert secret not in body and b"RIFF" not in body, path
    assert request(server, "GET", "/", headers={"Host": "attacker.example:80"})[0] == 421
    # a clip that became a symlink out of the run is not followed
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"RIFF secret")
    victim = next(t for t in trials if t.tier == "speech")
    gen_file = store.dir / victim.gen_path
    kept = gen_file.read_bytes()
    gen_file.unlink()
    gen_file.symlink_to(outside)
    try:
        status, body = request(server, "GET", f"/clip/{server.public[victim.id]}/gen")
        assert status == 404 and b"secret" not in body
    finally:
        gen_file.unlink()
        gen_file.write_bytes(kept)
    status, body = request(server, "GET", f"/clip/{server.public[victim.id]}/gen")
    assert status == 200 and body[:4] == b"RIFF"


# --------------------------------------------------------------------------- calibration


def synthetic_ratings(d: np.ndarray, t1: float, t2: float, noise: float, rng) -> np.ndarray:
    """A rater whose latent distance is d + logistic noise, answering by the thresholds t1 < t2."""
    heard = d + rng.logistic(0, noise, size=len(d))
    return np.where(heard < t1, 0, np.where(heard < t2, 1, 2))


def test_calibration_recovers_known_thresholds():
    """Ten synthetic studies (60 clips x 3 raters, thresholds known): the truth lies in the 95% CIs."""
    inside, widths = 0, []
    for study_seed, (t1, t2) in enumerate([(8.0, 16.0), (5.0, 21.0)] * 5):
        rng = np.random.default_rng(study_seed)
        d = rng.uniform(0, 30, 60)
        y = np.stack([synthetic_ratings(d, t1, t2, 1.5, rng) for _ in range(3)], axis=1).ravel()
        fit = cal.fit_group(np.repeat(d, 3), y, np.repeat(np.arange(len(d)), 3), n_boot=100, seed=study_seed)
        for truth, t in zip((t1, t2), fit["thresholds"]):
            inside += t["ci"][0] <= truth <= t["ci"][1]
            widths.append(t["ci"][1] - t["ci"][0])
            assert abs(t["value"] - truth) < 2.0, (truth, t)
        assert np.all(np.diff(fit["curve"]["isotonic_mean_rating"]) >= 0)
        if (t1, t2) == (5.0, 21.0):  # the paper's 10 and 15 are not what these raters heard
            assert not any(t["ci"][0] <= paper <= t["ci"][1] for paper, t in zip((10, 15), fit["thresholds"]))
    assert inside >= 17, inside  # of 20; a 95% interval misses about one in twenty
    assert max(widths) < 4.0  # informative, not "anything goes"


def test_krippendorff_alpha_matches_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, gaps
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = [[v for v in col if v is not None] for col in zip(a, b, c, d)]
    assert cal.krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=1e-3)
    assert cal.krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=1e-3)
    assert cal.krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=1e-3)
    assert cal.krippendorff_alpha([[1, 1], [2, 2], [3, 3]]) == 1.0


def test_calibrate_merge_and_report(server, study, tmp_path, capsys):
    """Two synthetic raters through the real endpoint, a third merged from a file; CLI fit; report section."""
    from audioprobe.report import build_report

    store, trials = study
    firsts = {t.id: t for t in trials}
    values = [next(iter(t.distances.values())) for t in trials]
    lo, hi = min(values), max(values)
    t1, t2 = lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3
    rng = np.random.default_rng(0)
    for rater in ("ana", "ben"):
        for t in trials:
            y = synthetic_ratings(np.array([next(iter(t.distances.values()))]), t1, t2, (hi - lo) / 20, rng)[
                0
            ]
            assert rate(server, rater=rater, **answer_for(t, trial_mod.SIMILARITY[y]))[0] == 200
    other = tmp_path / "cleo.jsonl"
    lines = [
        r.model_copy(update={"rater": "cleo"}).model_dump_json()
        for r in RatingLog(store).ratings()
        if r.rater == "ana"
    ]
    forged = json.loads(lines[0]) | {"rater": "mallory", "gen_sha256": "0" * 64}
    other.write_text("\n".join(lines + [json.dumps(forged), "{torn"]) + "\n")
    from audioprobe.cli import main

    assert main(["calibrate", str(store.dir), "--merge", str(other), "--boot", "100"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["merged"] == {
        "merged": len(lines),
        "already_there": 0,
        "refused_other_clips": 1,
        "unreadable_lines": 1,
    }
    fit = next(f for f in out["fits"] if "thresholds" in f)
    assert {"ana", "ben", "cleo"} <= set(fit["raters"])
    ag = out["agreement"]
    assert ag["krippendorff_alpha_ordinal"] > 0.5 and ag["five_way"]["human_accuracy"] == 1.0
    assert ag["five_way"]["n_judged_clips"] == 4 and ag["repeat_pairs"] > 0
    assert ag["five_way"]["judge_accuracy_same_clips"] == 0.5  # Bell and Dog right, Knock and "yes" wrong
    assert set(firsts)  # every trial was rated
    html = build_report(store.dir).read_text()
    section = html[html.index("<section id=human-calibration>") :]
    section = section[: section.index("</section>")]
    assert "Krippendorff" in section and "ana, ben" in section and "data:image/png;base64," in section
    assert fit["metric"] in section and "not similar" in section
    assert (store.dir / "report" / "human_calibration.csv").read_text().count("\n") >= 3
    assert main(["calibrate", str(store.dir), "--merge", "/no/such"]) == 2
    assert "no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------- the CLI and Prefect


@pytest.mark.prefect
def test_listen_cli_serves_and_links_a_prefect_artifact(study, prefect_server):
    store, trials = study
    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AUDIOPROBE_PREFECT_API_URL": prefect_server}
    proc = subprocess.Popen(
        [sys.executable, "-m", "audioprobe", "listen", str(store.dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        started = json.loads(proc.stdout.readline())
        assert started["url"] == f"http://127.0.0.1:{port}/" and started["trials"] == len(trials)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        assert b"listening study" in conn.getresponse().read()
        key = started["prefect_artifact"]
        latest = api(prefect_server, "/artifacts/latest/filter", {"artifacts": {"key": {"any_": [key]}}})
        assert f"(http://127.0.0.1:{port}/)" in str(latest[0]["data"])  # Prefect keeps a link as markdown
    finally:
        proc.terminate()
        proc.wait(60)
    assert proc.returncode == 0, proc.stderr.read()
    latest = api(prefect_server, "/artifacts/latest/filter", {"artifacts": {"key": {"any_": [key]}}})
    assert "not served" in str(latest[0]["data"]) and "127.0.0.1" not in str(latest[0]["data"])


def api(base: str, path: str, body: dict):
    import urllib.request

    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


# --------------------------------------------------------------------------- the page in chromium


def launch(p):
    return launch_browser(p, "--autoplay-policy=no-user-gesture-required")


def answer_current(page, trials: dict[str, trial_mod.Trial], key: str) -> str:
    """Answer the trial on screen by keyboard; return its id."""
    tid = page.evaluate("cur.id")
    if trials[tid].question == "label":
        page.keyboard.press("a")
        page.wait_for_selector("#simq:not([hidden])")
    page.keyboard.press(key)
    return tid


def moved_on(page, tid: str) -> None:
    # a function, not an expression: the page's CSP forbids eval, which string predicates need
    page.wait_for_function("tid => !cur || cur.id !== tid", arg=tid)


@pytest.mark.browser
def test_page_in_chromium_play_answer_resume_double_submit(server, study):
    from playwright import sync_api as playwright

    store, trials = study
    by_id = {server.public[t.id]: t for t in trials}  # the page sees only the opaque ids
    url = server.url
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(url) else errors.append(f"request {r.url}"))
            page.goto(url)
            page.fill("#rater", "chromium-1")
            page.keyboard.press("Enter")
            page.wait_for_selector("#study:not([hidden])")
            # play: the generated clip really plays in the browser
            page.keyboard.press("g")
            page.wait_for_function("() => document.getElementById('gen').currentTime > 0.2", timeout=15000)
            assert page.evaluate("document.getElementById('gen').duration") > 0.5
            done = []
            for _ in range(3):
                tid = answer_current(page, by_id, "2")
                page.keyboard.press("Enter")
                moved_on(page, tid)
                done.append(tid)
            assert page.inner_text("#count").startswith("3 / ")
            # reload: the same rater is back where they were
            page.reload()
            page.wait_for_selector("#study:not([hidden])")
            assert page.inner_text("#count").startswith("3 / ") and page.evaluate("cur.id") not in done
            # double submit: two clicks and an Enter on one answer
            tid = answer_current(page, by_id, "3")
            page.evaluate("() => { const b = document.getElementById('submit'); b.click(); b.click(); }")
            page.keyboard.press("Enter")
            moved_on(page, tid)
            done.append(tid)
            assert page.inner_text("#count").startswith("4 / ")
            # the same answer posted twice at once (two tabs, a retry): one line, and the page moves on on reload
            tid = page.evaluate("cur.id")
            statuses = page.evaluate(
                """async ([rater, trial, label]) => {
                const body = JSON.stringify({rater, trial, similarity: "highly", label, elapsed_ms: 1200});
                const post = () => fetch("/api/rate", {method: "POST", headers: {"Content-Type": "application/json"}, body})
                    .then(r => r.json()).then(j => j.status);
                if (label) await fetch("/api/label", {method: "POST", headers: {"Content-Type": "application/json"},
                                                      body: JSON.stringify({rater, trial, label})});
                return Promise.all([post(), post()]);
            }""",
                ["chromium-1", tid, by_id[tid].choices[0] if by_id[tid].question == "label" else None],
            )
            assert sorted(statuses) == ["duplicate", "saved"]
            done.append(tid)
            page.reload()
            page.wait_for_selector("#study:not([hidden])")
            assert page.inner_text("#count").startswith("5 / ") and page.evaluate("cur.id") not in done
        finally:
            browser.close()
    assert not errors, errors
    mine = [r for r in RatingLog(store).ratings() if r.rater == "chromium-1"]
    assert [server.public[r.trial] for r in mine] == done  # exactly one line per answer, in order
    assert [r.similarity for r in mine] == ["moderately"] * 3 + ["not", "highly"]
    internal = {t.id: t for t in trials}
    assert all(r.label == internal[r.trial].choices[0] for r in mine if internal[r.trial].question == "label")


def screenshot(target: Path, png: Path) -> None:
    """The page mid-study, for docs/listening.png."""
    from playwright import sync_api as playwright

    store = make_study_run(target)
    trials = trial_mod.prepare(store, n=16)
    srv, _ = serve(store, trials, port=free_port())
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 820, "height": 720})
        page.goto(srv.url)
        page.fill("#rater", "ana")
        page.keyboard.press("Enter")
        page.wait_for_selector("#study:not([hidden])")
        for _ in range(4):
            tid = answer_current(page, {srv.public[t.id]: t for t in trials}, "1")
            page.keyboard.press("Enter")
            moved_on(page, tid)
        while page.evaluate("cur.question") != "label":
            tid = answer_current(page, {srv.public[t.id]: t for t in trials}, "2")
            page.keyboard.press("Enter")
            moved_on(page, tid)
        page.keyboard.press("b")
        page.keyboard.press("2")
        page.screenshot(path=str(png), full_page=True)
        browser.close()
    srv.shutdown()


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/audioprobe-listening-fixture")
    shutil.rmtree(root, ignore_errors=True)
    screenshot(root, Path(__file__).resolve().parents[1] / "docs" / "listening.png")
