"""What the flows show in the Prefect UI. The UI is a view: when the server is briefly away (a restart),
an artifact that cannot be written is skipped with a warning, never a reason to stop the run."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact


def best_effort(what: str, call: Callable[..., Any], *args, **kwargs) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - httpx, Prefect's ObjectNotFound, ...: the run goes on
        print(f"audioprobe: could not {what} in the Prefect UI ({type(exc).__name__}: {exc})"[:300],
              file=sys.stderr, flush=True)
        return None


class Progress:
    """A progress artifact advanced one item at a time, written at most every `every` items."""

    def __init__(self, description: str, total: int, every: int = 1):
        self.total, self.done, self.every = max(total, 1), 0, every
        self.artifact = best_effort("create a progress artifact", create_progress_artifact, 0.0,
                                    description=description) if total else None

    def advance(self) -> None:
        self.done += 1
        if self.artifact is not None and (self.done % self.every == 0 or self.done == self.total):
            best_effort("update progress", update_progress_artifact, self.artifact, 100.0 * self.done / self.total)
