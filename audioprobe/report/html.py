"""The report page: one self-contained HTML file (inline CSS, images and audio as data URIs, no URL),
its sections in the paper's order, the paper's own numbers quoted beside ours.

Every section is a renderer (html_<section>.py) of tables its builder made (sections/<section>.py). A
tier's section is the one it declares (Tier.report_section, found in SECTIONS); a tier without one gets the generic section
(counts, status, each judge, accuracy with CI), so a new tier renders without a change here.
"""

from __future__ import annotations

from collections.abc import Callable

from audioprobe.report.fmt import CSS, E, ReportLimits
from audioprobe.report.html_generic import section_generic
from audioprobe.report.html_human_calibration import section_human_calibration
from audioprobe.report.html_items import section_items
from audioprobe.report.html_notes import section_notes
from audioprobe.report.html_overview import headline, incomplete_banner, section_failures, section_overview
from audioprobe.report.html_protocols import section_protocols
from audioprobe.report.html_provenance import section_provenance
from audioprobe.report.html_reference_points import section_reference_points
from audioprobe.report.html_tiers import section_environmental, section_speech
from audioprobe.report.sections.common import section_of, tier_title
from audioprobe.report.tables import ReportTables

__all__ = ["ReportLimits", "render", "SECTIONS"]

# The sections a tier may declare (tasks.tiers: Tier.report_section), with their place in the paper's order.
SECTIONS: dict[str, Callable[[ReportTables, str], str]] = {
    "pitch_and_fad": section_notes,
    "table1": section_environmental,
    "spoken_words": section_speech,
}
SECTION_NAV = {"pitch_and_fad": "3 · Notes", "table1": "4 · Environmental", "spoken_words": "5 · Speech"}


def tier_section(rt: ReportTables, tier: str) -> str:
    return SECTIONS.get(section_of(tier), section_generic)(rt, tier)


def render(rt: ReportTables, limits: ReportLimits | None = None) -> str:
    limits = limits or ReportLimits()
    ids = ", ".join(m.run_id for m in rt.runs)
    models = sorted({m for r in rt.runs for m in r.models})
    nav = "".join(
        f'<a href="#{E(a)}">{E(t)}</a>'
        for a, t in (
            ("overview", "1 · Generated and valid"),
            ("failures", "2 · Failures"),
            *((tier, SECTION_NAV.get(section_of(tier), tier_title(tier))) for tier in rt.tiers),
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
        + "".join(tier_section(rt, tier) for tier in rt.tiers)
        + section_reference_points(rt)
        + section_items(rt, limits)
        + section_provenance(rt, limits)
        + section_protocols(rt)
        + section_human_calibration(rt)
        + "<footer>audioprobe report · self-contained: no network needed to read or listen</footer>"
        "</main></body></html>"
    )
