"""An ask goes out once: a claim per response-store key across processes (tasks/generation/store.py).

Against the simulated hosted model (tests/bench/sim_llm.py), a real loopback HTTP server that counts
the requests it answers: two processes asking the same at once cost one request; a process killed
mid-request leaves its mark, and the next ask is recorded `answer_lost` instead of paying again, until
`release` (what `audioprobe retry --only generation` does) lets it go out once more.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audioprobe.settings import ModelSettings, Settings
from tasks.generation import llm
from tasks.generation.store import ResponseStore
from tests.bench import sim_llm
from tests.fixtures_flows import wait_for

ROOT = Path(__file__).resolve().parents[1]
MODEL = "openai/sim-strong"
PROMPT = "pitch - 60 amplitude - 0.5 named n.WAV"


def ask(data_dir: str, api_base: str) -> None:
    """Child process: one ask; prints what came back."""
    gen = llm.generate(PROMPT, MODEL, settings=_settings(Path(data_dir), api_base), raise_transient=False)
    print(json.dumps({"error_kind": gen.error_kind, "cached": gen.cached, "raw": gen.raw_text}), flush=True)


def _settings(data_dir: Path, api_base: str) -> Settings:
    return Settings(data_dir=data_dir, models={MODEL: ModelSettings(api_base=api_base, max_retries=0)})


@pytest.fixture
def sim():
    def start(latency: float):
        model = sim_llm.Sim(latency=latency, jitter=0.0, rate_limit=0.0, retry_after=1.0)
        server = sim_llm.serve(model)
        servers.append(server)
        return model, f"http://127.0.0.1:{server.server_address[1]}/v1"

    servers = []
    yield start
    for server in servers:
        server.shutdown()


def _child(data_dir: Path, api_base: str) -> subprocess.Popen:
    code = f"from tests.test_ask_claims import ask; ask({str(data_dir)!r}, {api_base!r})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_asking_the_same_pay_for_one_request(sim, tmp_path):
    model, api_base = sim(latency=2.0)
    children = [_child(tmp_path, api_base) for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert model.snapshot()["requests"] == 1, "the second asker waited for the first one's answer"
    assert [r["error_kind"] for r in results] == [None, None]
    assert results[0]["raw"] == results[1]["raw"] and sorted(r["cached"] for r in results) == [False, True]


def test_an_ask_whose_asker_died_is_not_paid_for_twice(sim, tmp_path):
    model, api_base = sim(latency=4.0)
    settings = _settings(tmp_path, api_base)
    store = ResponseStore(settings.responses_dir)
    claim = store.claim_path(llm.request_of(PROMPT, MODEL, 0, settings).key)
    child = _child(tmp_path, api_base)
    try:
        wait_for(lambda: claim.exists() and claim.stat().st_size > 0, 60, "the ask's mark on disk")
        child.send_signal(signal.SIGKILL)  # mid-request: the model is asked, its answer never arrives
        child.wait(timeout=30)
    finally:
        child.kill()
    wait_for(lambda: model.snapshot()["answered"] == 1, 30, "the model to answer the dead asker")

    lost = llm.generate(PROMPT, MODEL, settings=settings, raise_transient=False)
    assert lost.error_kind == "answer_lost" and f"pid {child.pid}" in lost.error
    assert "audioprobe retry" in lost.error
    assert model.snapshot()["requests"] == 1, "not asked again by itself"

    assert store.release(lost.response_id)
    t0 = time.monotonic()
    again = llm.generate(PROMPT, MODEL, settings=settings, raise_transient=False)
    assert again.error_kind is None and again.raw_text and time.monotonic() - t0 >= 3.5
    assert model.snapshot()["requests"] == 2 and not claim.exists(), "released: asked once more, mark gone"
