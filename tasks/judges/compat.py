"""Import torchcrepe and transformers even where torchaudio cannot load.

Both import torchaudio at module level but the judges use neither's audio I/O (tasks/judges/audio.py
reads and resamples everything). PyPI's torchaudio wheels are CUDA builds pinned to one torch
version; with the CPU torch 2.13 of this project, torchaudio 2.11 fails to load its extension
(`libc10_cuda.so: cannot open shared object file`) and takes torchcrepe and transformers down with
it. Then a stub named torchaudio stands in: any use of it raises, saying why.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

_reason: str | None = None


def ensure_torchaudio() -> str | None:
    """Import torchaudio, or put a stub in its place; returns why the stub was needed (None if not)."""
    global _reason
    if "torchaudio" in sys.modules:
        return _reason
    try:
        import torchaudio  # noqa: F401
    except (OSError, ImportError) as exc:
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        _reason = f"{type(exc).__name__}: {exc}"
        stub = types.ModuleType("torchaudio")
        stub.__version__ = "0+stub"  # type: ignore[attr-defined]
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)  # find_spec() must not fail

        def _unavailable(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            raise RuntimeError(f"torchaudio is unavailable here ({_reason}); audioprobe reads audio itself")

        stub.__getattr__ = _unavailable  # type: ignore[attr-defined]
        sys.modules["torchaudio"] = stub
    return _reason


def import_torchcrepe():
    ensure_torchaudio()
    import torchcrepe

    return torchcrepe


def import_transformers_clap():
    ensure_torchaudio()
    from transformers import ClapModel, ClapProcessor

    return ClapModel, ClapProcessor
