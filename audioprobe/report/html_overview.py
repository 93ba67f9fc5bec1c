"""Sections 1 and 2 of the page (generated / executed / valid audio, the failure taxonomy), the headline
cards and the incomplete-run banner."""

from __future__ import annotations

from audioprobe.report import paper
from audioprobe.report.fmt import E, _paper_rows, _rows, pct, quote, rate, table, who_columns
from audioprobe.report.tables import KIND_LABELS, KINDS, ReportTables


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
    for tier in rt.tiers:  # each tier's rows, then the paper's for that tier
        ours = ov[ov["tier"] == tier] if len(ov) else ov
        if len(ours):
            body += _rows(ours, cols, numeric) + _paper_rows(prows.get(tier, []), cols, numeric)
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


def headline(rt: ReportTables) -> str:
    """One card per model: valid audio per tier, the first thing a reader wants to know."""
    ov = rt["overview"]
    cards = []
    for (run, model), g in ov.groupby(["run", "model"], sort=True):
        lines = []
        for tier in rt.tiers:
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
