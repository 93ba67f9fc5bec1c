"""The report page: one self-contained HTML file (inline CSS, images and audio as data URIs, no URL),
its sections in the paper's order, the paper's own numbers quoted beside ours."""

from __future__ import annotations

import json

from audioprobe.report import paper, protocols
from audioprobe.report.fmt import (
    CSS,
    E,
    ReportLimits,
    _isnull,
    _paper_rows,
    _rows,
    num,
    pct,
    quote,
    rate,
    table,
    who_columns,
)
from audioprobe.report.html_notes import section_notes
from audioprobe.report.html_tiers import section_environmental, section_speech
from audioprobe.report.human_calibration import section_human_calibration
from audioprobe.report.items import section_items
from audioprobe.report.sections.reference_points import section_reference_points
from audioprobe.report.tables import KIND_LABELS, KINDS, ReportTables
from audioprobe.schema import TIERS

__all__ = ["ReportLimits", "render"]


def section_overview(rt: ReportTables) -> str:
    ov = rt["overview"]
    who = who_columns(rt)
    pad = [""] * (len(who) - 1)
    cols = who + [
        ("tier", "tier"),
        ("method", "method"),
        ("items", "items"),
        ("generated (code)", lambda r: rate(r, "generated", "generated")),
        ("executed OK", lambda r: rate(r, "executed_ok", "executed_ok")),
        ("valid audio (gate)", lambda r: rate(r, "valid_audio", "valid_audio")),
    ]
    tag = "<span class=tag>paper</span> "
    prows = {
        "notes": [
            pad
            + [
                tag + p["model"],
                "notes",
                "paper",
                "1,500",
                "—",
                f"{p['generated']} <b>{p['generated'] / 15:.1f}%</b>",
                "—",
            ]
            for p in paper.NOTES_GENERATED
        ],
        "environmental": [
            pad
            + [
                tag + p["model"],
                "environmental",
                p["method"],
                "200",
                "—",
                f"{p['generated']} <b>{p['generated'] / 2:.1f}%</b>",
                "—",
            ]
            for p in paper.TABLE1
        ],
        "speech": [pad + [tag + "3 models", "speech", "paper", "35 words", "—", "0", "—"]],
    }
    numeric = {"items", "generated (code)", "executed OK", "valid audio (gate)"}
    body = []
    for tier in TIERS:  # each tier's rows, then the paper's for that tier
        ours = ov[ov["tier"] == tier] if len(ov) else ov
        if len(ours):
            body += _rows(ours, cols, numeric) + _paper_rows(prows[tier], cols, numeric)
    return (
        "<section id=overview><h2>1. Generated, executed, valid audio</h2>"
        "<p class=note>Per model, tier and prompt method. <i>generated</i>: a program was extracted from the "
        "answer; <i>executed OK</i>: it ran in the sandbox and wrote its WAV; <i>valid audio</i>: the WAV "
        "passed the audio gate (readable, right rate and length, not silent, not clipped, finite). Rates are "
        "of all items, with Wilson 95% intervals. Yellow rows quote the WAV files the paper reported for its "
        "models, under <i>executed OK</i>.</p>" + table(ov, cols, numeric=numeric, body=body) + "</section>"
    )


def section_failures(rt: ReportTables) -> str:
    kinds = rt["failures"]
    who = who_columns(rt)
    if kinds.empty:
        return "<section id=failures><h2>2. Failure taxonomy</h2><p class=note>No items.</p></section>"
    pivot = kinds.pivot_table(
        index=[c for c, _ in who] + ["tier", "method"],
        columns="kind",
        values="count",
        aggfunc="sum",
        fill_value=0,
    ).reset_index()
    for k in KINDS:
        if k not in pivot:
            pivot[k] = 0

    def cell(k):
        return lambda r: "<span class=zero>0</span>" if not r[k] else f"<b>{int(r[k])}</b>"

    shown = [k for k in KINDS if k == "ok" or pivot[k].any()]  # a column of zeros says less than a line
    never = [KIND_LABELS[k] for k in KINDS if k not in shown and k != "pending"]
    never_note = f"<p class=note>No item failed by: {E(', '.join(never))}.</p>" if never else ""
    cols = who + [("tier", "tier"), ("method", "method")] + [(KIND_LABELS[k], cell(k)) for k in shown]
    det_cols = who + [
        ("tier", "tier"),
        ("method", "method"),
        ("kind", lambda r: KIND_LABELS[r["kind"]]),
        ("detail", "detail"),
        ("count", "count"),
    ]
    mods = rt["missing_modules"]
    det = rt["failure_details"]
    return (
        "<section id=failures><h2>2. Failure taxonomy</h2>"
        "<p class=note>Each item counted once, at the first stage that failed (LLM call, code extraction, "
        "sandbox run, audio gate, judges), derived from its generation, execution, gate and judgement "
        "records.</p>"
        + table(pivot, cols, numeric={KIND_LABELS[k] for k in KINDS}, cls="kinds")
        + never_note
        + "<h3>Missing modules</h3><p class=note>Imports the sandbox does not have, by module name: "
        "<i>not_installed</i>, a real package the sandbox lacks (importable on this host, or on PyPI); "
        "<i>hallucinated</i>, no such package on PyPI; <i>unknown</i>, offline and not known here (set "
        "check_package_index to ask PyPI). The sandbox's packages are listed under section 7.</p>"
        + table(
            mods,
            who + [("module", lambda r: f"<code>{E(r['module'])}</code>"), ("count", "count"),
                   ("real or invented", "status"), ("how we know", "how")],
            numeric={"count"},
            empty="No program imported a missing module.",
        )
        + quote("failures")
        + "<h3>What else went wrong</h3>"
        + "<p class=note>Error types, rejected outputs and the gate's problems.</p>"
        + f"<div class=scroll>{table(det, det_cols, numeric={'count'}, empty='Nothing else failed.')}</div>"
        + "</section>"
    )


def section_provenance(rt: ReportTables, limits: ReportLimits) -> str:
    who = who_columns(rt)
    runs = "".join(
        f"<tr><td>{E(m.run_id)}</td><td>{E(m.created[:16].replace('T', ' '))} → "
        f"{E(m.finished[:16].replace('T', ' ') if m.finished else 'not finished')}</td>"
        f"<td>{E(', '.join(m.models))}</td><td>{E(', '.join(m.tiers))}</td>"
        f"<td>{E('; '.join(f'{t}: {chr(44).join(v)}' for t, v in m.methods.items()))}</td>"
        f"<td class=n>{m.samples}</td>"
        f"<td class=n>{m.limit if m.limit is not None else 'all'}</td><td class=n>{m.seed}</td>"
        f"<td>{E(m.dataset_root or 'offline reference sets')}</td>"
        f"<td><code>{E(m.config_hash[:8])}</code></td></tr>"
        for m in rt.runs
    )
    usage = rt["usage"]
    ucols = who + [
        ("calls", "calls"),
        ("cached", "cached"),
        ("tokens in", lambda r: num(r["tokens_in"], 0)),
        ("tokens out", lambda r: num(r["tokens_out"], 0)),
        (
            "cost (USD)",
            lambda r: (
                "unpriced"
                if _isnull(r["cost"])
                else f"${r['cost']:.4f} ({int(r['priced_calls'])} priced calls)"
            ),
        ),
        ("mean latency", lambda r: num(r["mean_latency_s"]) + " s"),
    ]
    settings = "".join(
        f"<details><summary>settings of {E(m.run_id)}</summary><pre>"
        f"{E(json.dumps(m.settings, indent=1, default=str))}</pre></details>"
        for m in rt.runs
    )
    return (
        "<section id=provenance><h2>7. What made these numbers</h2>"
        "<table><thead><tr><th>run</th><th>started → finished (UTC)</th><th>models</th><th>tiers</th>"
        "<th>methods</th><th>samples</th><th>limit</th><th>seed</th><th>data</th><th>config</th></tr></thead>"
        f"<tbody>{runs}</tbody></table>"
        "<h3>Tokens and cost</h3>"
        + table(usage, ucols, numeric={"calls", "cached", "tokens in", "tokens out"})
        + "<h3>Judges and embeddings</h3>"
        + table(
            rt["judges"],
            [
                ("run", "run"),
                ("judge", "judge"),
                ("version", "version"),
                ("N", "n"),
                ("errors", "errors"),
                ("cached", "cached"),
                ("parameters", "params"),
            ],
            numeric={"N", "errors", "cached"},
        )
        + "<h3>Prompt templates</h3>"
        + table(
            rt["prompts"],
            [
                ("run", "run"),
                ("tier", "tier"),
                ("method", "method"),
                ("template", "template"),
                ("sha256", "sha256"),
                ("output contract", "contract_line"),
                ("N", "n"),
            ],
            numeric={"N"},
        )
        + "<h3>Versions</h3>"
        + table(rt["versions"], [("run", "run"), ("what", "what"), ("version", "version")])
        + "<h3>Installed in the sandbox</h3>"
        + table(rt["sandbox_packages"], [("package", "package"), ("version", "version")])
        + "<h3>Skipped items</h3>"
        + table(
            rt["skipped"],
            [("run", "run"), ("tier", "tier"), ("key", "key"), ("reason", "reason")],
            empty="None skipped.",
        )
        + settings
        + f"<h3>Report caps</h3><p class=note>{limits.describe()}</p></section>"
    )


def headline(rt: ReportTables) -> str:
    """One card per model: valid audio per tier, the first thing a reader wants to know."""
    ov = rt["overview"]
    cards = []
    for (run, model), g in ov.groupby(["run", "model"], sort=True):
        lines = []
        for tier in TIERS:
            t = g[g["tier"] == tier]
            if len(t):
                n, k = int(t["items"].sum()), int(t["valid_audio"].sum())
                lines.append(
                    f"<tr><td>{tier}</td><td class=n><b>{k}</b> / {n}</td>"
                    f"<td class=n>{pct(k / n if n else None, 0)}</td></tr>"
                )
        name = f"{model} @ {run}" if len(rt.runs) > 1 else model
        cards.append(
            f"<div class=card><span>{E(name)}</span><table>{''.join(lines)}</table>"
            "<span>valid audio / items</span></div>"
        )
    return f"<div class=cards>{''.join(cards)}</div>"


def incomplete_banner(rt: ReportTables) -> str:
    """First thing on the page: a run that left items unfinished says so, and why; its numbers are partial."""
    notes = [(m.run_id, m.incomplete) for m in rt.runs if m.incomplete]
    if not notes:
        return ""
    lines = "".join(f"<li>run {E(run_id)}: {E(reason)}</li>" for run_id, reason in notes)
    return ("<section id=incomplete class=incomplete><h2>This run is incomplete</h2><ul>" + lines + "</ul>"
            "<p>Unfinished items are not counted as failures of the model: rerun the same command to finish "
            "them. Every number below covers only the recorded items.</p></section>")


def render(rt: ReportTables, limits: ReportLimits | None = None) -> str:
    limits = limits or ReportLimits()
    ids = ", ".join(m.run_id for m in rt.runs)
    models = sorted({m for r in rt.runs for m in r.models})
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("overview", "1 · Generated and valid"),
            ("failures", "2 · Failures"),
            ("notes", "3 · Notes"),
            ("environmental", "4 · Environmental"),
            ("speech", "5 · Speech"),
            ("items", "6 · Items"),
            ("provenance", "7 · Provenance"),
            ("protocols", "8 · Samples, repair, paired"),
            ("human-calibration", "9 · Human calibration"),
        )
    )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>audioprobe report · {E(ids)}</title><style>{CSS}</style></head><body>"
        f"<header><div class=wrap><h1>audioprobe · can a text-only LLM make sound?</h1>"
        f"<p>run {E(ids)} · models: {E(', '.join(models))} · {len(rt.rows)} outcomes</p>"
        f"<nav>{nav}</nav></div></header>"
        f"<main>{incomplete_banner(rt)}{headline(rt)}"
        "<p class=note>Yellow rows and quotes are the paper's own numbers (GPT-4, Llama 3.1-70b; NSynth, "
        "FSD50K, Speech Commands), given for orientation: they come from other models, data and judges than "
        "this run's "
        "unless section 7 says otherwise.</p>"
        + section_overview(rt)
        + section_failures(rt)
        + section_notes(rt)
        + section_environmental(rt)
        + section_speech(rt)
        + section_reference_points(rt)
        + section_items(rt, limits)
        + section_provenance(rt, limits)
        + protocols.section(rt)
        + section_human_calibration(rt)
        + "<footer>audioprobe report · self-contained: no network needed to read or listen</footer>"
        "</main></body></html>"
    )
