"""A paper-size dataset in the three native layouts, built offline from the offline refs' real sources.

    .venv/bin/python -m tests.bench.paper_dataset [--out DIR] [--fraction F] [--jobs 2] [--force]

Writes, under DIR (default cache_dir/paper-dataset/<full|fraction-F>), what `--dataset-root` reads:

- nsynth/nsynth-test/: examples.json + audio/ (16 kHz, 4 s). The whole split is 4,096 notes, so the
  loader's paper-structure check runs: 16 classes of the paper's families, 12 of 110 or more,
  guitar_electronic 92, flute_synthetic 30, vocal_synthetic 28, brass_electronic 30. Every note is
  FluidR3_GM rendered by fluidsynth (refs_notes.render_program); a class with more notes than one
  program's pitch x velocity grid also plays the next GM programs of the same GM group.
- fsd50k/: FSD50K.ground_truth/{vocabulary,eval,dev}.csv and FSD50K.eval_audio/ (44.1 kHz), 200
  classes x >= 3 clips: the offline refs' packaged recordings, resampled, plus speed-changed copies of
  them up to 3; classes no package records get synthesised noise bursts, all listed in STANDINS.txt.
- speech_commands/: 35 word folders x 6 clips (1 s, 16 kHz): the offline refs' 3 (packaged human
  recordings or flite) and 3 espeak-ng voices; testing_list.txt lists them all.

Each tree has a PROVENANCE.csv (clip, label, kind, source): never a refs_manifest.json, which would
make the loaders treat it as an offline set. `--fraction F` builds a stratified fraction: per NSynth
class ceil(F x the notes the paper samples), the first by the loader's own rank, so a run on it
samples exactly those; ceil(F x 200) FSD50K classes (at least 5, for the 5-way judges) and ceil(F x 35)
words, picked by the loader's --limit rank. The structure check needs the whole split, so it runs only
on the full build. A build whose key (fraction, this file, the offline refs' manifests) is unchanged is
left alone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tasks.probesets.sampling import PAPER_CAP, rank

# (family, source) -> notes in the test split; 4,096 in all, the paper's 16 classes among them.
NSYNTH_CLASSES = {
    "bass_electronic": 400, "bass_synthetic": 443, "brass_acoustic": 269, "brass_electronic": 30,
    "flute_acoustic": 180, "flute_synthetic": 30, "guitar_acoustic": 600, "guitar_electronic": 92,
    "keyboard_acoustic": 280, "keyboard_electronic": 386, "mallet_acoustic": 202,
    "organ_electronic": 502, "reed_acoustic": 235, "string_acoustic": 306, "vocal_acoustic": 113,
    "vocal_synthetic": 28,
}  # fmt: skip
VELOCITIES = (25, 50, 75, 100, 127)
PITCH_SPAN = 12  # semitones either side of the refs' own five pitches per family
ENV_CLIPS, ENV_SR, ENV_STANDIN_S = 3, 44100, 2.0
ESPEAK_VOICES = (("en-us", 150, 40), ("en-gb", 130, 60), ("en-us+f3", 170, 55))  # voice, words/min, pitch
BUILD = "BUILD.json"


def default_out(fraction: float) -> Path:
    from audioprobe.settings import get_settings

    name = "full" if fraction >= 1 else f"fraction-{fraction:g}"
    return get_settings().cache_dir / "paper-dataset" / name


def _take(n: int, fraction: float) -> int:
    return n if fraction >= 1 else max(1, math.ceil(fraction * n))


# ----------------------------------------------------------------------------- notes


def note_plan(fraction: float = 1.0) -> dict[str, tuple[int, list[tuple[int, str, int, int]]]]:
    """class -> (notes wanted, ranked candidates (program, note_str, pitch, velocity) with a margin for
    the few a program renders as silence)."""
    from tasks.probesets.nsynth import SOURCES
    from tasks.probesets.refs_notes import GM_PROGRAMS, NOTE_PITCHES

    assert sum(NSYNTH_CLASSES.values()) == 4096, "the NSynth test split has 4,096 notes"
    plan = {}
    for label, n in NSYNTH_CLASSES.items():
        family, source = label.rsplit("_", 1)
        base = GM_PROGRAMS[family][SOURCES.index(source)]
        # Lower notes than the refs' five, few higher: FluidR3_GM renders silence above some programs' range.
        lo = max(21, min(NOTE_PITCHES[family]) - PITCH_SPAN)
        hi = min(84, max(NOTE_PITCHES[family]) + 2)
        grid = (hi - lo + 1) * len(VELOCITIES)
        candidates = []
        for k in range(math.ceil(n * 1.2 / grid)):
            program = base // 8 * 8 + (base % 8 + k) % 8  # the next instrument of the same GM group
            candidates += [(program, f"{label}_{program:03d}-{p:03d}-{v:03d}", p, v)
                           for p in range(lo, hi + 1) for v in VELOCITIES]
        # The loader samples a class by the same rank (seed 0), so a fraction holds what a run samples first.
        want = n if fraction >= 1 else _take(min(n, PAPER_CAP), fraction)
        plan[label] = (want, sorted(candidates, key=lambda c: rank(0, c[1]))[: want + want // 10 + 5])
    return plan


def _render_tolerant(sf2: Path, program: int, notes: list[tuple[int, int]], work: Path) -> list:
    """render_program's notes, None for each it renders as silence (found by halving the list)."""
    from tasks.probesets.common import DatasetError
    from tasks.probesets.refs_notes import render_program

    try:
        return list(render_program(sf2, program, notes, work))
    except DatasetError as exc:
        if "silence" not in str(exc):
            raise
        if len(notes) == 1:
            return [None]
        half = len(notes) // 2
        return _render_tolerant(sf2, program, notes[:half], work) + _render_tolerant(sf2, program, notes[half:], work)


def _render(program: int, notes: list[tuple[str, str, int, int]], audio: Path) -> dict[str, dict]:
    from tasks.probesets.nsynth import FAMILIES, QUALITIES, SOURCES
    from tasks.probesets.refs_notes import FLUID_SF2, measured_qualities
    from tasks.probesets.refs_sources import write_wav

    with tempfile.TemporaryDirectory() as work:
        xs = _render_tolerant(Path(FLUID_SF2), program, [(p, v) for _, _, p, v in notes], Path(work))
    gain = 0.9 / max(float(np.abs(x).max()) for x in xs if x is not None)  # one per program: velocity shows
    out = {}
    for (label, note_str, pitch, vel), x in zip(notes, xs):
        if x is None:
            continue
        x = x * gain
        write_wav(audio / f"{note_str}.wav", x)
        family, source = label.rsplit("_", 1)
        q = measured_qualities(x)
        out[note_str] = {
            "note_str": note_str, "instrument": program, "instrument_str": note_str.split("-")[0],
            "pitch": pitch, "velocity": vel, "sample_rate": 16000,
            "qualities": [int(name in q) for name in QUALITIES], "qualities_str": q,
            "instrument_family": FAMILIES.index(family), "instrument_family_str": family,
            "instrument_source": SOURCES.index(source), "instrument_source_str": source,
        }  # fmt: skip
    return out


def build_nsynth(root: Path, fraction: float, jobs: int) -> int:
    split = root / "nsynth-test"
    (split / "audio").mkdir(parents=True)
    plan = note_plan(fraction)
    by_program: dict[int, list[tuple[str, str, int, int]]] = {}
    for label, (_, candidates) in plan.items():
        for program, note_str, p, v in candidates:
            by_program.setdefault(program, []).append((label, note_str, p, v))
    rendered: dict[str, dict] = {}
    with ProcessPoolExecutor(jobs) as pool:
        for part in pool.map(_render, by_program, by_program.values(), [split / "audio"] * len(by_program)):
            rendered.update(part)
    examples = {}
    for label, (want, candidates) in plan.items():
        kept = [c[1] for c in candidates if c[1] in rendered][:want]
        if len(kept) < want:
            raise RuntimeError(f"{label}: only {len(kept)} of {want} notes rendered with sound")
        examples.update({k: rendered.pop(k) for k in kept})
    for extra in rendered:  # the margin not needed
        (split / "audio" / f"{extra}.wav").unlink()
    for i, key in enumerate(sorted(examples)):
        examples[key]["note"] = i
    (split / "examples.json").write_text(json.dumps(dict(sorted(examples.items())), indent=1))
    with open(split / "PROVENANCE.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip", "label", "kind", "source"])
        w.writerows([f"audio/{k}.wav", f"{e['instrument_family_str']}_{e['instrument_source_str']}",
                     "rendered", f"FluidR3_GM program {e['instrument']} by fluidsynth"]
                    for k, e in sorted(examples.items()))
    return len(examples)


# ----------------------------------------------------------------------------- FSD50K


def _to_44k(x: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = math.gcd(ENV_SR, sr)
    return resample_poly(x.astype(np.float64), ENV_SR // g, sr // g).astype(np.float32)


def _standin(label: str, take: int) -> np.ndarray:
    """Noise bursts in a band placed by the label's hash: a stand-in, not a recording of the class."""
    digest = int(hashlib.sha256(f"{label}|{take}".encode()).hexdigest()[:8], 16)
    centre = 150.0 * 2 ** (5.5 * (digest % 1000) / 1000)
    n = int(ENV_SR * ENV_STANDIN_S)
    spec = np.fft.rfft(np.random.default_rng(digest).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / ENV_SR)
    spec[(f < centre / 1.6) | (f > centre * 1.6)] = 0
    t = np.arange(n) / ENV_SR
    bursts = (np.sin(2 * np.pi * (1 + take) * t) > 0).astype(float)
    x = np.fft.irfft(spec, n) * np.convolve(bursts, np.ones(441) / 441, mode="same")
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def build_fsd50k(root: Path, refs: Path, fraction: float) -> int:
    import soundfile as sf

    from tasks.probesets.descriptions import vocabulary

    vocab = vocabulary()
    labels = sorted(vocab)
    if fraction < 1:
        # at least 5: the environmental judges make a 5-way choice among the run's classes
        labels = sorted(sorted(labels, key=lambda lb: rank(0, lb))[: max(5, _take(len(labels), fraction))])
    real: dict[str, list[tuple[Path, str]]] = {}
    for rel, c in json.loads((refs / "refs_manifest.json").read_text())["clips"].items():
        real.setdefault(c["label"], []).append((refs / rel, f"{c['source']}:{c['source_file']}"))
    gt, audio = root / "FSD50K.ground_truth", root / "FSD50K.eval_audio"
    gt.mkdir(parents=True)
    audio.mkdir()
    rows, prov, standins = [], [], []
    for label in labels:
        clips = []
        for path, source in sorted(real.get(label, [])):
            x, sr = sf.read(str(path), dtype="float32")
            clips.append((_to_44k(x, sr), "recording", source))
        for k, (x, _, source) in enumerate(list(clips) * ENV_CLIPS):  # speed-changed copies up to 3
            if len(clips) >= ENV_CLIPS:
                break
            speed = (0.92, 1.08)[k % 2] * (1 + 0.03 * (k // 2))
            clips.append((_to_44k(x, int(round(ENV_SR * speed))), "derived", f"{source} at speed {speed:.2f}"))
        while len(clips) < ENV_CLIPS:
            clips.append((_standin(label, len(clips)), "synthesised", "band-limited noise bursts"))
        if not real.get(label):
            standins.append(label)
        for i, (x, kind, source) in enumerate(clips):
            fname = f"{label}-{i}"
            sf.write(str(audio / f"{fname}.wav"), np.clip(x, -1, 1), ENV_SR, subtype="PCM_16")
            rows.append([fname, label, vocab[label]["mid"]])
            prov.append([f"FSD50K.eval_audio/{fname}.wav", label, kind, source])
    with open(gt / "vocabulary.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([i, lb, vocab[lb]["mid"]] for i, lb in enumerate(labels))
    with open(gt / "eval.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["fname", "labels", "mids"], *rows])
    (gt / "dev.csv").write_text("fname,labels,mids,split\n")
    _provenance(root, prov)
    (root / "STANDINS.txt").write_text("# classes with no packaged recording: synthesised noise bursts only\n"
                                       + "".join(f"{lb}\n" for lb in standins))
    return len(rows)


# ----------------------------------------------------------------------------- Speech Commands


def _espeak(word: str, voice: str, speed: int, pitch: int, work: Path) -> np.ndarray:
    import soundfile as sf

    from tasks.probesets.refs_sources import to_16k_mono

    out = work / f"{word}-{voice}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word],
                   check=True, capture_output=True)
    x, sr = sf.read(str(out), always_2d=True, dtype="float32")
    return to_16k_mono(x, sr)


def build_speech(root: Path, refs: Path, fraction: float) -> int:
    import soundfile as sf

    from tasks.probesets.refs_sources import fade, loudest_window, write_wav
    from tasks.probesets.speech_commands import LISTS, WORDS

    words = list(WORDS)
    if fraction < 1:
        chosen = set(sorted(words, key=lambda w: rank(0, w))[: _take(len(words), fraction)])
        words = [w for w in words if w in chosen]
    manifest = json.loads((refs / "refs_manifest.json").read_text())["clips"]
    prov = []
    root.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as work:
        for word in words:
            for rel, c in sorted(manifest.items()):
                if c["label"] == word:
                    shutil.copyfile(refs / rel, _mk(root / rel))
                    kind = "recording" if c["human_recording"] else "synthesised"
                    prov.append([rel, word, kind, f"{c['source']}:{c['source_file']}"])
            for voice, speed, pitch in ESPEAK_VOICES:
                x = _espeak(word, voice, speed, pitch, Path(work))
                x = x * (0.9 / max(float(np.abs(x).max()), 1e-6))
                spk = hashlib.sha1(f"espeak-ng-{voice}".encode()).hexdigest()[:8]
                rel = f"{word}/{spk}_nohash_0.wav"
                write_wav(root / rel, fade(loudest_window(x, 16000), 5))
                prov.append([rel, word, "synthesised", f"espeak-ng -v {voice} -s {speed} -p {pitch}"])
    assert all(sf.info(str(root / r[0])).samplerate == 16000 for r in prov)
    (root / LISTS["test"]).write_text("".join(f"{r[0]}\n" for r in sorted(prov)))
    (root / LISTS["validation"]).write_text("")
    _provenance(root, prov)
    return len(prov)


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _provenance(root: Path, rows: list[list[str]]) -> None:
    with open(root / "PROVENANCE.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip", "label", "kind", "source"])
        w.writerows(sorted(rows))


# ----------------------------------------------------------------------------- the whole tree


def build_key(fraction: float, refs: Path) -> str:
    parts = [Path(__file__).read_bytes(), repr(fraction).encode()]
    parts += [(refs / d / "refs_manifest.json").read_bytes() for d in ("fsd50k", "speech_commands")]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def build(out: Path | None = None, fraction: float = 1.0, jobs: int = 2, force: bool = False) -> dict:
    """Build (or find up to date) the tree; returns what BUILD.json holds, with `cached` when reused."""
    from tasks.probesets.refs import build_refs
    from tasks.probesets.refs_common import swap_in

    if not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    out = Path(out or default_out(fraction))
    summary = build_refs(("environmental", "speech"), progress=lambda m: None)  # up to date: a second
    refs = Path(summary["environmental"]["path"]).parent
    key = build_key(fraction, refs)
    if not force and (out / BUILD).exists() and json.loads((out / BUILD).read_text()).get("key") == key:
        return json.loads((out / BUILD).read_text()) | {"cached": True}
    t0 = time.monotonic()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {"notes": build_nsynth(tmp / "nsynth", fraction, jobs)}
    counts["fsd50k_clips"] = build_fsd50k(tmp / "fsd50k", refs / "fsd50k", fraction)
    counts["speech_clips"] = build_speech(tmp / "speech_commands", refs / "speech_commands", fraction)
    info = {"key": key, "fraction": fraction, "counts": counts, "seconds": round(time.monotonic() - t0, 1),
            "bytes": sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())}
    (tmp / BUILD).write_text(json.dumps(info, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    swap_in(tmp, out)
    return info | {"path": str(out), "cached": False}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="default: cache_dir/paper-dataset/<full|fraction-F>")
    ap.add_argument("--fraction", type=float, default=1.0, help="a stratified fraction (default 1: all)")
    ap.add_argument("--jobs", type=int, default=2, help="fluidsynth processes at once")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    info = build(args.out, args.fraction, args.jobs, args.force)
    print(json.dumps({**info, "path": str(args.out or default_out(args.fraction))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
