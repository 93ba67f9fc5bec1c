"""Where an item stopped, named the same way everywhere: records, retries, the UI and the report."""

from __future__ import annotations

import functools
from pathlib import Path

from audioprobe.schema import ItemOutcome

# In pipeline order; the report lists them in this order.
FAILURES = (
    "not_attempted",  # the model was unavailable (its circuit breaker opened): a rerun asks again
    "llm_error",  # the model call failed (no key, unknown model, unreachable, server died, bad response)
    "no_code",  # an answer with nothing runnable: empty, refusal, prose only
    "truncated",  # max_tokens cut the answer (finish_reason "length") and what was kept did not run
    "syntax",
    "missing_module",
    "bad_import",  # a real module, a name it does not have (an invented or removed API)
    "runtime",
    "timeout",
    "memory",
    "no_output",
    "output_rejected",
    "invalid_audio",  # the gate refused the clip
    "judge_error",
    "infrastructure",  # Docker or orchestration failed after its retries (never the model): rerun retries it
)

# Which pipeline stage each failure belongs to, for `audioprobe retry --only`.
STAGE_OF_FAILURE = {
    "not_attempted": "generation",
    "llm_error": "generation",
    "no_code": "generation",
    "truncated": "generation",
    "syntax": "execution",
    "missing_module": "execution",
    "bad_import": "execution",
    "runtime": "execution",
    "timeout": "execution",
    "memory": "execution",
    "no_output": "execution",
    "output_rejected": "execution",
    "invalid_audio": "execution",
    "judge_error": "judging",
    "infrastructure": "execution",
}

# Failures a plain rerun of the same command tries again; every other failure is a result.
RETRIED_ON_RERUN = {"infrastructure", "not_attempted"}


def classify_failure(outcome: ItemOutcome) -> str | None:
    """The first thing that went wrong for this item, or None when it reached a judgement."""
    gen = outcome.generation
    if gen is None:
        return None
    if gen.error_kind == "not_attempted":
        return "not_attempted"
    if gen.error or gen.extraction_status == "llm_error":
        return "llm_error"
    cut = gen.finish_reason == "length"
    if not gen.code:
        return "truncated" if cut else "no_code"
    exe = outcome.execution
    if exe is None:
        return None
    if exe.status == "error":
        if exe.error_type in ("SyntaxError", "IndentationError", "TabError"):
            return "truncated" if cut else "syntax"
        if exe.missing_module or exe.error_type == "ModuleNotFoundError":
            return "missing_module"
        if exe.error_type == "ImportError":
            return "bad_import"
        return "runtime"
    if exe.status != "ok":
        return "truncated" if cut and exe.status == "no_output" else exe.status  # timeout, memory, ...
    if outcome.gate is not None and not outcome.gate.ok:
        return "invalid_audio"
    if any(j.error for j in outcome.judgements):
        return "judge_error"
    return None


# Model failures that say nothing about the model's answer: a rerun asks again. A missing key or an
# unknown model is fixed by the user, not by the model, so it is among them.
TRANSIENT_LLM_KINDS = {"transient", "timeout", "connection", "unreachable", "rate_limit", "server_error",
                       "server_down", "server_died", "not_attempted", "auth", "unknown_model"}
# Every error_kind a Generation can carry (tasks/generation/errors.py and llm.py).
LLM_ERROR_KINDS = ("timeout", "rate_limit", "auth", "unreachable", "server_error", "server_died", "not_found",
                   "context_window", "content_policy", "unknown_model", "bad_request", "malformed", "oversized",
                   "not_attempted", "answer_lost", "error")


def retry_status_names() -> list[str]:
    """What `audioprobe retry --status` accepts: failures, execution statuses and model error kinds."""
    from typing import get_args

    from audioprobe.schema import ExecutionStatus

    return sorted(set(FAILURES) | set(get_args(ExecutionStatus)) - {"ok"} | set(LLM_ERROR_KINDS))


def is_final(outcome: ItemOutcome | None) -> bool:
    """True when the same command run again should keep this outcome rather than redo it."""
    if outcome is None:
        return False
    if outcome.failure in RETRIED_ON_RERUN:
        return False
    if outcome.failure == "llm_error":
        # No generation: the generate task itself broke (a server lost mid-call), not the model; a rerun
        # asks again, or recalls the answer from the response store if the model had answered.
        return outcome.generation is not None and outcome.generation.error_kind not in TRANSIENT_LLM_KINDS
    return outcome.failure is not None or outcome.stage_reached == "done"


# --------------------------------------------------------------------------- missing modules, split

SANDBOX_REQUIREMENTS = Path(__file__).resolve().parents[1] / "sandbox" / "requirements.txt"
# Import names whose PyPI distribution is named otherwise (the common ones in audio programs).
DIST_OF_IMPORT = {
    "cv2": "opencv-python", "sklearn": "scikit-learn", "PIL": "Pillow", "yaml": "PyYAML",
    "midiutil": "MIDIUtil", "gtts": "gTTS", "pyaudio": "PyAudio", "sounddevice": "sounddevice",
    "simpleaudio": "simpleaudio", "pyttsx3": "pyttsx3", "pysynth": "PySynth", "pydsmidi": "pydsmidi",
    "magenta": "magenta", "tensorflow": "tensorflow", "torch": "torch", "torchaudio": "torchaudio",
    "music21": "music21", "pyo": "pyo", "thinkdsp": "ThinkDSP", "fluidsynth": "pyFluidSynth",
}  # fmt: skip
MODULE_STATUSES = ("not_installed", "hallucinated", "unknown")


def sandbox_packages() -> list[tuple[str, str]]:
    """(distribution, version) of everything installed in the sandbox image, from its pinned requirements."""
    out = []
    for line in SANDBOX_REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out.append((name.strip(), version.strip()))
    return out


@functools.cache
def _host_distributions() -> dict[str, list[str]]:
    """Import name -> distributions on this host, read once: a scan of every installed package, about a
    second each time, was paid per missing module by every report (issue 24, 5)."""
    import importlib.metadata

    return importlib.metadata.packages_distributions()


def module_status(module: str, check_index: bool = False, cache_dir: Path | None = None) -> tuple[str, str]:
    """(status, how we know) for a module the sandbox lacks: "not_installed" (a real package that is not
    in the image), "hallucinated" (no such package on the index) or "unknown" (offline, not known here).

    A module this host can import is real. Otherwise the package index answers only with check_index
    (off by default: nothing is sent anywhere unasked); answers are cached in cache_dir/pypi_names.json.
    """
    import importlib.util

    top = module.split(".")[0]
    dists = _host_distributions().get(top)
    if dists:
        return "not_installed", f"installed on the host as {', '.join(sorted(set(dists)))}"
    try:
        if importlib.util.find_spec(top) is not None:
            return "not_installed", "importable on the host"
    except (ImportError, ValueError):
        pass
    if not check_index:
        return "unknown", "offline: the package index was not asked"
    names = list(dict.fromkeys([DIST_OF_IMPORT.get(top, top), top, top.replace("_", "-")]))
    found = [n for n in names if _on_index(n, cache_dir)]
    if found:
        return "not_installed", f"on PyPI as {found[0]}"
    return "hallucinated", f"no PyPI project named {' or '.join(names)}"


def _on_index(name: str, cache_dir: Path | None) -> bool:
    import json
    import urllib.error
    import urllib.request

    from audioprobe.settings import get_settings

    cache = (cache_dir or get_settings().cache_dir) / "pypi_names.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = name.lower()
    if key not in known:
        try:
            with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=10) as r:
                known[key] = r.status == 200
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            known[key] = False
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=1, sort_keys=True))
    return bool(known[key])
