"""The speech tier (`speech_commands/`): real words cut from packaged phrases, flite for the rest."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tasks.probesets.common import MANIFEST, DatasetError
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
    Fetcher,
    decode,
    ensure_tools,
    fade,
    loudest_window,
    to_16k_mono,
    write_wav,
)

FLITE_LICENSE = "BSD-style CMU Flite license (Debian flite, kal16 voice)"
FLITE_VARIANTS = ((1.0, 100), (0.85, 120), (1.2, 90))  # (duration_stretch, f0 mean Hz): 3 "takes"


def align_word(x: np.ndarray, phrase: str, word: str) -> tuple[int, int]:
    """Sample span of `word` inside a recording of `phrase`, by pocketsphinx forced alignment."""
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:
        raise DatasetError("cutting words from phrases needs pocketsphinx: pip install pocketsphinx") from exc
    dec = Decoder(samprate=SR, loglevel="FATAL")
    dec.set_align_text(phrase)
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    segs = [s for s in dec.seg() if s.word.split("(")[0] not in ("<s>", "</s>", "<sil>", "[NOISE]")]
    words = [s.word.split("(")[0] for s in segs]
    if word not in words:
        raise DatasetError(f"pocketsphinx did not align {word!r} in {phrase!r} (got {words})")
    i = words.index(word)
    start = max(0, segs[i].start_frame * SR // 100 - SR // 50)
    end = (segs[i].end_frame + 1) * SR // 100 + SR // 40
    if i + 1 < len(segs):  # never into the next word
        end = min(end, segs[i + 1].start_frame * SR // 100)
    return start, min(len(x), end)


def flite_word(word: str, stretch: float, f0: int, workdir: Path) -> np.ndarray:
    import soundfile as sf

    out = workdir / f"{word}-{stretch}-{f0}.wav"
    cmd = [
        "flite",
        "-voice",
        "kal16",
        "--setf",
        f"duration_stretch={stretch}",
        "--setf",
        f"int_f0_target_mean={f0}",
        "-t",
        word,
        "-o",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0 or not out.exists():
        raise DatasetError(f"flite failed for {word!r}: {(r.stderr or r.stdout).strip()[-300:]}")
    x, sr = sf.read(str(out), always_2d=True, dtype="float32")
    return to_16k_mono(x, sr)


def build_speech(
    root: Path, fetcher: Fetcher, progress: Progress, words: Sequence[str] | None = None, force: bool = False
) -> dict:
    from tasks.probesets.speech_commands import LISTS, WORDS

    rows = [r for r in read_tsv("word_sources.tsv") if words is None or r["word"] in words]
    excluded, usable = [], []
    for r in rows:
        note = r["cut_from_phrase"]
        if "failed" in note or "unconfirmed" in note:  # the survey's own verdict: not a clean take
            excluded.append(
                {
                    "word": r["word"],
                    "package": r["package"],
                    "file": r["path_in_package"],
                    "reason": f"word_sources.tsv marks it {note!r}",
                }
            )
        else:
            usable.append(r)
    real_words = {r["word"] for r in usable}
    synth_words = [w for w in (words or WORDS) if w not in real_words]
    key = sources_key(["speech", usable, synth_words, FLITE_VARIANTS], __file__)
    if not force and up_to_date(root, key):
        progress(f"speech: up to date ({root})")
        return json.loads((root / MANIFEST).read_text())
    if synth_words:
        ensure_tools({"flite": "flite"}, progress)
    prefetch(fetcher, usable, "path_in_package")
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    clips: list[Clip] = []
    counts: dict[tuple[str, str], int] = {}

    def put(word: str, x: np.ndarray, speaker_src: str, clip: dict) -> None:
        spk = hashlib.sha1(speaker_src.encode()).hexdigest()[:8]
        n = counts.get((word, spk), 0)
        counts[(word, spk)] = n + 1
        rel = f"{word}/{spk}_nohash_{n}.wav"
        write_wav(tmp / rel, fade(loudest_window(x, SR), 5))
        clips.append(Clip(rel, word, **clip))

    for i, r in enumerate(usable, 1):
        word, pkg, path, phrase = r["word"], r["package"], r["path_in_package"], r["cut_from_phrase"]
        progress(f"speech: {word} <- {pkg}:{path} {i}/{len(usable)}")
        data = (fetcher.debian(pkg, [path]) / path.lstrip("/")).read_bytes()
        x, sr = decode(data, path)
        x = to_16k_mono(x, sr)
        if phrase:
            a, b = align_word(x, phrase, word)
            x = x[a:b]
        peak = float(np.abs(x).max())
        if peak < 1e-3:
            raise DatasetError(f"{pkg}:{path} decodes to silence")
        x = x * (0.9 / peak)
        speaker = pkg + ("/en_GB" if "en_GB" in path else "")  # one voice per package and accent
        put(
            word,
            x,
            speaker,
            {
                "source": pkg,
                "source_file": path,
                "license": _deb_license(pkg),
                "human_recording": True,
                "attribution": f"cut from {phrase!r} by pocketsphinx alignment" if phrase else "",
            },
        )
    with tempfile.TemporaryDirectory() as work:
        for word in synth_words:
            progress(f"speech: {word} <- flite kal16 (synthetic)")
            for stretch, f0 in FLITE_VARIANTS:
                x = flite_word(word, stretch, f0, Path(work))
                x = x * (0.9 / max(float(np.abs(x).max()), 1e-6))
                put(
                    word,
                    x,
                    f"flite-kal16-{stretch}-{f0}",
                    {
                        "source": "flite",
                        "source_file": f"flite -voice kal16 duration_stretch={stretch} f0={f0}",
                        "license": FLITE_LICENSE,
                        "human_recording": False,
                        "attribution": "synthesised: flite kal16 diphone voice (CMU), not a human recording",
                    },
                )
    rels = sorted(c.rel for c in clips)
    (tmp / LISTS["test"]).write_text("\n".join(rels) + "\n")  # the whole set is test material
    (tmp / LISTS["validation"]).write_text("")
    man = write_manifest(
        tmp,
        "speech",
        key,
        clips,
        excluded,
        {
            "human_words": sorted(real_words),
            "synthetic_words": sorted(synth_words),
        },
    )
    swap_in(tmp, root)
    return man


# Licenses of the speech packages (env_sources.tsv carries its own column).
SPEECH_LICENSES = {
    "asterisk-core-sounds-en-g722": "CC-BY-SA-3.0 (Asterisk core sounds, Allison Smith / Digium)",
    "csmash-data": "GPL-2+ (Cannon Smash)",
    "tuxpaint-stamps-default": "GPL-2 (Tux Paint stamps)",
    "klettres-data": "GPL-2+ (KLettres, KDE)",
    "neverball-common": "GPL-2+ (Neverball)",
    "alsa-utils": "GPL-2 (alsa-utils test sounds)",
    "qabcs-data": "GPL-3+ (qabcs)",
    "ktuberling-data": "GPL-2+ (KTuberling, KDE)",
}


def _deb_license(pkg: str) -> str:
    return SPEECH_LICENSES.get(pkg, f"see /usr/share/doc/{pkg}/copyright")
