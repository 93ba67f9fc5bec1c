"""What every loader shares: the error type, clip checks, and the offline-refs manifest reader."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from audioprobe.schema import ReferenceClip, SkippedItem, Tier

MANIFEST = "refs_manifest.json"  # written by refs.py beside each tier's tree


class DatasetError(ValueError):
    """Bad input the user can fix; the message names the file or label."""


def clip_problem(path: Path, sample_rates: Collection[int] | None) -> str | None:
    """Why `path` cannot serve as a clip, or None. Reads the header only: cheap enough for every clip."""
    import soundfile as sf

    if not path.is_file():
        return f"missing file {path}"
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types; its message says why
        return f"unreadable audio {path}: {exc}"
    if info.frames <= 0:
        return f"empty audio {path}"
    if sample_rates and info.samplerate not in sample_rates:
        want = " or ".join(str(r) for r in sorted(sample_rates))
        return f"wrong sample rate in {path}: {info.samplerate} Hz, expected {want} Hz"
    return None


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The offline-refs manifest under `root`, or None for a real dataset tree."""
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"corrupt manifest {path}: {exc}") from exc
    if not isinstance(data.get("clips"), dict):
        raise DatasetError(f"corrupt manifest {path}: no 'clips' table")
    return data


class ClipTable:
    """Turns clip paths into ReferenceClips, with provenance from the manifest when there is one."""

    def __init__(self, root: Path, dataset: str, license: str, sample_rates: Collection[int]):
        self.root = root
        self.manifest = read_manifest(root)
        self.dataset = self.manifest.get("dataset", dataset) if self.manifest else dataset
        self.license = license
        if self.manifest and self.manifest.get("sample_rate"):
            sample_rates = (int(self.manifest["sample_rate"]),)
        self.sample_rates = tuple(sample_rates)

    @property
    def offline(self) -> bool:
        return self.manifest is not None

    def clip(self, path: Path, label: str) -> ReferenceClip:
        rel = path.relative_to(self.root).as_posix()
        meta = (self.manifest or {}).get("clips", {}).get(rel)
        if self.manifest is not None and meta is None:
            raise DatasetError(
                f"{path} is not listed in {self.root / MANIFEST}: rebuild with `audioprobe refs build`"
            )
        if meta is None:
            return ReferenceClip(
                path=str(path), label=label, source=self.dataset, source_file=rel, license=self.license
            )
        return ReferenceClip(
            path=str(path),
            label=label,
            source=meta.get("source", ""),
            source_file=meta.get("source_file", ""),
            license=meta.get("license", ""),
            human_recording=bool(meta.get("human_recording", True)),
            attribution=meta.get("attribution", ""),
        )

    def checked(
        self, paths: Iterable[Path], label: str, tier: Tier, skipped: list[SkippedItem]
    ) -> list[ReferenceClip]:
        """The usable clips among `paths`; each bad one is listed in `skipped` with its reason."""
        good = []
        for path in paths:
            problem = clip_problem(path, self.sample_rates)
            if problem:
                skipped.append(SkippedItem(key=f"{label}:{path.name}", tier=tier, reason=problem))
            else:
                good.append(self.clip(path, label))
        return good
