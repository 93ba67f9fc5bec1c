"""Judge throughput on CPU (clips/s), and our Fréchet distance against fadtk's and frechet-audio-distance's.

    .venv/bin/python -m tests.bench.judges_bench [--clips 24] [--device cpu|cuda] [--out FILE.json]

Clips: 4 s synthesised notes (harmonic tones across the range) and espeak-ng words, written to a
temporary folder. VGGish and CLAP run with random weights in the real architectures (no weights can be
downloaded here): the speed is the real models', the outputs mean nothing. fadtk and
frechet-audio-distance cannot be installed beside this project (both pin numpy<2; fadtk also
transformers<5 and laion-clap); their Fréchet functions are read from their PyPI wheels (pip download
--no-deps, no install) and run on the same embeddings as ours.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from tasks.judges import audio, fad, frechet, gate
from tasks.judges.cache import JudgementCache
from tests.judges_audio import SYNTH_CLASSES, espeak, synth_class, tone, write

THIRD_PARTY = {  # wheel, file inside it, function name
    "fadtk-1.1.0": ("fadtk==1.1.0", "fadtk/fad.py", "calc_frechet_distance"),
    "frechet-audio-distance-0.3.4": ("frechet-audio-distance==0.3.4", "frechet_audio_distance/fad.py",
                                     "calculate_frechet_distance"),
}


def third_party_frechet(cache: Path) -> dict:
    """The libraries' own Fréchet functions, compiled from their wheels; {} where pip cannot fetch them."""
    import logging

    from numpy.lib.scimath import sqrt as scisqrt
    from scipy import linalg

    out = {}
    for name, (req, member, func) in THIRD_PARTY.items():
        d = cache / name
        if (d / member).is_file():  # the one source file, unpacked from the wheel beforehand
            src = (d / member).read_text()
        elif not list(d.glob("*.whl")):
            d.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--timeout", "10",
                                "--retries", "0", "-d", str(d), req],
                               check=False, capture_output=True, text=True)
            if r.returncode:
                out[name] = f"pip download failed: {r.stderr.strip()[-200:]}"
                continue
        if not (d / member).is_file():
            src = zipfile.ZipFile(next(d.glob("*.whl"))).read(member).decode()
        node = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == func)
        if node.args.args and node.args.args[0].arg == "self":
            node.args.args = node.args.args[1:]
        ns = {"np": np, "linalg": linalg, "scisqrt": scisqrt, "log": logging.getLogger(name)}
        code = compile(ast.Module([node], []), f"{name}:{member}", "exec")
        exec(code, ns)  # noqa: S102 - the libraries' own function, from their published wheels
        out[name] = ns[func]
    return out


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds > 0 else float("inf")


def timed(fn, *args, **kw):
    t = time.perf_counter()
    r = fn(*args, **kw)
    return r, time.perf_counter() - t


def make_clips(root: Path, n: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, str]]]:
    notes = []
    for i in range(n):
        midi = 36 + (i * 7) % 48
        hz = 440 * 2 ** ((midi - 69) / 12)
        notes.append((write(root / "notes" / f"{i}.wav", tone(hz, 4.0, harmonics=1 + i % 6)), midi))
    words = ["yes", "no", "up", "down", "left", "right", "three", "four", "house", "bird", "marvin", "go"]
    speech = [(p, w) for w in words[:n] if (p := espeak(w, root / "words" / f"{w}.wav")) is not None]
    return notes, speech


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--skip", default="", help="comma list: vggish,clap,pitch-full")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    import torch

    res: dict = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                 "clips": args.clips, "clips_per_s": {}, "notes": {}}
    if args.device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes, words = make_clips(root, args.clips)
        paths = [p for p, _ in notes]
        cache = JudgementCache(root / "judgements")
        cps = res["clips_per_s"]

        _, t = timed(lambda: [gate.check(p) for p in paths])
        cps["gate"] = rate(len(paths), t)

        from tasks.judges.embeddings import LogMelStats, VGGishEmbedding, embed_files

        waves = [audio.prepare(p, 16000) for p in paths]
        _, t = timed(LogMelStats().embed, waves)
        cps["embed/logmel-stats"] = rate(len(paths), t)

        if "vggish" not in skip:
            from tasks.judges import vggish

            ckpt = root / vggish.CHECKPOINT_NAME
            torch.save(vggish.build_model().state_dict(), ckpt)
            emb = VGGishEmbedding(ckpt, device=args.device)
            emb.embed(waves[:2])  # warm-up
            _, t = timed(emb.embed, waves)
            cps["embed/vggish (random weights)"] = rate(len(paths), t)
        from tasks.judges import pitch

        for model in ("tiny", "full"):
            if model == "full" and "pitch-full" in skip:
                continue
            sub = notes if model == "tiny" or args.device != "cpu" else notes[:3]
            pitch.judge_file(sub[0][0], sub[0][1], model=model, device=args.device, cache=JudgementCache(root / "warm"))
            run = lambda sub=sub, model=model: [
                pitch.judge_file(p, m, model=model, device=args.device, cache=cache) for p, m in sub]
            js, t = timed(run)
            name = pitch.judge_name(model)
            cps[f"{name} (one by one)"] = rate(len(sub), t)
            _, t2 = timed(run)
            cps[f"{name} (cached rerun)"] = rate(len(sub), t2)
            batch_cache = JudgementCache(root / f"pitch-batch-{model}")
            _, t3 = timed(pitch.judge_files, [p for p, _ in sub], [m for _, m in sub], model=model, device=args.device,
                          cache=batch_cache)
            cps[f"{name} (one batch: judge_files)"] = rate(len(sub), t3)
            res["notes"][f"{name} within 50c"] = round(float(np.mean([bool(j.correct) for j in js])), 3)

        if words:
            from tasks.judges import speech

            speech.judge_file(words[0][0], words[0][1], cache=JudgementCache(root / "warm"))
            js, t = timed(lambda: [speech.judge_file(p, w, cache=cache) for p, w in words])
            cps["speech/pocketsphinx"] = rate(len(words), t)
            res["notes"]["speech-5way-accuracy-espeak"] = round(float(np.mean([bool(j.correct) for j in js])), 3)

        from tasks.judges.classify import OfflineClassifier

        bank = {k: [write(root / "bank" / k / f"{i}.wav", synth_class(k, i)) for i in range(4)] for k in SYNTH_CLASSES}
        clf = OfflineClassifier(bank, cache_dir=root / "emb")
        queries = [write(root / "q" / f"{i}.wav", synth_class(SYNTH_CLASSES[i % 6], 50 + i)) for i in range(args.clips)]
        _, t = timed(lambda: [clf.judge_file(q, SYNTH_CLASSES[i % 6], cache=cache) for i, q in enumerate(queries)])
        cps["classify/offline-audio-knn"] = rate(len(queries), t)

        if "clap" not in skip:
            try:
                cps["classify/clap (random weights, htsat-unfused size)"] = bench_clap(root, paths, args.device)
            except Exception as exc:  # noqa: BLE001 - a bench reports, it does not stop
                res["notes"]["clap"] = f"{type(exc).__name__}: {exc}"

        # Fréchet: ours against the libraries' functions on the same embeddings
        ref_emb = embed_files(LogMelStats(), paths, cache_dir=root / "emb")
        rng = np.random.default_rng(0)
        fr = {}
        for label, (a, b) in {
            "logmel-stats notes (128-d)": (np.concatenate(ref_emb[::2]), np.concatenate(ref_emb[1::2])),
            "gaussian 128-d, 500 vs 500": (rng.standard_normal((500, 128)), rng.standard_normal((500, 128)) + 0.1),
        }.items():
            row = {}
            ours, t = timed(frechet.fd_embeddings, a, b)
            row["audioprobe"] = {"fd": round(ours, 6), "ms": round(1000 * t, 2)}
            mu1, s1 = frechet.stats(a)
            mu2, s2 = frechet.stats(b)
            wheels = Path(os.environ.get("AUDIOPROBE_FAD_WHEELS", Path.home() / ".cache" / "audioprobe" / "wheels" / "fad-compare"))
            for name, fn in third_party_frechet(wheels).items():
                if isinstance(fn, str):
                    row[name] = fn
                    continue
                try:
                    v, t = timed(fn, mu1, s1, mu2, s2)
                    row[name] = {"fd": round(float(np.real(v)), 6), "ms": round(1000 * t, 2)}
                except Exception as exc:  # noqa: BLE001
                    row[name] = f"{type(exc).__name__}: {exc}"
            fr[label] = row
        res["frechet"] = fr
        _, t = timed(fad.score_sets, ref_emb[::2], ref_emb[1::2], label="x", embedding="logmel-stats-v1")
        res["notes"]["score_sets incl. 200-draw bootstrap + baseline (s)"] = round(t, 2)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return res


def bench_clap(root: Path, paths: list[Path], device: str) -> float:

    from tasks.judges import clap, compat

    ClapModel, ClapProcessor = compat.import_transformers_clap()
    from transformers import ClapConfig, ClapFeatureExtractor, RobertaTokenizer

    folder = root / "clap-random"
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for c in [chr(i) for i in range(33, 127)] + ["Ġ"]:
        vocab.setdefault(c, len(vocab))
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tok = RobertaTokenizer(vocab_file=str(root / "vocab.json"), merges_file=str(root / "merges.txt"))
    cfg = ClapConfig(text_config={"vocab_size": len(vocab)}, audio_config={"enable_fusion": False})
    ClapModel(cfg).save_pretrained(folder)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tok).save_pretrained(folder)
    judge = clap.ClapJudge(folder, device=device)
    vocab200 = {f"l{i}": f"label {i}" for i in range(200)}
    cache = JudgementCache(root / "clapcache")
    clap.judge_file(paths[0], "l0", vocab200, judge, cache=JudgementCache(root / "warm-clap"))  # warm + text embeddings
    n = min(len(paths), 12)
    _, t = timed(lambda: [clap.judge_file(p, f"l{i}", vocab200, judge, cache=cache) for i, p in enumerate(paths[:n])])
    return rate(n, t)


if __name__ == "__main__":
    main()
