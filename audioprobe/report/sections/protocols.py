"""The report's section on protocols beyond single shot: pass@k per stage, the repair@r curve, what feedback
fixed, truncation, the generation settings, and paired comparisons between models.

Every rate carries N and an interval that resamples whole items (tasks.stats); a comparison says "A better
than B at p<..." only where McNemar's test (Holm-corrected within its family) says so. Tables are built
from the run directories alone, so `--compare` runs are read the same way as the run itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

import pandas as pd

from audioprobe.report.sections.common import judged_correct
from audioprobe.schema import ItemOutcome
from tasks import stats
from tasks.records import Run
from tasks.repair import rounds_for

STAGES = ("code", "executed", "valid_audio", "correct")
STAGE_LABELS = {"code": "code", "executed": "executed OK", "valid_audio": "valid audio", "correct": "judged correct"}
ALPHA = 0.05
TABLES = ("pass_at_k", "repair_curve", "repair_fixes", "truncation", "generation_settings", "paired", "paired_labels")


def stage_flags(o: ItemOutcome) -> dict[str, bool | None]:
    """Each stage passed or not; "correct" is None where valid audio got no verdict (left out, not failed)."""
    gen, exe, gate = o.generation, o.execution, o.gate
    return {
        "code": bool(gen and gen.code) and o.failure not in ("llm_error", "no_code", "truncated"),
        "executed": bool(exe and exe.status == "ok"),
        "valid_audio": bool(gate and gate.ok),
        "correct": judged_correct(o),
    }


def _decided(values: list) -> list[float]:
    return [float(v) for v in values if v is not None]


def _by_round(flags: list) -> bool | None:
    """Success by round r: any round right; None only when no round got a verdict."""
    if any(f for f in flags):
        return True
    return None if all(f is None for f in flags) else False


def item_score(o: ItemOutcome) -> float:
    """A per-item judge score in [0, 1] for the paired bootstrap: 0 without valid audio."""
    judged = next((j for j in o.judgements if j.correct is not None), None)
    if not stage_flags(o)["valid_audio"] or o.failure is not None:
        return 0.0
    if judged is None:  # valid audio, no verdict: left out of the pair, as "judged correct" leaves it
        return float("nan")
    if "target_probability" in judged.values:  # 5-way classifiers: the probability given to the target
        return float(judged.values["target_probability"])
    return float(bool(judged.correct))


def _label_of(o: ItemOutcome) -> str:
    return o.item.instrument_family or o.item.label  # notes: the instrument, as FAD groups them


def _system(run: str, model: str, several_runs: bool) -> str:
    return f"{model} ({run})" if several_runs else model


def _grouped(runs: list[Run], outcomes: dict[str, list[ItemOutcome]] | None = None):
    """(run, model, tier, method) -> {(item_id, sample): {round: outcome}}, with each run's manifest.
    `outcomes`: each run's records of every round, where the caller has read them already."""
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(dict))
    manifests = {}
    for run in runs:
        manifests[run.run_id] = run.manifest
        mine = outcomes[run.run_id] if outcomes is not None else run.outcomes(all_rounds=True)
        for o in mine:
            groups[(run.run_id, o.model, o.item.tier, o.method)][(o.item.id, o.sample)][o.round] = o
    return groups, manifests


def _ci_cols(record: dict, per_item: list[list[float]], name: str) -> None:
    mean, low, high, method = stats.item_interval(per_item)
    record.update({f"{name}_rate": mean, f"{name}_ci_lo": low, f"{name}_ci_hi": high, f"{name}_ci_method": method})


def pass_at_k_table(groups) -> pd.DataFrame:
    records = []
    for (run, model, tier, method), chains in sorted(groups.items()):
        by_item: dict[str, list[ItemOutcome]] = defaultdict(list)
        for (item_id, _), rounds in chains.items():
            if 0 in rounds:
                by_item[item_id].append(rounds[0])
        if not by_item:
            continue
        k = min(len(v) for v in by_item.values())
        for stage in STAGES:
            per_item = [v for v in (_decided([stage_flags(o)[stage] for o in outs]) for outs in by_item.values()) if v]
            if not per_item:
                continue
            counts = [(len(v), int(sum(v))) for v in per_item]
            k_stage = min(k, *(n for n, _ in counts))  # samples with no verdict are left out of "correct"
            record = {"run": run, "model": model, "tier": tier, "method": method, "stage": stage,
                      "items": len(per_item), "k": k_stage, "pass_at_1": stats.mean_pass_at_k(counts, 1),
                      "pass_at_k": stats.mean_pass_at_k(counts, k_stage),
                      "always": sum(c == n for n, c in counts), "sometimes": sum(0 < c < n for n, c in counts),
                      "never": sum(c == 0 for n, c in counts)}
            _ci_cols(record, per_item, "pass_at_1")
            records.append(record)
    return pd.DataFrame(records)


def repair_curve_table(groups, manifests) -> pd.DataFrame:
    records = []
    for (run, model, tier, method), chains in sorted(groups.items()):
        rounds = rounds_for(model, manifests[run].repair_rounds)
        by_item: dict[str, list[dict]] = defaultdict(list)
        for (item_id, _), chain in chains.items():
            if 0 in chain:
                by_item[item_id].append(chain)
        for r in range(rounds + 1):
            record = {"run": run, "model": model, "tier": tier, "method": method, "round": r,
                      "answers": sum(1 for chains_ in by_item.values() for c in chains_ if r in c)}
            for stage in ("valid_audio", "correct"):
                per_item = [v for v in (
                    _decided([_by_round([stage_flags(c[q])[stage] for q in range(r + 1) if q in c]) for c in chains_])
                    for chains_ in by_item.values()) if v]
                _ci_cols(record, per_item, stage)
                record[f"{stage}_n"] = sum(len(v) for v in per_item)
                record[f"{stage}_k"] = int(sum(sum(v) for v in per_item))
            records.append(record)
    return pd.DataFrame(records)


def repair_fixes_table(groups) -> pd.DataFrame:
    """Per failure kind the feedback addressed: how often the next answer made valid audio, or was correct."""
    tallies: dict[tuple, Counter] = defaultdict(Counter)
    after: dict[tuple, Counter] = defaultdict(Counter)
    for (run, model, tier, _), chains in groups.items():
        for chain in chains.values():
            for r, o in chain.items():
                if r == 0 or not o.repaired_from:
                    continue
                key = (run, model, tier, o.repaired_from)
                flags = stage_flags(o)
                tallies[key].update(attempts=1, valid_audio=int(flags["valid_audio"]), correct=int(bool(flags["correct"])))
                after[key][o.failure or ("correct" if flags["correct"] else "wrong_sound")] += 1
    records = []
    for (run, model, tier, kind), t in sorted(tallies.items()):
        now = ", ".join(f"{k} {v}" for k, v in after[(run, model, tier, kind)].most_common(3))
        records.append({"run": run, "model": model, "tier": tier, "feedback_on": kind, "attempts": t["attempts"],
                        "now_valid_audio": t["valid_audio"], "now_correct": t["correct"], "became": now})
    return pd.DataFrame(records, columns=["run", "model", "tier", "feedback_on", "attempts", "now_valid_audio",
                                          "now_correct", "became"])


def _rounds(model: str, asked: int) -> int:
    return rounds_for(model, asked)


def truncation_and_settings(groups, manifests) -> tuple[pd.DataFrame, pd.DataFrame]:
    trunc: dict[tuple, Counter] = defaultdict(Counter)
    seen: dict[tuple, dict] = defaultdict(lambda: defaultdict(set))
    for (run, model, _, _), chains in groups.items():
        for chain in chains.values():
            for o in chain.values():
                gen = o.generation
                if gen is None:
                    continue
                trunc[(run, model)].update(answers=1, cut=int(gen.finish_reason == "length"),
                                           failed_truncated=int(o.failure == "truncated"))
                for name in ("temperature", "max_tokens", "seed"):
                    if gen.params.get(name) is not None:
                        seen[(run, model)][name].add(gen.params[name])
                seen[(run, model)]["dropped"].update(gen.dropped_params)
                if o.prompt is not None:
                    seen[(run, model)]["templates"].add(f"{o.prompt.template} ({o.prompt.template_sha256[:12]})")
    truncation = pd.DataFrame([{"run": r, "model": m, **c} for (r, m), c in sorted(trunc.items())],
                              columns=["run", "model", "answers", "cut", "failed_truncated"]).fillna(0)

    def show(values) -> str:
        return ", ".join(sorted(str(v) for v in values)) or "—"

    settings = pd.DataFrame(
        [{"run": r, "model": m, "temperature": show(s["temperature"]), "max_tokens": show(s["max_tokens"]),
          "seed": show(s["seed"]), "dropped_params": show(s["dropped"]), "samples": manifests[r].samples,
          "repair_rounds": _rounds(m, manifests[r].repair_rounds), "templates": show(s["templates"])}
         for (r, m), s in sorted(seen.items())],
        columns=["run", "model", "temperature", "max_tokens", "seed", "dropped_params", "samples", "repair_rounds",
                 "templates"],
    )
    return truncation, settings


def _mcnemar_row(base: dict, a: dict, b: dict, ids: list, flag) -> dict:
    """McNemar on the items where both systems have a verdict (flag None leaves an item out)."""
    pairs = [(flag(a[i]), flag(b[i])) for i in ids]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    test = stats.mcnemar([x for x, _ in pairs], [y for _, y in pairs])
    return base | {"items": len(pairs), "a_only": test.b, "b_only": test.c,
                   "diff": (test.b - test.c) / len(pairs) if pairs else float("nan"), "p": test.p_value,
                   "test": f"McNemar ({test.method})"}


def paired_tables(groups) -> tuple[pd.DataFrame, pd.DataFrame]:
    """McNemar per stage and per class, plus a paired bootstrap of per-item scores, for every two systems
    that answered the same items of a tier and method. Holm's correction runs over every test of the
    report at once (all pairs, tiers, methods, stages and classes): the family size is in each row."""
    several_runs = len({k[0] for k in groups}) > 1
    firsts: dict[tuple, dict[tuple, dict[str, ItemOutcome]]] = defaultdict(dict)
    for (run, model, tier, method), chains in groups.items():
        items = {item_id: chain[0] for (item_id, sample), chain in chains.items() if sample == 0 and 0 in chain}
        firsts[(tier, method)][(run, model)] = items
    overall, per_label = [], []
    for (tier, method), systems in sorted(firsts.items()):
        for (sa, a), (sb, b) in combinations(sorted(systems.items()), 2):
            common = sorted(set(a) & set(b))
            if len(common) < 2:
                continue
            name_a, name_b = _system(*sa, several_runs), _system(*sb, several_runs)
            base = {"tier": tier, "method": method, "a": name_a, "b": name_b, "items": len(common)}
            for stage in STAGES:
                overall.append(_mcnemar_row(base, a, b, common, lambda o, s=stage: stage_flags(o)[s]) | {"stage": stage})
            boot = stats.paired_bootstrap([item_score(a[i]) for i in common], [item_score(b[i]) for i in common])
            overall.append(base | {"items": boot.n, "test": "paired bootstrap", "stage": "judge score", "a_only": None,
                                   "b_only": None, "diff": boot.mean_diff, "ci_lo": boot.low, "ci_hi": boot.high,
                                   "ci_method": boot.method, "p": boot.p_value})
            for label in sorted({_label_of(a[i]) for i in common}):
                ids = [i for i in common if _label_of(a[i]) == label]
                per_label.append(_mcnemar_row(base, a, b, ids, judged_correct) | {"label": label})
    family = overall + per_label
    for row, adjusted in zip(family, stats.holm([r["p"] for r in family])):
        row["p_holm"], row["family_size"] = adjusted, len(family)
        row["verdict"] = stats.verdict(row["a"], row["b"], row["diff"], adjusted, ALPHA)
    return pd.DataFrame(overall), pd.DataFrame(per_label)


def summary_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The console's view: success by repair round beside the single shot, and the paired verdicts."""
    lines = []
    curve = tables.get("repair_curve")
    if curve is not None and len(curve) and curve["round"].max() > 0:
        for (model, tier, method), rows in curve.groupby(["model", "tier", "method"]):
            steps = " → ".join(f"r{int(r['round'])} {int(r['valid_audio_k'])}/{int(r['valid_audio_n'])}"
                               f" ({int(r['correct_k'])} correct)" for _, r in rows.iterrows())
            lines.append(f"**Valid audio by repair round, {model} / {tier} / {method}:** {steps}")
    paired = tables.get("paired")
    if paired is not None and len(paired):
        shown = paired[~paired["verdict"].str.startswith("no difference")]
        for _, r in shown.iterrows():
            stage = STAGE_LABELS.get(r["stage"], r["stage"])
            lines.append(f"**Paired, {r['tier']} / {stage}:** {r['verdict']} ({r['test']}, {r['items']} items, "
                         f"Holm over {r['family_size']} tests)")
        if not len(shown):
            lines.append(f"**Paired tests:** {len(paired)} run, none shows a difference after Holm's correction "
                         f"over the report's {int(paired['family_size'].iloc[0])} tests")
    return lines


def build(runs: list[Run], outcomes: dict[str, list[ItemOutcome]] | None = None) -> dict[str, pd.DataFrame]:
    groups, manifests = _grouped(runs, outcomes)
    t = {"pass_at_k": pass_at_k_table(groups), "repair_curve": repair_curve_table(groups, manifests),
         "repair_fixes": repair_fixes_table(groups)}
    t["truncation"], t["generation_settings"] = truncation_and_settings(groups, manifests)
    t["paired"], t["paired_labels"] = paired_tables(groups)
    return t
