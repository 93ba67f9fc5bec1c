"""A circuit breaker per model: a model that keeps failing transiently is not asked again this run.

Without it, a model that is down costs every remaining item its full retry schedule (minutes each on a
1,500-item tier). After `threshold` consecutive items failed transiently (after the client's own
retries), or at once when its server died for good, the breaker opens: the model's remaining items are
recorded as `not_attempted` with the reason, and a rerun of the same command picks them up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class ModelBreaker:
    threshold: int
    consecutive: int = 0
    reason: str | None = None  # set when open: why the model is unavailable
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def open_reason(self) -> str | None:
        return self.reason

    def success(self) -> None:
        with self._lock:
            self.consecutive = 0

    def failure(self, cause: str) -> None:
        with self._lock:
            self.consecutive += 1
            if self.reason is None and self.consecutive >= self.threshold:
                self.reason = f"{cause} ({self.consecutive} items in a row failed)"

    def trip(self, cause: str) -> None:
        with self._lock:
            self.reason = self.reason or cause


_breakers: dict[str, ModelBreaker] = {}
_lock = threading.Lock()


def breaker_for(model: str, threshold: int) -> ModelBreaker:
    with _lock:
        return _breakers.setdefault(model, ModelBreaker(max(1, threshold)))


def open_breakers() -> dict[str, str]:
    """model -> reason, for every model whose breaker opened in this process."""
    with _lock:
        return {model: b.reason for model, b in _breakers.items() if b.reason}


def reset() -> None:
    """A new run starts with every model closed (a long-lived worker process runs many)."""
    with _lock:
        _breakers.clear()
