"""Debian's chromium, headless, as the browser tests start it: no network of its own, no sandbox (root)."""

from __future__ import annotations

import shutil
from pathlib import Path


def launch(p, *extra_args: str):
    """A browser from a running `playwright.sync_playwright()` context `p`."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is missing: run scripts/setup.sh browser"
    return p.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            *extra_args,
        ],
    )
