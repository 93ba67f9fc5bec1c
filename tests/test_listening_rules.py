"""Issue 22: the listening server enforces its own rules, not the page. Real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time

import pytest

from audioprobe.listening import server as server_mod
from audioprobe.listening.ratings import RatingLog
from tests.test_listening import free_port, rate, request, server, study  # noqa: F401 - fixtures


def label_trial(trials):
    return next(t for t in trials if t.question == "label")


def test_ids_must_match_in_full(server, study):
    store, trials = study
    notes = next(t for t in trials if t.question == "similarity")
    assert request(server, "GET", "/api/trials?rater=ana%0A")[0] == 400
    assert request(server, "GET", "/api/trials?rater=ana")[0] == 200
    pub = server.public[notes.id]
    for rater, trial in (("ana\n", pub), ("ana", pub + "\n"), ("ana", pub + "-r1")):
        body = json.dumps({"rater": rater, "trial": trial, "similarity": "highly"}).encode()
        assert request(server, "POST", "/api/rate", body)[0] == 400, (rater, trial)
    assert request(server, "GET", f"/clip/{pub}%0A/gen")[0] == 400
    assert not any(r.rater.endswith("\n") for r in RatingLog(store).ratings())


@pytest.mark.parametrize("endpoint", ["/api/rate", "/api/label"])
@pytest.mark.parametrize(
    "body",
    [b"[" * 2000, b"{" * 1500, b'{"rater": ' + b"9" * 4400 + b"}", b"\xff\xfe{}", b'{"rater": "\\ud800"}', b""],
)
def test_any_parse_error_is_a_400_and_the_server_lives_on(server, endpoint, body):
    conn = socket.create_connection(server.server_address, timeout=10)
    head = (f"POST {endpoint} HTTP/1.1\r\nHost: 127.0.0.1:{server.server_address[1]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    conn.sendall(head + body)
    reply = conn.recv(65536)
    conn.close()
    status = int(reply.split()[1]) if reply else None
    assert status in (400, 411, 413), reply[:200]  # "" has no length to accept: 411 (from the header)
    assert request(server, "GET", "/api/trials?rater=ana")[0] == 200


def test_half_sent_requests_time_out_and_connections_are_capped(server, monkeypatch):
    monkeypatch.setattr(server_mod.Handler, "timeout", 1.0)
    base = threading.active_count()
    held = []
    for _ in range(200):
        s = socket.create_connection(server.server_address, timeout=10)
        s.sendall(b"POST /api/rate HTTP/1.1\r\nContent-Length: 100\r\n")  # never finished
        held.append(s)
    time.sleep(0.5)
    assert threading.active_count() <= base + server_mod.MAX_CONNECTIONS + 2
    time.sleep(2.0)  # past the timeout: every one of them dropped, a real client is served again
    assert threading.active_count() <= base + 2
    for s in held:  # each was closed by the server: over the cap at once, the others at the timeout
        s.settimeout(5)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert request(server, "GET", "/api/trials?rater=ana")[0] == 200


def test_only_regular_single_link_files_inside_the_run_are_served(server, study, tmp_path):
    store, trials = study
    victim = next(t for t in trials if t.question == "similarity")
    url = f"/clip/{server.public[victim.id]}/gen"
    clip = store.dir / victim.gen_path
    kept = clip.read_bytes()
    outside = tmp_path / "secret.wav"
    outside.write_bytes(kept)  # even the same bytes: the file is not the run's own
    attempts = {
        "hard link": lambda: os.link(outside, clip),
        "symlink": lambda: clip.symlink_to(outside),
        "fifo": lambda: os.mkfifo(clip),
        "directory": lambda: clip.mkdir(),
    }
    try:
        for name, plant in attempts.items():
            clip.unlink()
            plant()
            status, body = request(server, "GET", url)
            assert status == 404 and b"RIFF" not in body, name
            clip.rmdir() if clip.is_dir() and not clip.is_symlink() else clip.unlink()
            clip.write_bytes(kept)
        # a second link to the run's own clip (the audio store's way): not served either
        os.link(clip, tmp_path / "second-link.wav")
        assert request(server, "GET", url)[0] == 404
        (tmp_path / "second-link.wav").unlink()
        # a directory above the clip swapped for a link out of the run: checked after opening
        clips = clip.parent
        moved = tmp_path / "clips"
        clips.rename(moved)
        clips.symlink_to(moved)
        assert request(server, "GET", url)[0] == 404
        clips.unlink()
        moved.rename(clips)
        # other bytes in the run's own file (changed since the draw): not served
        clip.write_bytes(kept[:-2] + bytes([kept[-2] ^ 1, kept[-1] ^ 1]))
        assert request(server, "GET", url)[0] == 404
    finally:
        if clip.is_symlink() or clip.exists():
            clip.rmdir() if clip.is_dir() and not clip.is_symlink() else clip.unlink()
        clip.write_bytes(kept)
    assert request(server, "GET", url) == (200, kept)


def test_the_reference_of_a_label_trial_needs_the_label_first(server, study):
    store, trials = study
    five = label_trial(trials)
    pub = server.public[five.id]
    right, wrong = five.label, next(c for c in five.choices if c != five.label)
    assert request(server, "GET", f"/clip/{pub}/ref")[0] == 403
    assert request(server, "GET", f"/clip/{pub}/ref?rater=blind-1")[0] == 403
    body = {"rater": "blind-1", "trial": pub, "similarity": "highly", "label": right}
    status, text = request(server, "POST", "/api/rate", json.dumps(body).encode())
    assert status == 409 and "label" in json.loads(text)["error"]  # no rating without the blind label
    blind = {"rater": "blind-1", "trial": pub, "label": wrong}
    assert request(server, "POST", "/api/label", json.dumps(blind).encode())[0] == 200
    status, clip = request(server, "GET", f"/clip/{pub}/ref?rater=blind-1")
    assert status == 200 and clip[:4] == b"RIFF"
    assert request(server, "GET", f"/clip/{pub}/ref?rater=someone-else")[0] == 403
    # heard the reference: the label cannot change any more, neither by /api/label nor by /api/rate
    status, text = request(server, "POST", "/api/label", json.dumps({**blind, "label": right}).encode())
    assert status == 409 and json.loads(text)["label"] == wrong
    status, _ = request(server, "POST", "/api/rate", json.dumps(body).encode())
    assert status == 409
    assert rate(server, rater="blind-1", trial=five.id, similarity="not", label=wrong)[0] == 200
    # a restarted server remembers the blind labels
    again, thread = server_mod.serve(store, trials, port=free_port())
    try:
        assert request(again, "GET", f"/clip/{pub}/ref?rater=blind-1")[0] == 200
    finally:
        again.shutdown()
        again.server_close()
        thread.join(5)
    # a similarity trial's reference is played at once
    notes = next(t for t in trials if t.question == "similarity")
    assert request(server, "GET", f"/clip/{server.public[notes.id]}/ref")[0] == 200


def test_trial_ids_are_opaque_and_repeats_look_alike(server, study):
    store, trials = study
    assert any(t.repeat for t in trials)
    status, body = request(server, "GET", "/api/trials?rater=ana")
    listed = json.loads(body)["trials"]
    ids = [t["id"] for t in listed]
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids) and len(set(ids)) == len(ids)
    assert b"-r" not in body and not any(t.id in body.decode() or t.base in body.decode() for t in trials)
    for t in trials:
        if t.repeat:
            first = server.public[t.base]
            pub = server.public[t.id]
            assert pub != first and not pub.startswith(first[:6])
            fields = {k: v for k, v in listed[ids.index(pub)].items() if k != "id"}
            assert fields == {k: v for k, v in listed[ids.index(first)].items() if k != "id"}
    again, thread = server_mod.serve(store, trials, port=free_port())
    try:
        assert again.public == server.public  # stable across restarts: a rater's place is kept
    finally:
        again.shutdown()
        again.server_close()
        thread.join(5)


def test_trials_drawn_before_are_moved_to_private_copies(study):
    """trials.json written before this rule named the run's clips, hard links into the audio store:
    prepare copies each (checked against its hash) and rewrites the file."""
    from audioprobe.listening import trials as trial_mod

    store, trials = study
    t = trials[0]
    original = next(o for o in store.outcomes() if o.audio_path and t.key in o.audio_path).audio_path
    rows = json.loads(trial_mod.trials_path(store).read_text())
    rows[0]["gen_path"] = original
    trial_mod.trials_path(store).write_text(json.dumps(rows))
    (store.dir / t.gen_path).unlink()
    again = trial_mod.prepare(store)
    copy = store.dir / again[0].gen_path
    assert again[0].gen_path == f"listening/clips/{t.gen_sha256}.wav" and copy.stat().st_nlink == 1
    assert json.loads(trial_mod.trials_path(store).read_text())[0]["gen_path"] == again[0].gen_path
