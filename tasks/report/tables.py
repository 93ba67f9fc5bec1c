"""From run records to the report's numbers: a pure function of RunStores, returning pandas tables.

Every count is derived from the ItemOutcome records themselves (generation, execution, gate,
judgements) and FADResults, so a report can be rebuilt from a run directory at any time. Every rate
carries its N and a Wilson 95% interval; every judged number names the judge (and version) that made it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audioprobe.schema import TIERS, ItemOutcome, RunManifest
from tasks import taxonomy
from tasks.records import RunStore, outcome_key
from tasks.report import paper
from tasks.report import protocols
from tasks.taxonomy import FAILURES

# The failure taxonomy is tasks.taxonomy's; the report adds "pending" (a record not finished yet) and
# "ok" (valid audio, judged).
KINDS = (*FAILURES, "pending", "ok")
KIND_LABELS = {
    "llm_error": "LLM error",
    "not_attempted": "not attempted (model unavailable)",
    "no_code": "no code",
    "truncated": "cut at max_tokens",
    "syntax": "syntax error",
    "missing_module": "missing module",
    "bad_import": "bad import (invented API)",
    "runtime": "runtime error",
    "timeout": "timeout",
    "memory": "out of memory",
    "no_output": "no output file",
    "output_rejected": "output rejected",
    "invalid_audio": "invalid audio",
    "judge_error": "judge error",
    "infrastructure": "Docker / orchestration",
    "pending": "not finished",
    "ok": "valid audio",
}
PITCH_TOLERANCE_CENTS = 50.0  # nearest semitone right: the note a listener would name
GROUP = ["run", "model", "tier", "method"]


@dataclass(eq=False)  # identity: comparing whole outcomes field by field is slow and never wanted
class Row:
    """One outcome with where it came from: its run, store and key."""

    run: str
    store: RunStore
    outcome: ItemOutcome

    @property
    def key(self) -> str:
        o = self.outcome
        return outcome_key(o.model, o.method, o.item.id, o.sample)


@dataclass
class ReportTables:
    runs: list[RunManifest]
    rows: list[Row]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def classify_failure(o: ItemOutcome) -> tuple[str, str]:
    """(kind, detail): tasks.taxonomy's first failure, with what the records say about it."""
    kind = taxonomy.classify_failure(o) or (o.failure if o.failure in FAILURES else None)
    if kind is None:
        if o.gate is not None and o.gate.ok:
            return "ok", ""
        return "pending", "not executed" if o.generation and o.execution is None else o.stage_reached
    return kind, _detail(o, kind)


def _detail(o: ItemOutcome, kind: str) -> str:
    g, e = o.generation, o.execution
    if kind == "llm_error":
        return ": ".join(x for x in ((g.error_kind, g.error) if g else (o.error,)) if x)
    if kind == "no_code":
        return g.extraction_status if g else ""
    if kind == "missing_module":
        return (e.missing_module if e else None) or "?"
    if kind == "bad_import" and e:
        last = e.stderr_tail.strip().splitlines()[-1:]
        return last[0][:160] if last else "ImportError"
    if kind in ("syntax", "runtime") and e:
        return e.error_type or f"exit {e.exit_code}"
    if kind in ("timeout", "memory") and e:
        return f"{e.wall_s:.1f} s"
    if kind in ("no_output", "output_rejected") and e:
        return "; ".join(e.rejected)
    if kind == "invalid_audio" and o.gate:
        return ", ".join(o.gate.problems)
    if kind == "judge_error":
        return "; ".join(f"{j.judge}: {j.error}" for j in o.judgements if j.error)
    return o.error or ""


def _stages(o: ItemOutcome) -> tuple[bool, bool, bool]:
    g = o.generation
    generated = bool(g and g.code and not g.error and g.extraction_status != "llm_error")
    executed = bool(o.execution and o.execution.status == "ok")
    valid = bool(o.gate and o.gate.ok)
    return generated, executed, valid


def _judgements(o: ItemOutcome, prefix: str):
    return [j for j in o.judgements if j.judge.startswith(prefix) and j.error is None]


def _judge_names(judgements) -> str:
    return ", ".join(sorted({f"{j.judge} {j.judge_version}".strip() for j in judgements}))


def _num(x) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=columns) if records else pd.DataFrame(columns=columns)


def _rate_cols(record: dict, k: int, n: int, name: str) -> None:
    record[f"{name}_rate"] = k / n if n else None
    lo, hi = wilson(k, n)
    record[f"{name}_ci_lo"], record[f"{name}_ci_hi"] = lo, hi


# --------------------------------------------------------------------------- tables


def overview(rows: list[Row]) -> pd.DataFrame:
    groups: dict[tuple, list[ItemOutcome]] = {}
    for r in rows:
        o = r.outcome
        groups.setdefault((r.run, o.model, o.item.tier, o.method), []).append(o)
    records = []
    for (run, model, tier, method), outs in sorted(groups.items()):
        flags = [_stages(o) for o in outs]
        n = len(outs)
        rec = {
            "run": run,
            "model": model,
            "tier": tier,
            "method": method,
            "items": n,
            "generated": sum(f[0] for f in flags),
            "executed_ok": sum(f[1] for f in flags),
            "valid_audio": sum(f[2] for f in flags),
            "pending": sum(classify_failure(o)[0] == "pending" for o in outs),
        }
        for name in ("generated", "executed_ok", "valid_audio"):
            _rate_cols(rec, rec[name], n, name)
        records.append(rec)
    cols = (
        GROUP
        + ["items", "generated", "executed_ok", "valid_audio", "pending"]
        + [
            f"{s}_{c}"
            for s in ("generated", "executed_ok", "valid_audio")
            for c in ("rate", "ci_lo", "ci_hi")
        ]
    )
    return _frame(records, cols)


def failures(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Counts per kind, per missing module, and per detail of every other kind (error types, problems)."""
    kinds: Counter = Counter()
    modules: Counter = Counter()
    details: Counter = Counter()
    for r in rows:
        o = r.outcome
        kind, detail = classify_failure(o)
        base = (r.run, o.model, o.item.tier, o.method)
        kinds[base + (kind,)] += 1
        if kind == "missing_module":
            modules[(r.run, o.model, detail)] += 1
        elif kind == "invalid_audio":
            for problem in o.gate.problems or ["?"]:
                details[base + (kind, problem.split(":")[0].strip())] += 1
        elif kind not in ("ok", "pending"):
            details[base + (kind, detail.split("\n")[0][:120])] += 1
    kind_df = _frame(
        [dict(zip(GROUP + ["kind", "count"], k + (v,))) for k, v in sorted(kinds.items())],
        GROUP + ["kind", "count"],
    )
    kind_df["label"] = kind_df["kind"].map(KIND_LABELS)
    mod_df = _frame(
        [
            {"run": k[0], "model": k[1], "module": k[2], "count": v}
            for k, v in sorted(modules.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        ["run", "model", "module", "count"],
    )
    det_df = _frame(
        [
            dict(zip(GROUP + ["kind", "detail", "count"], k + (v,)))
            for k, v in sorted(details.items(), key=lambda kv: (kv[0][:5], -kv[1]))
        ],
        GROUP + ["kind", "detail", "count"],
    )
    return kind_df, mod_df, det_df


def fad_table(stores: list[RunStore], manifests: list[RunManifest]) -> pd.DataFrame:
    records = []
    for store, manifest in zip(stores, manifests):
        for r in store.fad():
            model, method, label = r.model, r.method, r.label
            if not model and label.count("|") == 2:  # records of a judge run by hand: "model|method|class"
                model, method, label = label.split("|")
            if not model and len(manifest.models) == 1:
                model = manifest.models[0]
            lo, hi = r.ci if r.ci else (None, None)
            records.append(
                {
                    "run": store.run_id,
                    "model": model or "?",
                    "method": method or "paper",
                    "label": label,
                    "group": r.group,
                    "fad": _num(r.fad),
                    "ci_lo": _num(lo),
                    "ci_hi": _num(hi),
                    "baseline": _num(r.baseline),
                    "n_gen": r.n_gen,
                    "n_ref": r.n_ref,
                    "embedding": r.embedding,
                    "band": r.band or paper.fad_band(_num(r.fad)),
                    "note": r.note,
                }
            )
    cols = [
        "run",
        "model",
        "method",
        "label",
        "group",
        "fad",
        "ci_lo",
        "ci_hi",
        "baseline",
        "n_gen",
        "n_ref",
        "embedding",
        "band",
        "note",
    ]
    return _frame(records, cols)


def instrument_rows(fad: pd.DataFrame, families: set[str]) -> pd.DataFrame:
    """The per-instrument scores (the paper's classes): group "instrument" where the records say so,
    else labels that are instrument families, else every label but macro averages."""
    usable = fad[fad["fad"].notna()] if len(fad) else fad
    if not len(usable):
        return usable
    if (usable["group"] == "instrument").any():
        return usable[usable["group"] == "instrument"]
    if usable["label"].isin(families).any():
        return usable[usable["label"].isin(families)]
    return usable[~usable["label"].str.lower().str.startswith(("macro", "all", "mean", "_"))]


def notes_similarity(fad: pd.DataFrame, families: set[str]) -> pd.DataFrame:
    """Figure 3: share of instrument classes (and of notes, weighted by N) in each of the paper's bands."""
    records = []
    usable = instrument_rows(fad, families)
    for (run, model, method), g in usable.groupby(["run", "model", "method"]) if len(usable) else []:
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "classes": len(g),
            "notes": int(g["n_gen"].sum()),
            "embedding": ", ".join(sorted(set(g["embedding"]))),
        }
        for band in paper.BANDS:
            sel = g[g["fad"].map(paper.fad_band) == band]
            key = band.split()[0]
            rec[f"{key}_classes"] = len(sel)
            rec[f"{key}_share"] = len(sel) / len(g)
            rec[f"{key}_notes_share"] = sel["n_gen"].sum() / rec["notes"] if rec["notes"] else None
        rec["median_fad"] = float(g["fad"].median())
        records.append(rec)
    cols = (
        ["run", "model", "method", "classes", "notes", "embedding"]
        + [f"{b.split()[0]}_{c}" for b in paper.BANDS for c in ("classes", "share", "notes_share")]
        + ["median_fad"]
    )
    return _frame(records, cols)


def pitch(rows: list[Row]) -> pd.DataFrame:
    groups: dict[tuple, list] = {}
    for r in rows:
        o = r.outcome
        if o.item.tier != "notes":
            continue
        # the pitch judge records an unmeasurable note as an error: judged, not measured
        for j in (j for j in o.judgements if j.judge.startswith("pitch") and (j.error is None or j.values)):
            groups.setdefault(
                (r.run, o.model, o.method, o.item.instrument_family or o.item.label), []
            ).append(j)
    records = []
    for (run, model, method, instrument), js in sorted(groups.items()):
        measured = [
            j
            for j in js
            if j.error is None
            and j.values.get("measurable", True)
            and _num(j.values.get("cents_error")) is not None
        ]
        cents = [abs(_num(j.values["cents_error"])) for j in measured]
        correct = sum(_pitch_correct(j) for j in measured)
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "instrument": instrument,
            "judged": len(js),
            "measurable": len(measured),
            "correct": correct,
            "octave_errors": sum(bool(j.values.get("octave_error")) for j in measured),
            "median_abs_cents": float(np.median(cents)) if cents else None,
            "tolerance_cents": PITCH_TOLERANCE_CENTS,
            "judge": _judge_names(js),
        }
        _rate_cols(rec, correct, len(measured), "accuracy")
        records.append(rec)
    cols = [
        "run",
        "model",
        "method",
        "instrument",
        "judged",
        "measurable",
        "correct",
        "accuracy_rate",
        "accuracy_ci_lo",
        "accuracy_ci_hi",
        "octave_errors",
        "median_abs_cents",
        "tolerance_cents",
        "judge",
    ]
    return _frame(records, cols)


def _pitch_correct(j) -> bool:
    if j.correct is not None:
        return bool(j.correct)
    return abs(_num(j.values.get("cents_error")) or 1e9) <= PITCH_TOLERANCE_CENTS


def environmental(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 1 per model x method, and Figure 4: the confidences of correctly classified clips."""
    groups: dict[tuple, list[ItemOutcome]] = {}
    for r in rows:
        if r.outcome.item.tier == "environmental":
            groups.setdefault((r.run, r.outcome.model, r.outcome.method), []).append(r.outcome)
    table, confs = [], {}
    for (run, model, method), outs in sorted(groups.items()):
        js = [j for o in outs for j in _judgements(o, "classify")]
        correct = [j for j in js if j.correct]
        conf = [c for c in (_num(j.values.get("confidence")) for j in correct) if c is not None]
        expected = [c for c in (_num(j.values.get("expected_accuracy")) for j in js) if c is not None]
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "items": len(outs),
            "wav_produced": sum(_stages(o)[1] for o in outs),
            "valid_audio": sum(_stages(o)[2] for o in outs),
            "judged": len(js),
            "correct": len(correct),
            "mean_conf_correct": float(np.mean(conf)) if conf else None,
            "mean_expected_accuracy": float(np.mean(expected)) if expected else None,
            "chance": 0.2,
            "judge": _judge_names(js),
        }
        _rate_cols(rec, len(correct), len(js), "accuracy")
        table.append(rec)
        confs[(run, model, method)] = conf
        confs.setdefault((run, model, "all"), []).extend(conf)
        confs.setdefault(("all", "all", "all"), []).extend(conf)
    hist, stats = [], []
    for (run, model, method), conf in sorted(confs.items()):
        counts, _ = (
            np.histogram(np.clip(conf, 0, 1), bins=paper.CONF_BINS) if conf else (np.zeros(4, int), None)
        )
        for label, c in zip(paper.CONF_BIN_LABELS, counts):
            hist.append(
                {
                    "run": run,
                    "model": model,
                    "method": method,
                    "bin": label,
                    "count": int(c),
                    "share": c / len(conf) if conf else None,
                }
            )
        stats.append(
            {
                "run": run,
                "model": model,
                "method": method,
                "n": len(conf),
                "max": max(conf) if conf else None,
                "min": min(conf) if conf else None,
                "mean": float(np.mean(conf)) if conf else None,
                "median": float(np.median(conf)) if conf else None,
            }
        )
    t_cols = [
        "run",
        "model",
        "method",
        "items",
        "wav_produced",
        "valid_audio",
        "judged",
        "correct",
        "accuracy_rate",
        "accuracy_ci_lo",
        "accuracy_ci_hi",
        "mean_conf_correct",
        "mean_expected_accuracy",
        "chance",
        "judge",
    ]
    return (
        _frame(table, t_cols),
        _frame(hist, ["run", "model", "method", "bin", "count", "share"]),
        _frame(stats, ["run", "model", "method", "n", "max", "min", "mean", "median"]),
    )


def speech(rows: list[Row]) -> tuple[pd.DataFrame, pd.DataFrame]:
    groups: dict[tuple, list[ItemOutcome]] = {}
    texts = []
    for r in rows:
        o = r.outcome
        if o.item.tier != "speech":
            continue
        groups.setdefault((r.run, o.model, o.method), []).append(o)
        for j in _judgements(o, "speech"):
            texts.append(
                {
                    "run": r.run,
                    "model": o.model,
                    "method": o.method,
                    "item": o.item.id,
                    "word": o.item.label,
                    "chosen": j.values.get("chosen"),
                    "correct": j.correct,
                    "text": j.values.get("text"),
                    "choices": json.dumps(j.values.get("choices")),
                    "judge": f"{j.judge} {j.judge_version}".strip(),
                }
            )
    acc = []
    for (run, model, method), outs in sorted(groups.items()):
        js = [j for o in outs for j in _judgements(o, "speech")]
        k = sum(bool(j.correct) for j in js)
        rec = {
            "run": run,
            "model": model,
            "method": method,
            "items": len(outs),
            "valid_audio": sum(_stages(o)[2] for o in outs),
            "judged": len(js),
            "correct": k,
            "chance": 0.2,
            "judge": _judge_names(js),
        }
        _rate_cols(rec, k, len(js), "accuracy")
        acc.append(rec)
    a_cols = [
        "run",
        "model",
        "method",
        "items",
        "valid_audio",
        "judged",
        "correct",
        "accuracy_rate",
        "accuracy_ci_lo",
        "accuracy_ci_hi",
        "chance",
        "judge",
    ]
    t_cols = ["run", "model", "method", "item", "word", "chosen", "correct", "text", "choices", "judge"]
    return _frame(acc, a_cols), _frame(texts, t_cols)


def items(rows: list[Row]) -> pd.DataFrame:
    records = []
    for r in rows:
        o = r.outcome
        kind, detail = classify_failure(o)
        g, e, gate = o.generation, o.execution, o.gate
        rec = {
            "run": r.run,
            "model": o.model,
            "tier": o.item.tier,
            "method": o.method,
            "item": o.item.id,
            "label": o.item.label,
            "sample": o.sample,
            "kind": kind,
            "detail": detail,
            "stage": o.stage_reached,
            "extraction": g.extraction_status if g else None,
            "exec_status": e.status if e else None,
            "wall_s": e.wall_s if e else None,
            "gate_ok": gate.ok if gate else None,
            "gate_problems": ", ".join(gate.problems) if gate else None,
            "duration_s": gate.duration_s if gate else None,
            "tokens_in": g.tokens_in if g else None,
            "tokens_out": g.tokens_out if g else None,
            "cost": g.cost if g else None,
            "key": r.key,
        }
        for j in o.judgements:
            prefix = j.judge.split("/")[0]
            rec[f"{prefix}_judge"] = f"{j.judge} {j.judge_version}".strip()
            rec[f"{prefix}_correct"] = j.correct
            if j.error:
                rec[f"{prefix}_error"] = j.error
            for name in ("f0_hz", "cents_error", "confidence", "chosen", "text"):
                if name in j.values:
                    rec[f"{prefix}_{name}"] = j.values[name]
        records.append(rec)
    if not records:
        return pd.DataFrame(columns=["run", "model", "tier", "item"])
    df = pd.DataFrame.from_records(records)
    order = df["tier"].map({t: i for i, t in enumerate(TIERS)})
    return (
        df.assign(_o=order).sort_values(["run", "model", "_o", "method", "item", "sample"]).drop(columns="_o")
    )


def usage(rows: list[Row]) -> pd.DataFrame:
    groups: dict[tuple, list] = {}
    for r in rows:
        if r.outcome.generation is not None:
            groups.setdefault((r.run, r.outcome.model), []).append(r.outcome.generation)
    records = []
    for (run, model), gens in sorted(groups.items()):
        priced = [g.cost for g in gens if g.cost is not None]
        lat = [g.latency_s for g in gens if g.latency_s is not None]
        records.append(
            {
                "run": run,
                "model": model,
                "calls": len(gens),
                "cached": sum(g.cached for g in gens),
                "tokens_in": sum(g.tokens_in or 0 for g in gens),
                "tokens_out": sum(g.tokens_out or 0 for g in gens),
                "cost": sum(priced) if priced else None,
                "priced_calls": len(priced),
                "mean_latency_s": float(np.mean(lat)) if lat else None,
            }
        )
    return _frame(
        records,
        [
            "run",
            "model",
            "calls",
            "cached",
            "tokens_in",
            "tokens_out",
            "cost",
            "priced_calls",
            "mean_latency_s",
        ],
    )


def provenance(rows: list[Row], manifests: list[RunManifest], fad: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Who made each number: judges and embeddings, prompt templates, gate and software versions."""
    judges: dict[tuple, dict] = {}
    prompts: Counter = Counter()
    gates: Counter = Counter()
    for r in rows:
        o = r.outcome
        if o.prompt:
            prompts[
                (
                    r.run,
                    o.item.tier,
                    o.method,
                    o.prompt.template,
                    o.prompt.template_sha256[:12],
                    "yes" if o.prompt.contract_line else "no",
                )
            ] += 1
        if o.gate:
            gates[(r.run, o.gate.gate_version or "?")] += 1
        for j in o.judgements:
            rec = judges.setdefault(
                (r.run, j.judge, j.judge_version),
                {"n": 0, "errors": 0, "cached": 0, "params": json.dumps(j.params, sort_keys=True)},
            )
            rec["n"] += 1
            rec["errors"] += j.error is not None
            rec["cached"] += j.cached
    judge_df = _frame(
        [{"run": k[0], "judge": k[1], "version": k[2], **v} for k, v in sorted(judges.items())],
        ["run", "judge", "version", "n", "errors", "cached", "params"],
    )
    if len(fad):
        emb = fad.groupby(["run", "embedding"]).agg(n=("label", "size"), clips=("n_gen", "sum")).reset_index()
        extra = pd.DataFrame(
            {
                "run": emb["run"],
                "judge": "fad/" + emb["embedding"],
                "version": "",
                "n": emb["n"],
                "errors": 0,
                "cached": 0,
                "params": "FAD sets; clips " + emb["clips"].astype(str),
            }
        )
        judge_df = pd.concat([judge_df, extra], ignore_index=True) if len(judge_df) else extra
    prompt_df = _frame(
        [
            dict(zip(["run", "tier", "method", "template", "sha256", "contract_line", "n"], k + (v,)))
            for k, v in sorted(prompts.items())
        ],
        ["run", "tier", "method", "template", "sha256", "contract_line", "n"],
    )
    versions = []
    for m in manifests:
        for name, value in sorted(m.versions.items()):
            versions.append({"run": m.run_id, "what": name, "version": value})
        for (run, gv), n in sorted(gates.items()):
            if run == m.run_id:
                versions.append({"run": run, "what": "audio gate", "version": f"{gv} ({n} clips)"})
    return judge_df, prompt_df, _frame(versions, ["run", "what", "version"])


# --------------------------------------------------------------------------- entry point


def build_tables(store: RunStore, compare: list[RunStore] | None = None) -> ReportTables:
    stores = [store] + list(compare or [])
    manifests = [s.manifest() for s in stores]
    rows = [Row(s.run_id, s, o) for s in stores for o in s.outcomes()]
    families = {
        r.outcome.item.instrument_family
        for r in rows
        if r.outcome.item.tier == "notes" and r.outcome.item.instrument_family
    }
    rt = ReportTables(runs=manifests, rows=rows)
    t = rt.tables
    t["overview"] = overview(rows)
    t["failures"], t["missing_modules"], t["failure_details"] = failures(rows)
    t["fad"] = fad_table(stores, manifests)
    t["notes_similarity"] = notes_similarity(t["fad"], families)
    t["pitch"] = pitch(rows)
    t["environmental_table1"], t["confidence_histogram"], t["confidence_stats"] = environmental(rows)
    t["speech"], t["speech_text"] = speech(rows)
    t["items"] = items(rows)
    t["usage"] = usage(rows)
    t["judges"], t["prompts"], t["versions"] = provenance(rows, manifests, t["fad"])
    t.update(protocols.build(stores))  # section 8: samples, repair rounds, paired comparisons
    t["skipped"] = _frame(
        [
            {"run": m.run_id, "key": s.key, "tier": s.tier, "reason": s.reason}
            for m in manifests
            for s in m.skipped
        ],
        ["run", "key", "tier", "reason"],
    )
    return rt


def resolve_audio(row: Row) -> Path | None:
    """The generated clip: the recorded path (absolute or run-relative), else files/<key>/output.wav."""
    candidates = []
    if row.outcome.audio_path:
        p = Path(row.outcome.audio_path)
        candidates += [p] if p.is_absolute() else [row.store.dir / p, p]
    candidates.append(row.store.files_dir(row.key) / "output.wav")
    return next((c for c in candidates if c.is_file()), None)
