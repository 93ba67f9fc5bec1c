"""Session fixtures for the real local LLM server (registered from tests/conftest.py).

One llama-cpp-python server with the 0.5B model per test session, on a test-only port so a user's
`audioprobe llm serve` (1.5B, default port) is neither reused nor disturbed. Responses go to a
per-session data dir; the model file and llm venv come from the real cache that `make setup` fills.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from audioprobe.settings import ModelSettings, Settings

TEST_MODEL = "qwen2.5-coder-0.5b"
# One server per xdist worker (gw0, gw1, ...): tests stop and restart their own server.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_PORT = int(os.environ.get("AUDIOPROBE_TEST_LLM_PORT", "8799")) - _WORKER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llm_settings(data_dir: Path, port: int = TEST_PORT, **local: object) -> Settings:
    """Settings for the test server; `local` overrides ModelSettings of the `local` model."""
    base = Settings()
    ms = ModelSettings(**{"max_tokens": 48, "max_retries": 1, "timeout_s": 120.0} | local)
    return Settings(
        cache_dir=base.cache_dir,
        data_dir=data_dir,
        local_model=TEST_MODEL,
        local_port=port,
        models={"local": ms},
    )


@pytest.fixture(scope="session")
def llm_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("llm-data")


@pytest.fixture(scope="session")
def local_server(llm_data_dir):
    """The running test server; tests that stop it must `start()` it again before they end."""
    from tasks.generation import local_model
    from tasks.generation.local_server import LocalServer

    settings = llm_settings(llm_data_dir)
    if not (local_model.llm_venv(settings) / "bin" / "python").exists():
        pytest.fail("no llm venv: run `scripts/setup.sh llm` (make test does)")
    server = LocalServer(TEST_MODEL, settings, port=TEST_PORT).start()
    yield server
    server.stop()


@pytest.fixture
def settings_for(llm_data_dir, local_server):
    """Settings pointing at the session server, with a fresh response store per test."""
    counter = iter(range(10**6))

    def make(**local: object) -> Settings:
        return llm_settings(
            llm_data_dir / f"t{os.getpid()}-{next(counter)}-{os.urandom(3).hex()}",
            port=local_server.port,
            **local,
        )

    return make
