"""Section 8 of the page: pass@k, repair@r, what feedback fixed, truncation, settings, paired tests."""

from __future__ import annotations

import pandas as pd

from audioprobe.report.fmt import E, num, pct, table
from audioprobe.report.sections.protocols import ALPHA, STAGE_LABELS
from audioprobe.report.tables import ReportTables
from tasks import stats


def _rate(row, name: str) -> str:
    lo, hi = row.get(f"{name}_ci_lo"), row.get(f"{name}_ci_hi")
    ci = "" if pd.isna(lo) else f" <span class=ci>[{pct(lo, 0)}–{pct(hi, 0)}]</span>"
    return f"<b>{pct(row[f'{name}_rate'], 0)}</b>{ci}"


def _p(x) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:.3g}"


def section_protocols(rt: ReportTables) -> str:
    """Section 8 of the page; rt.tables holds the tables sections/protocols.build made."""
    t = rt.tables
    if "pass_at_k" not in t:
        return ""
    many = len(rt.runs) > 1
    who = ([("run", "run")] if many else []) + [("model", "model"), ("tier", "tier"), ("method", "method")]
    passk = t["pass_at_k"]
    if len(passk):
        passk = passk.assign(stage=passk["stage"].map(STAGE_LABELS))
    pass_html = table(passk, who + [
        ("stage", "stage"), ("items", "items"), ("k", "k"), ("pass@1 [95% CI over items]", lambda r: _rate(r, "pass_at_1")),
        ("pass@k", lambda r: pct(r["pass_at_k"], 0)), ("always / sometimes / never", lambda r: f"{r['always']} / {r['sometimes']} / {r['never']}"),
    ], numeric={"items", "k"}, empty="No first answers recorded.")
    curve_html = table(t["repair_curve"], who + [
        ("round r", "round"), ("answers", "answers"),
        ("valid audio by round r", lambda r: f"{r['valid_audio_k']}/{r['valid_audio_n']} " + _rate(r, "valid_audio")),
        ("judged correct by round r (repair@r)", lambda r: f"{r['correct_k']}/{r['correct_n']} " + _rate(r, "correct")),
    ], numeric={"round r", "answers"}, empty="No rounds recorded.")
    fixes_html = table(t["repair_fixes"], ([("run", "run")] if many else []) + [
        ("model", "model"), ("tier", "tier"), ("feedback on", "feedback_on"), ("answers after it", "attempts"),
        ("now valid audio", "now_valid_audio"), ("now judged correct", "now_correct"), ("what the next answer did", "became"),
    ], numeric={"answers after it", "now valid audio", "now judged correct"},
        empty="No repair rounds in this run (--repair-rounds R asks again after a failure, with feedback).")
    trunc_html = table(t["truncation"], ([("run", "run")] if many else []) + [
        ("model", "model"), ("answers", "answers"), ("cut at max_tokens", "cut"), ("failed as truncated", "failed_truncated"),
    ], numeric={"answers", "cut at max_tokens", "failed as truncated"})
    settings_html = table(t["generation_settings"], ([("run", "run")] if many else []) + [
        ("model", "model"), ("temperature", "temperature"), ("max_tokens", "max_tokens"), ("seed", "seed"),
        ("params litellm dropped", "dropped_params"), ("samples", "samples"), ("repair rounds", "repair_rounds"),
        ("prompt templates (sha256)", "templates"),
    ])
    paired = t["paired"]
    if len(paired):
        paired = paired.assign(stage=paired["stage"].map(lambda s: STAGE_LABELS.get(s, s)))
    paired_html = table(paired, [
        ("tier", "tier"), ("method", "method"), ("A", "a"), ("B", "b"), ("items", "items"), ("stage", "stage"),
        ("test", "test"), ("A only / B only", lambda r: "—" if pd.isna(r["a_only"]) else f"{int(r['a_only'])} / {int(r['b_only'])}"),
        ("A − B", lambda r: num(r["diff"]) + ("" if pd.isna(r.get("ci_lo")) else f" <span class=ci>[{num(r['ci_lo'])}–{num(r['ci_hi'])}]</span>")),
        ("p", lambda r: _p(r["p"])), ("p (Holm over the report)", lambda r: _p(r["p_holm"])),
        ("tests in the family", "family_size"), ("verdict", lambda r: E(r["verdict"])),
    ], numeric={"items"}, empty="One system only: a second model in the run, or --compare OTHER_RUN, gives paired tests.")
    labels_html = table(t["paired_labels"], [
        ("tier", "tier"), ("A", "a"), ("B", "b"), ("class", "label"), ("items", "items"),
        ("A only / B only", lambda r: f"{int(r['a_only'])} / {int(r['b_only'])}"),
        ("p", lambda r: _p(r["p"])), ("p (Holm over the report)", lambda r: _p(r["p_holm"])),
        ("tests in the family", "family_size"), ("verdict", lambda r: E(r["verdict"])),
    ], numeric={"items"}, empty="No paired classes.")
    return (
        "<section id=protocols><h2>8. Beyond single shot: samples, repair rounds, paired comparisons</h2>"
        "<p class=note>The paper keeps each model's first answer. Here: pass@k over k samples per item "
        "(HumanEval's unbiased estimator), repair rounds where the model is told what went wrong (the "
        "sandbox's error, the gate's problems, the judge's verdict) and answers again in the same "
        "conversation, and paired tests between systems that answered the same items. Intervals resample "
        f"whole items, never clips; under {stats.MIN_BOOTSTRAP_ITEMS} items, or where every item agrees, they are "
        "Wilson's on the item count (a bootstrap would be too narrow, or zero-wide). Sections 1-7 count one vote per item: sample 0's first answer (round 0); the "
        "other samples count here only.</p>"
        "<h3>pass@1 and pass@k per stage (first answers)</h3>" + pass_html
        + "<h3>repair@r: success by round r</h3><p class=note>Round 0 is the paper's single shot; round r "
        "counts an (item, sample) as a success when any of its first r+1 answers succeeded. Program "
        "baselines answer once.</p>" + curve_html
        + "<h3>Which failures feedback fixed</h3>" + fixes_html
        + "<h3>Truncation</h3>" + trunc_html
        + "<h3>Generation settings</h3>" + settings_html
        + "<h3>Paired comparisons</h3><p class=note>McNemar's test on per-item success of sample 0's first "
        "answer (exact binomial below 25 discordant items), on the items where both have a verdict, "
        "Holm-corrected over every test in this report (every pair, tier, method, stage and class: the "
        "family size is beside each); a paired bootstrap of per-item judge scores. A direction is named only "
        f"where the corrected p &lt; {ALPHA}.</p>"
        + paired_html + "<h4>Per class (judged correct)</h4>" + labels_html + "</section>"
    )
