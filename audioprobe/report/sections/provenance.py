"""Sections 6 and 7: one row per item, token usage, and what made the numbers (provenance)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd

from audioprobe.report.sections.common import Row, frame, tier_names
from audioprobe.report.sections.overview import stored_failure
from audioprobe.schema import RunManifest
from tasks import taxonomy


def items(rows: list[Row]) -> pd.DataFrame:
    records = []
    for r in rows:
        o = r.outcome
        kind, detail = stored_failure(o)
        g, e, gate = o.generation, o.execution, o.gate
        rec = {
            "run": r.run_id,
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
    order = df["tier"].map({t: i for i, t in enumerate(tier_names(list(df["tier"].unique())))})
    return (
        df.assign(_o=order).sort_values(["run", "model", "_o", "method", "item", "sample"]).drop(columns="_o")
    )


def usage(rows: list[Row]) -> pd.DataFrame:
    groups: dict[tuple, list] = {}
    for r in rows:
        if r.outcome.generation is not None:
            groups.setdefault((r.run_id, r.outcome.model), []).append(r.outcome.generation)
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
    return frame(
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
                    r.run_id,
                    o.item.tier,
                    o.method,
                    o.prompt.template,
                    o.prompt.template_sha256[:12],
                    "yes" if o.prompt.contract_line else "no",
                )
            ] += 1
        if o.gate:
            gates[(r.run_id, o.gate.gate_version or "?")] += 1
        for j in o.judgements:
            rec = judges.setdefault(
                (r.run_id, j.judge, j.judge_version),
                {"n": 0, "errors": 0, "cached": 0, "params": json.dumps(j.params, sort_keys=True)},
            )
            rec["n"] += 1
            rec["errors"] += j.error is not None
            rec["cached"] += j.cached
    judge_df = frame(
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
    prompt_df = frame(
        [
            dict(zip(["run", "tier", "method", "template", "sha256", "contract_line", "n"], k + (v,)))
            for k, v in sorted(prompts.items())
        ],
        ["run", "tier", "method", "template", "sha256", "contract_line", "n"],
    )
    sources: Counter = Counter()
    for r in rows:
        if r.outcome.item.description_source:
            sources[(r.run_id, r.outcome.item.tier, r.outcome.item.description_source)] += 1
    versions = []
    for m in manifests:
        for (run, tier, source), n in sorted(sources.items()):
            if run == m.run_id:
                versions.append({"run": run, "what": f"{tier} descriptions", "version": f"{source} ({n} outcomes)"})
        for name, value in sorted(m.versions.items()):
            versions.append({"run": m.run_id, "what": name, "version": value})
        for (run, gv), n in sorted(gates.items()):
            if run == m.run_id:
                versions.append({"run": run, "what": "audio gate", "version": f"{gv} ({n} clips)"})
    return judge_df, prompt_df, frame(versions, ["run", "what", "version"])


def sandbox_packages() -> pd.DataFrame:
    """What the sandbox has installed (its pinned requirements): what a 'missing module' is missing from."""
    packages = [{"package": n, "version": v} for n, v in taxonomy.sandbox_packages()]
    return frame(packages, ["package", "version"])
