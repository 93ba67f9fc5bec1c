"""Section 7 of the page: what made these numbers (runs, tokens and cost, judges, prompts, versions,
the sandbox's packages, skipped items, the report's caps)."""

from __future__ import annotations

import json

from audioprobe.report.fmt import E, ReportLimits, _isnull, num, table, who_columns
from audioprobe.report.tables import ReportTables


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
