"""The page's reference points (id="reference-points"): what silence, noise, a tone and a held-out real
recording score under each tier's judges, and the forced choices' empirical chance."""

from __future__ import annotations

from audioprobe.report.fmt import E, num, pct, rate, table
from audioprobe.report.tables import ReportTables


def section_reference_points(rt: ReportTables) -> str:
    summary, chance = rt["reference_points"], rt["empirical_chance"]
    cols = [
        ("tier", "tier"), ("control", "control"), ("judge", "judge"), ("items", "items"),
        ("passed the gate", "gate_passed"), ("correct / judged", lambda r: rate(r, "accuracy", "correct")),
        ("median per-note FAD", lambda r: num(r["median_note_fad"])),
        ("median per-note KAD", lambda r: num(r["median_note_kad"])), ("judge errors", "errors"),
    ]  # fmt: skip
    if len(summary) and summary["run"].nunique() > 1:
        cols = [("run", "run"), *cols]
    ccols = [
        ("run", "run"), ("tier", "tier"), ("nominal chance", lambda r: pct(r["nominal"], 0)),
        ("empirical chance (non-speech controls decided on)", lambda r: rate(r, "empirical", "correct")),
        ("N decided", "n"), ("abstained (no word chosen, or not decoded)", "abstained"),
        ("controls", lambda r: E(r["controls"])),
    ]  # fmt: skip
    return (
        '<section id="reference-points"><h2>Reference points</h2>'
        "<p class=note>What known inputs score under every judge of each tier, so each number above has a "
        "floor and a ceiling: silence, white noise, a sine at the target pitch (notes) or a 1 kHz tone burst, "
        "and a real recording of the class held out from the references it is compared with (the ceiling). "
        "Controls are judged even where the gate would refuse them (the gate column says so). The forced "
        "choices' empirical chance is their accuracy on the non-speech controls they decided on; controls "
        "they never decided (silence is not decoded; the recogniser may choose no word) are abstentions, "
        "shown apart and left out of it.</p>"
        + table(summary, cols, numeric={"items", "passed the gate", "correct / judged", "median per-note FAD",
                                        "median per-note KAD", "judge errors"},
                empty="No reference points in this run (reference_points.json).")
        + "<h3>Empirical chance of the forced choices</h3>"
        + table(chance, ccols, numeric={"empirical chance (non-speech controls decided on)", "N decided",
                                        "abstained (no word chosen, or not decoded)"},
                empty="No non-speech controls judged by a forced choice in this run.")
        + "</section>"
    )
