"""All of audioprobe's settings in one pydantic-settings model.

Sources, strongest first: keyword arguments, `AUDIOPROBE_*` environment variables (nested fields with
`__`, e.g. `AUDIOPROBE_LIMITS__TIMEOUT_S=30`), the TOML file named by `AUDIOPROBE_CONFIG` (or
`./audioprobe.toml` when present), then the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from audioprobe.schema import ExecutionLimits

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = REPO_ROOT / "prompts"


class ModelSettings(BaseModel):
    """Generation settings for one litellm model string."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must not be silently ignored

    temperature: float = 0.0
    max_tokens: int = 1536
    seed: int | None = 0
    samples: int = 1
    api_base: str | None = None
    api_key_env: str | None = None  # name of the env var holding the key, never the key itself
    timeout_s: float = 300.0
    max_concurrency: int = 4
    requests_per_minute: int | None = None
    max_retries: int = 4


def _config_file() -> Path | None:
    named = os.environ.get("AUDIOPROBE_CONFIG")
    if named:
        return Path(named)
    local = Path("audioprobe.toml")
    return local if local.exists() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIOPROBE_", env_nested_delimiter="__", extra="forbid")

    # Built things that can be rebuilt (model file, wheels, rootfs, reference sets): shared by clones.
    cache_dir: Path = Path.home() / ".cache" / "audioprobe"
    # Results that cannot be rebuilt without paying again (responses, runs, judgements).
    data_dir: Path = Path.home() / ".local" / "share" / "audioprobe"

    sandbox_image: str = "audioprobe-sandbox"
    sandbox_base_image: str = "python:3.11-slim"
    sandbox_concurrency: int = 2
    # Programs one container runs before it is removed; above 1 the runner resets it between two
    # (docs/sandbox.md: every process of the program's uid killed, its writable places emptied). Creating
    # and removing a container per program is most of the Docker engine's CPU on short programs.
    sandbox_reuse: int = 1
    sandbox_runtime: str | None = None  # an OCI runtime known to the engine, e.g. "runsc" (gVisor)
    audio_store_max_mb: int = 4096  # `audioprobe gc` removes the oldest clips beyond this
    limits: ExecutionLimits = Field(default_factory=ExecutionLimits)

    local_model: str = "qwen2.5-coder-1.5b"  # or "qwen2.5-coder-0.5b"
    local_host: str = "127.0.0.1"
    local_port: int = 8765
    local_threads: int = Field(default_factory=lambda: os.cpu_count() or 2)
    local_ctx: int = 4096
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    # After this many items in a row failed transiently (after the client's retries), a model is not
    # asked again in this run: its remaining items are recorded as not attempted (tasks/generation/breaker.py).
    breaker_threshold: int = 5

    # With --samples k > 1 the temperature is raised to at least this: k samples at 0 would be one answer.
    sample_temperature: float = 0.2
    prompt_contract: bool = False  # append the output-contract line; off reproduces the paper
    judge_device: str = "auto"
    judge_concurrency: int = 1
    judge_batch: int = 8  # executed clips evaluated per task run (flows/probe.py)
    # Off by default: this must run where only package registries are reachable, and must never
    # send traffic anywhere unasked. Turn on to fetch judge weights (VGGish) when online.
    allow_downloads: bool = False
    # Ask PyPI whether a module the sandbox lacks is a real package (cached); off: the report says "unknown".
    check_package_index: bool = False
    # Who writes Detailed+Description's class descriptions (the paper: GPT-4o): a model name, "local" for
    # the embedded model (offline), cached per model; None keeps the AudioSet ontology's text. Asked only by
    # runs that use the detailed_description method. The report names the source.
    describer_model: str | None = "local"
    vggish_checkpoint: Path | None = None
    clap_checkpoint: Path | None = None

    report_port: int = 8790  # `audioprobe report --serve` and `audioprobe serve`: the UI's report links
    prefect_api_url: str | None = None
    prefect_port: int = 4200
    task_workers: int = 8  # threads per tier flow; the stage semaphores bound each kind of work
    # Sandbox, judge and per-model limits held by the Prefect server (global concurrency limits) instead
    # of each process: None means on with the Dask runner (several processes), off with threads.
    global_limits: bool | None = None
    task_runner: str = "threads"  # or "dask": prefect-dask, local cluster or dask_address
    dask_address: str | None = None  # tcp://scheduler:8786 of an existing cluster
    dask_workers: int = 2  # workers of the local cluster when no address is given
    # Threads per worker of that cluster: most task runs wait (on a model's answer, a sandbox or judge
    # slot), so the CPU-bound work is bounded by those limits, not by the thread count.
    dask_threads: int = 8

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            if not path.exists():
                raise FileNotFoundError(f"AUDIOPROBE_CONFIG names {path}, which does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def model_settings(self, model: str) -> ModelSettings:
        return self.models.get(model, ModelSettings())

    # Derived locations, one place each.
    @property
    def refs_dir(self) -> Path:
        return self.cache_dir / "refs"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def responses_dir(self) -> Path:
        return self.data_dir / "responses"

    @property
    def judgements_dir(self) -> Path:
        return self.data_dir / "judgements"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"


class ConfigError(ValueError):
    """The settings cannot be read: one line naming the file or variable, the key and the reason."""


# AUDIOPROBE_* variables that are not settings: read by the set-up scripts, the tests and the benches.
NOT_SETTINGS = ("AUDIOPROBE_CONFIG", "AUDIOPROBE_TEST_", "AUDIOPROBE_BENCH_", "AUDIOPROBE_LLAMA_CPU_FLAGS",
                "AUDIOPROBE_FAD_WHEELS", "AUDIOPROBE_DOCKERD_WAIT_S", "AUDIOPROBE_DEBIAN_MIRROR")


def _nearest(word: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_environment() -> str | None:
    for name in sorted(os.environ):
        if not name.startswith("AUDIOPROBE_") or name.startswith(NOT_SETTINGS):
            continue
        field = name.removeprefix("AUDIOPROBE_").lower().split("__", 1)[0]
        if field not in Settings.model_fields:
            near = _nearest(field, Settings.model_fields)
            return f"environment variable {name}: {field!r} is not a setting{near}"
    return None


def _explain(exc: ValidationError, source: str) -> str:
    """The first problem of a settings ValidationError, in one line with the nearest valid key."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc) or "?"
    if error["type"] == "extra_forbidden":
        table = {"models": ModelSettings, "limits": ExecutionLimits}.get(loc[0]) if len(loc) > 1 else None
        known = (table or Settings).model_fields
        return f"{source}: unknown key {where!r}{_nearest(loc[-1], known)}"
    return f"{source}: {where}: {error['msg']} (got {error.get('input')!r})"[:400]


def load_settings(**overrides: Any) -> Settings:
    """Settings, or a ConfigError whose message is the one line a user needs to fix them."""
    path = _config_file()
    source = f"config {path}" if path else "settings"
    problem = _unknown_environment()
    if problem:
        raise ConfigError(problem)
    try:
        return Settings(**overrides)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:  # tomllib.TOMLDecodeError and pydantic's ValidationError are ValueErrors
        if isinstance(exc, ValidationError):
            raise ConfigError(_explain(exc, source)) from None
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)
