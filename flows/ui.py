"""What the flows show in the Prefect UI. The UI is a view: when the server is briefly away (a restart),
an artifact that cannot be written is skipped with a warning, never a reason to stop the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from audioprobe.console import warn


def best_effort(what: str, call: Callable[..., Any], *args, **kwargs) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - httpx, Prefect's ObjectNotFound, ...: the run goes on
        warn(f"audioprobe: could not {what} in the Prefect UI ({type(exc).__name__}: {exc})"[:300])
        return None


class Progress:
    """A progress artifact advanced one item at a time, written at most every `every_s` seconds (and at
    the end): one API call per item would cost the server more than the item's own record."""

    def __init__(self, description: str, total: int, every_s: float = 2.0):
        self.total, self.done, self.every_s = max(total, 1), 0, every_s
        self.written_at = time.monotonic()
        self.artifact = best_effort("create a progress artifact", create_progress_artifact, 0.0,
                                    description=description) if total else None

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.artifact is not None and (now - self.written_at >= self.every_s or self.done == self.total):
            self.written_at = now
            best_effort("update progress", update_progress_artifact, self.artifact, 100.0 * self.done / self.total)
