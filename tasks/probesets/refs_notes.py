"""The notes tier (`nsynth/`): FluidR3_GM programs rendered with fluidsynth in NSynth's layout."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tasks.probesets.common import MANIFEST, DatasetError
from tasks.probesets.nsynth import FAMILIES, QUALITIES, SOURCES
from tasks.probesets.refs_common import SR, Clip, Progress, sources_key, swap_in, up_to_date, write_manifest
from tasks.probesets.refs_sources import Fetcher, ensure_tools, write_wav

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
    key = sources_key(
        ["notes", sorted((f"{f}_{s}", p, ps) for (f, s), (p, ps) in plan.items()), list(velocities)], __file__
    )
    if not force and up_to_date(root, key):
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
    man = write_manifest(
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
    swap_in(tmp, root)
    return man
