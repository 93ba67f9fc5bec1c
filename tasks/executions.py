"""Executions cached on disk: what a program did is a function of its code, the file it was asked to write,
the limits, the sandbox image and the runner protocol (`execution_key`).

One record per key under `data_dir/executions/`, so a batch of programs (one `execute` task run) is cached
program by program: a rerun, a resumed run or a retried batch runs only the programs it has not seen. A
record whose clip the audio store has since collected (`audioprobe gc`) is a miss: the program runs again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from audioprobe.schema import ExecutionResult, Generation, RenderedPrompt
from audioprobe.settings import get_settings
from tasks.fileio import atomic_write

KEY_VERSION = "2"  # "1" was Prefect's own cache of the per-item task


def execution_key(generation: Generation, prompt: RenderedPrompt) -> str:
    from sandbox.container import PROTOCOL  # the runner and normaliser that made the outputs

    settings = get_settings()
    parts = [KEY_VERSION, generation.code, prompt.output_name, settings.limits, settings.sandbox_image, PROTOCOL]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ExecutionCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or get_settings().data_dir / "executions")

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> ExecutionResult | None:
        path = self.path(key)
        if not path.is_file():
            return None
        result = ExecutionResult.model_validate_json(path.read_text())
        if any(f.path and not Path(f.path).exists() for f in result.files):
            return None  # its clip was collected: run it again rather than judge nothing
        return result.model_copy(update={"cached": True})

    def put(self, key: str, result: ExecutionResult) -> None:
        atomic_write(self.path(key), result.model_copy(update={"cached": False}).model_dump_json())
