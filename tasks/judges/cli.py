"""`audioprobe judge gate|pitch|fad|distance|speech|classify|validate`: each prints one JSON object."""

from __future__ import annotations

from pathlib import Path

from audioprobe.cli import UserError, emit


def register(subparsers) -> None:
    p = subparsers.add_parser("judge", help="gate and judge audio files; validate the judges")
    sub = p.add_subparsers(dest="judge_command", required=True)

    g = sub.add_parser("gate", help="is FILE.wav judgeable and what was asked for?")
    g.add_argument("file", help="the WAV file to check")
    g.add_argument("--sr", type=int, default=None, help="asked sample rate")
    g.add_argument("--seconds", type=float, default=None, help="asked duration")
    g.set_defaults(func=cmd_gate)

    pi = sub.add_parser("pitch", help="f0 against a MIDI pitch (torchcrepe)")
    pi.add_argument("file", help="the WAV file of one note")
    pi.add_argument("--midi", type=float, required=True, help="the asked pitch as a MIDI number (69 = A4)")
    pi.set_defaults(func=cmd_pitch)

    f = sub.add_parser("fad", help="Fréchet Audio Distance between two folders of WAVs")
    f.add_argument("gen_dir", help="folder of generated WAVs")
    f.add_argument("ref_dir", help="folder of reference WAVs")
    f.add_argument("--embedding", default="auto", help="vggish, logmel-stats, or auto (vggish when its checkpoint is at hand)")
    f.set_defaults(func=cmd_fad)

    d = sub.add_parser("distance", help="FAD, KAD or FAD-inf between two folders, with a 95%% CI and a same-N baseline")
    d.add_argument("ref_dir", help="folder of reference WAVs")
    d.add_argument("gen_dir", help="folder of generated WAVs")
    d.add_argument("--metric", choices=("fad", "kad", "fad-inf"), default="kad", help="the distance (default kad)")
    d.add_argument("--embedding", default="auto", help="vggish, logmel-stats, or auto (vggish when its checkpoint is at hand)")
    d.add_argument("--window", type=float, default=None,
                   help="seconds every clip is cut or padded to (default: the references' median length)")
    d.add_argument("--seed", type=int, default=0, help="seed of the resampling (interval, baseline)")
    d.add_argument("--boot", type=int, default=200, help="bootstrap resamples for the CI")
    d.add_argument("--kad-convention", choices=("clips", "kadtk"), default="clips",
                   help="KAD: clips (bandwidth from the references, pairs within a clip left out) or kadtk's score")
    d.set_defaults(func=cmd_distance)

    s = sub.add_parser("speech", help="5-way forced choice and free decoding (pocketsphinx)")
    s.add_argument("file", help="the WAV file of one spoken word")
    s.add_argument("--word", required=True, help="the word that was asked for")
    s.add_argument("--seed", type=int, default=0, help="seed of the 5-way distractor draw")
    s.set_defaults(func=cmd_speech)

    c = sub.add_parser("classify", help="5-way environmental class (CLAP, or the offline audio kNN)")
    c.add_argument("file", help="the WAV file of one sound")
    c.add_argument("--target", required=True, help="the class that was asked for (an FSD50K label)")
    c.add_argument("--seed", type=int, default=0, help="seed of the 5-way distractor draw")
    c.set_defaults(func=cmd_classify)

    v = sub.add_parser("validate", help="each judge's accuracy on the reference sets themselves")
    v.set_defaults(func=cmd_validate)


def _device() -> str:
    from tasks.judges.embeddings import resolve_device

    return resolve_device()


def _file(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{p} does not exist")
    return p


def _gated(path: Path):
    """Stop files no judge can hear, with the gate's reasons."""
    from tasks.judges import gate

    g = gate.check(path)
    if not g.ok:
        raise UserError(f"{path}: refused by the audio gate: {'; '.join(g.problems)}")
    return g


def _flat(j) -> dict:
    return {**j.values, "correct": j.correct, "judge": j.judge, "judge_version": j.judge_version,
            "audio_sha256": j.audio_sha256, "cached": j.cached, "error": j.error}


def cmd_gate(args) -> int:
    from tasks.judges import gate

    result = gate.check(args.file, sr=args.sr, seconds=args.seconds)
    emit(result)
    return 0 if result.ok else 1


def cmd_pitch(args) -> int:
    from tasks.judges import pitch

    path = _file(args.file)
    _gated(path)
    emit(_flat(pitch.judge_file(path, args.midi, device=_device())))
    return 0


def _wavs(folder: str) -> list[Path]:
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise UserError(f"{d} is not a folder")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg") and p.is_file())
    if not files:
        raise UserError(f"no audio files under {d}")
    return files


def cmd_fad(args) -> int:
    from tasks.judges import gate
    from tasks.judges.embeddings import embed_files, get_embedding, reference_window
    from tasks.judges.fad import score_class
    from tasks.judges.vggish import CheckpointError

    gen_all, ref = _wavs(args.gen_dir), _wavs(args.ref_dir)
    gen = [p for p in gen_all if gate.check(p).ok]
    try:
        backend = get_embedding(args.embedding)
    except (CheckpointError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    window = reference_window(ref)  # the report's path: same window, baseline and interval (fad.score_class)
    result = score_class(gen, embed_files(backend, gen, window_s=window), embed_files(backend, ref, window_s=window),
                         label=Path(args.gen_dir).name, embedding=backend.version, window_s=window)
    if len(gen) < len(gen_all):
        result.note += f"; {len(gen_all) - len(gen)} generated files refused by the gate"
    emit(result)
    return 0


def cmd_distance(args) -> int:
    from tasks.judges import distance, gate
    from tasks.judges.embeddings import embed_files, get_embedding, reference_window
    from tasks.judges.vggish import CheckpointError

    ref, gen_all = _wavs(args.ref_dir), _wavs(args.gen_dir)
    gen = [p for p in gen_all if gate.check(p).ok]
    try:
        backend = get_embedding(args.embedding)
    except (CheckpointError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    window = args.window or reference_window(ref)
    result = distance.distance(args.metric, embed_files(backend, gen, window_s=window),
                               embed_files(backend, ref, window_s=window), embedding=backend.version,
                               seed=args.seed, n_boot=args.boot, convention=args.kad_convention)
    out = {**result.as_dict(), "window_s": window, "seed": args.seed}
    if len(gen) < len(gen_all):
        out["note"] = "; ".join(x for x in (out["note"], f"{len(gen_all) - len(gen)} generated files refused by the gate") if x)
    emit(out)
    return 0


def cmd_speech(args) -> int:
    from tasks.judges import speech

    path = _file(args.file)
    g = _gated_soft(path)
    j = speech.judge_file(path, args.word, seed=args.seed)
    out = {k: v for k, v in _flat(j).items()}
    out["gate"] = g.problems
    emit(out)
    return 0


def _gated_soft(path: Path):
    """Speech judges silent files itself (as wrong, not decoded); other fatal problems stop it."""
    from tasks.judges import gate

    g = gate.check(path)
    fatal = [p for p in g.problems if p.split(":")[0] in gate.FATAL and not p.startswith("silent")]
    if fatal:
        raise UserError(f"{path}: refused by the audio gate: {'; '.join(fatal)}")
    return g


def environmental_items():
    from tasks.probesets.common import DatasetError
    from tasks.probesets.loaders import load_items

    try:
        items, _ = load_items("environmental")
    except DatasetError as exc:
        raise UserError(f"classify needs the environmental reference set: {exc}") from exc
    return items


def cmd_classify(args) -> int:
    from tasks.judges import clap
    from tasks.judges.classify import OfflineClassifier
    from tasks.judges.vggish import CheckpointError

    path = _file(args.file)
    _gated(path)
    items = environmental_items()
    labels = {it.label for it in items}
    if args.target not in labels:
        raise UserError(f"unknown target {args.target!r}; the environmental set has {len(labels)} labels, "
                        f"e.g. {', '.join(sorted(labels)[:5])}")
    try:
        judge = clap.ClapJudge(device=_device())
        vocab = {it.label: it.display_name or it.label for it in items}
        j = clap.judge_file(path, args.target, vocab, judge, seed=args.seed)
    except CheckpointError:
        offline = OfflineClassifier({it.label: it.references for it in items if it.references})
        j = offline.judge_file(path, args.target, seed=args.seed)
    emit(_flat(j))
    return 0


def cmd_validate(args) -> int:
    from tasks.judges import validate

    emit(validate.run(device=_device()))
    return 0
