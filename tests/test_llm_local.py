"""Against the real embedded model: llama-cpp-python's server with the 0.5B GGUF, started once a session."""

import json
import os
import subprocess
import sys

import pytest

from tasks.generation import llm, local_model
from tasks.generation.local_server import LocalServer, served_aliases
from tasks.generation.store import ResponseStore

pytestmark = pytest.mark.llm

PROMPT = "Write one line of Python that prints the word bell."


def test_answer_is_recorded_and_a_cache_hit_needs_no_server(local_server, settings_for):
    s = settings_for(max_tokens=32)
    first = llm.generate(PROMPT, "local", settings=s)
    assert first.error is None, first.error
    assert not first.cached and first.raw_text.strip()
    assert first.model == "openai/qwen2.5-coder-0.5b" and first.api_base == local_server.base
    assert first.tokens_in > 0 and 0 < first.tokens_out <= 32 and first.latency_s > 0
    assert first.cost is None  # a local model has no price: empty, not an error
    assert first.extraction_status in ("single_block", "unfenced", "prose_with_code", "multiple_blocks")

    local_server.stop()
    try:
        assert served_aliases(local_server.base) is None, "the session server should be down"
        again = llm.generate(PROMPT, "local", settings=s)
        assert again.cached and again.response_id == first.response_id
        assert (again.raw_text, again.code, again.tokens_out) == (
            first.raw_text,
            first.code,
            first.tokens_out,
        )
    finally:
        local_server.start()


def test_cli_ask_then_cached_without_touching_the_server(local_server, settings_for, tmp_path):
    s = settings_for(max_tokens=24)
    prompt = tmp_path / "p.txt"
    prompt.write_text("Write a Python expression for the frequency of A4 in Hz.\n")
    env = os.environ | {
        "AUDIOPROBE_DATA_DIR": str(s.data_dir),
        "AUDIOPROBE_CACHE_DIR": str(s.cache_dir),
        "AUDIOPROBE_LOCAL_MODEL": s.local_model,
        "AUDIOPROBE_LOCAL_PORT": str(s.local_port),
        "AUDIOPROBE_MODELS": json.dumps({"local": {"max_tokens": 24}}),
    }
    cmd = [
        sys.executable,
        "-m",
        "audioprobe.cli",
        "llm",
        "ask",
        "--model",
        "local",
        "--prompt-file",
        str(prompt),
    ]

    def ask() -> dict:
        out = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout)  # exactly one JSON object on stdout

    first = ask()
    assert set(first) >= {
        "model",
        "response_id",
        "cached",
        "extraction_status",
        "code",
        "raw_text",
        "tokens_in",
        "tokens_out",
        "latency_s",
        "cost",
    }
    assert first["cached"] is False and first["raw_text"] and first["tokens_out"] <= 24
    assert served_aliases(local_server.base) == [s.local_model], "a reused server must stay up"

    local_server.stop()
    try:
        second = ask()
        assert second["cached"] is True and second["response_id"] == first["response_id"]
        assert second["raw_text"] == first["raw_text"]
        assert served_aliases(local_server.base) is None, "a cache hit must not start a server"
    finally:
        local_server.start()


def test_samples_at_temperature_are_distinct(settings_for):
    s = settings_for(temperature=1.0, max_tokens=24, seed=11)
    prompt = "Invent a name for a new musical instrument and describe its sound in one sentence."
    g0 = llm.generate(prompt, "local", 0, settings=s)
    g1 = llm.generate(prompt, "local", 1, settings=s)
    assert g0.error is None and g1.error is None
    assert g0.response_id != g1.response_id and (g0.params["seed"], g1.params["seed"]) == (11, 12)
    assert g0.raw_text != g1.raw_text, "different seeds at temperature 1 gave the same text"
    store = ResponseStore(s.responses_dir)
    assert (
        store.get(g0.response_id).raw_text == g0.raw_text
        and store.get(g1.response_id).raw_text == g1.raw_text
    )
    assert llm.generate(prompt, "local", 1, settings=s).cached


def test_a_running_server_is_reused_and_a_foreign_one_refused(local_server):
    again = LocalServer(
        local_model.spec(local_server.key).key, local_server.settings, port=local_server.port
    ).start()
    assert again.owned is False and again.healthy()
    other = LocalServer("qwen2.5-coder-1.5b", local_server.settings, port=local_server.port)
    with pytest.raises(local_model.LocalModelError, match="already serves"):
        other.start()
