"""Every paid-for response, on disk, keyed by what was asked: a rerun, retry or replay never pays twice.

The key is the SHA-256 of canonical JSON of (model, api_base, messages, generation params, sample
index). Timeouts, retry counts and API keys are not in it: they change how we ask, not what. The
sample index is, so samples at temperature > 0 stay distinct entries.

Layout: `<responses_dir>/<key[:2]>/<key>.json` holding the request and the Generation. Writes go to a
temporary file in the same folder and are renamed into place, so a crash never leaves half a record
and concurrent writers of the same key both leave a whole one. Only answers are stored, never call
failures: an error (no key, server down) must be retried once its cause is fixed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from audioprobe.schema import Generation
from tasks.fileio import atomic_write


def response_key(
    model: str, api_base: str | None, messages: list[dict[str, Any]], params: dict[str, Any], sample: int
) -> str:
    payload = {"model": model, "api_base": api_base, "messages": messages, "params": params, "sample": sample}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Generation | None:
        path = self.path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:  # a damaged record is a miss, said aloud
            raise RuntimeError(f"response store: unreadable record {path}: {exc}") from exc
        gen = Generation.model_validate(record["generation"])
        gen.cached = True
        return gen

    def put(self, gen: Generation, request: dict[str, Any] | None = None) -> Path:
        path = self.path(gen.response_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"request": request or {}, "generation": gen.model_dump(mode="json") | {"cached": False}}
        # durable: an answer that was paid for must survive a crash right after it
        return atomic_write(path, json.dumps(record, ensure_ascii=False, indent=1), fsync=True)
