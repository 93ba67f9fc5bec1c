"""Shared pytest wiring: each area keeps its fixtures in its own plugin module, listed here."""

pytest_plugins = [
    "tests.fixtures_llm",
    "tests.fixtures_flows",
]

import pytest


@pytest.fixture(autouse=True)
def _fresh_breakers():
    """Each test starts with every model's circuit breaker closed, as each run does."""
    from tasks.generation import breaker

    breaker.reset()
    yield
    breaker.reset()
