"""`audioprobe judge validate`: every judge on the reference sets themselves.

A judge that cannot recognise real recordings cannot be trusted on generated ones. Each section gives
N, the score, its 95 % Wilson interval and `recognises`: whether the lower bound clears chance (0.2
for a 5-way choice; for pitch, half the notes within 50 cents).

- pitch: rendered notes (NSynth layout) against their MIDI pitch;
- classify (offline kNN, and CLAP when a checkpoint is configured): 5-way on every environmental
  reference clip, leave-one-out for the offline judge (the clip is not its own neighbour); most
  offline environmental classes have a single clip, so the kNN is also run leave-one-out on the
  rendered notes' 30 instrument x source classes;
- speech: 5-way on every reference word, human recordings and synthetic stand-ins apart;
- fad: per notes class, the same-distribution baseline (halves) against the FAD between classes: a
  useful embedding scores other instruments well above the baseline.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from tasks.judges import frechet
from tasks.judges.cache import JudgementCache
from tasks.stats import wilson

CHANCE = 0.2


def _rate(k: int, n: int, chance: float) -> dict:
    ci = wilson(k, n)
    ci = ci and (round(ci[0], 4), round(ci[1], 4))
    return {"n": n, "correct": k, "accuracy": round(k / n, 4) if n else None, "ci95": ci,
            "chance": chance, "recognises": bool(ci and ci[0] > chance)}


def _sample(rows: list, limit: int | None, key, seed: int = 0) -> list:
    """Up to `limit` rows, round-robin over classes so every class is represented."""
    if limit is None or len(rows) <= limit:
        return rows
    by: dict[str, list] = defaultdict(list)
    for r in rows:
        by[key(r)].append(r)
    rng = random.Random(seed)
    for v in by.values():
        rng.shuffle(v)
    out: list = []
    while len(out) < limit:
        for k in sorted(by):
            if by[k] and len(out) < limit:
                out.append(by[k].pop())
    return out


def validate_pitch(notes: list, device: str, cache: JudgementCache, limit: int | None) -> dict:
    from tasks.judges import pitch

    notes = _sample(notes, limit, key=lambda n: n.label)
    errs, octave, n_meas, unvoiced = [], 0, 0, 0
    per_family: dict[str, list[float]] = defaultdict(list)
    model = pitch.default_model(device)
    for n in notes:
        v = pitch.judge_file(n.audio, n.pitch, model=model, device=device, cache=cache).values
        if not v["measurable"]:
            continue
        n_meas += 1
        if v["cents_error"] is None:
            unvoiced += 1
            continue
        errs.append(abs(v["cents_error"]))
        octave += bool(v["octave_error"])
        per_family[n.family].append(abs(v["cents_error"]) <= pitch.CORRECT_CENTS)
    within = sum(e <= pitch.CORRECT_CENTS for e in errs)
    out = _rate(within, n_meas, 0.5)
    out.update(judge=pitch.judge_name(model), notes=len(notes), unmeasurable=len(notes) - n_meas,
               unvoiced=unvoiced, octave_errors=octave,
               median_abs_cents=round(float(np.median(errs)), 2) if errs else None,
               within_50c_by_family={f: round(float(np.mean(v)), 3) for f, v in sorted(per_family.items())})
    return out


def validate_fad(notes: list, embedding) -> dict:
    from tasks.judges.embeddings import embed_files

    by: dict[str, list] = defaultdict(list)
    for n in notes:
        by[n.label].append(n.audio)
    labels = sorted(k for k, v in by.items() if len(v) >= 4)
    emb = {k: embed_files(embedding, by[k]) for k in labels}
    rows, wins, pairs = [], 0, 0
    for a in labels:
        base = frechet.baseline(emb[a])
        cross = [frechet.fd_embeddings(np.concatenate(emb[a]), np.concatenate(emb[b])) for b in labels if b != a]
        wins += sum(c > base for c in cross)
        pairs += len(cross)
        rows.append({"label": a, "n": len(emb[a]), "baseline": round(base, 3),
                     "other_classes_median": round(float(np.median(cross)), 3) if cross else None,
                     "other_classes_min": round(float(np.min(cross)), 3) if cross else None})
    return {"embedding": embedding.version, "classes": rows,
            "baseline_median": round(float(np.median([r["baseline"] for r in rows])), 3) if rows else None,
            "cross_median": round(float(np.median([r["other_classes_median"] for r in rows if r["other_classes_median"]])), 3) if rows else None,
            "cross_above_baseline": round(wins / pairs, 4) if pairs else None,
            "recognises": bool(pairs and wins / pairs > 0.9)}


def knn_leave_one_out(bank: dict[str, list], cache: JudgementCache, limit: int | None = None) -> dict:
    """The offline classifier on its own bank, each clip judged with itself removed."""
    from tasks.judges.classify import OfflineClassifier

    clips = _sample([(lb, p) for lb, ps in bank.items() for p in ps], limit, key=lambda r: r[0])
    offline = OfflineClassifier(bank)
    k = n = 0
    expected = []
    for lb, p in clips:
        j = offline.judge_file(p, lb, exclude_self=True, cache=cache)
        if j.error:
            continue
        n += 1
        k += bool(j.correct)
        expected.append(j.values["expected_accuracy"])
    return _rate(k, n, CHANCE) | {
        "judge": offline.name, "labels": len(bank), "clips": len(clips), "left_out_single_clip_classes": len(clips) - n,
        "expected_accuracy_mean": round(float(np.mean(expected)), 4) if expected else None,
        "protocol": "leave-one-out: the clip's own file is removed from the bank"}


def validate_classify(items: list, cache: JudgementCache, clap_judge=None, limit: int | None = None) -> dict:
    from tasks.judges import clap

    bank = {it.label: list(it.references) for it in items if it.references}
    out: dict = {"offline": knn_leave_one_out(bank, cache, limit)}
    if clap_judge is not None:
        clips = _sample([(lb, p) for lb, ps in bank.items() for p in ps], limit, key=lambda r: r[0])
        vocab = {it.label: it.display_name or it.label for it in items}
        k = 0
        expected = []
        for lb, p in clips:
            j = clap.judge_file(p, lb, vocab, clap_judge, cache=cache)
            k += bool(j.correct)
            expected.append(j.values["expected_accuracy"])
        out["clap"] = _rate(k, len(clips), CHANCE) | {
            "judge": clap_judge.name, "expected_accuracy_mean": round(float(np.mean(expected)), 4) if expected else None}
    else:
        out["clap"] = {"skipped": "no CLAP checkpoint configured (AUDIOPROBE_CLAP_CHECKPOINT)"}
    return out


def validate_speech(items: list, cache: JudgementCache) -> dict:
    from tasks.judges import speech

    groups: dict[str, list[int]] = {"human": [0, 0], "synthetic": [0, 0]}
    free = [0, 0]
    for it in items:
        human = {c.path: c.human_recording for c in getattr(it, "reference_clips", []) or []}
        for p in it.references:
            j = speech.judge_file(p, it.label, cache=cache)
            g = groups["human" if human.get(p, True) else "synthetic"]
            g[0] += bool(j.correct)
            g[1] += 1
            free[0] += j.values.get("text", "").strip().lower() == it.label
            free[1] += 1
    out = {name: _rate(k, n, CHANCE) for name, (k, n) in groups.items()}
    out["all"] = _rate(groups["human"][0] + groups["synthetic"][0], groups["human"][1] + groups["synthetic"][1], CHANCE)
    out["free_decoding_exact"] = round(free[0] / free[1], 4) if free[1] else None
    out["judge"] = speech.JUDGE
    return out


def run(refs_dir: Path | None = None, device: str = "cpu", pitch_limit: int | None = 66,
        classify_limit: int | None = None, cache: JudgementCache | None = None) -> dict:
    from tasks.judges.embeddings import LogMelStats, VGGishEmbedding
    from tasks.judges.vggish import CheckpointError
    from tasks.probesets.common import DatasetError
    from tasks.probesets.loaders import load_items, offline_root

    cache = cache or JudgementCache()
    report: dict = {"refs_dir": str(refs_dir) if refs_dir else None, "device": device}

    try:
        from tasks.probesets.nsynth import read_notes

        notes = read_notes(offline_root("notes", refs_dir))
        report["pitch"] = validate_pitch(notes, device, cache, pitch_limit)
        by_class: dict[str, list] = defaultdict(list)
        for n in notes:
            by_class[n.label].append(n.audio)
        # env classes mostly have one clip: the notes (15 per instrument x source) test the kNN mechanism
        report["classify_notes"] = knn_leave_one_out(dict(by_class), cache)
        fad = {"logmel-stats": validate_fad(notes, LogMelStats())}
        try:
            fad["vggish"] = validate_fad(notes, VGGishEmbedding(device=device, download=False))
        except CheckpointError as exc:
            fad["vggish"] = {"skipped": str(exc)}
        report["fad"] = fad
    except DatasetError as exc:
        report["pitch"] = report["fad"] = {"skipped": str(exc)}

    try:
        env, _ = load_items("environmental", refs_dir=refs_dir)
        clap_judge = None
        try:
            from tasks.judges.clap import ClapJudge

            clap_judge = ClapJudge(device=device)
        except CheckpointError:
            pass
        report["classify"] = validate_classify(env, cache, clap_judge, classify_limit)
    except DatasetError as exc:
        report["classify"] = {"skipped": str(exc)}

    try:
        words, _ = load_items("speech", refs_dir=refs_dir)
        report["speech"] = validate_speech(words, cache)
    except DatasetError as exc:
        report["speech"] = {"skipped": str(exc)}

    report["summary"] = {
        name: (sec.get("recognises") if isinstance(sec, dict) else None)
        for name, sec in [("pitch", report["pitch"]), ("fad/logmel-stats", report["fad"].get("logmel-stats") if "skipped" not in report["fad"] else {}),
                          ("classify/offline", report["classify"].get("offline", {})),
                          ("classify/offline on notes", report.get("classify_notes", {})),
                          ("speech", report["speech"].get("all", {}))]
    }
    return report
