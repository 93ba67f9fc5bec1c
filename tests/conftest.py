"""Shared pytest wiring: each area keeps its fixtures in its own plugin module, listed here."""

pytest_plugins = [
    "tests.fixtures_llm",
    "tests.fixtures_flows",
]
