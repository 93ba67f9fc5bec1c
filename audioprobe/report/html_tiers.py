"""Sections 4 and 5 of the report: environmental sounds (Table 1, Figure 4) and speech."""

from __future__ import annotations

import json

import pandas as pd

from audioprobe.report import media, paper
from audioprobe.report.fmt import (
    E,
    _isnull,
    fig,
    num,
    pct,
    quote,
    rate,
    table,
    who_columns,
)
from audioprobe.report.tables import ReportTables


def section_environmental(rt: ReportTables, tier: str) -> str:
    t1, stats = rt["environmental_table1"], rt["confidence_stats"]
    who = who_columns(rt)
    pad = [""] * (len(who) - 1)
    cols = who + [
        ("method", "method"),
        ("items", "items"),
        ("WAV produced", "wav_produced"),
        ("valid audio", "valid_audio"),
        ("judged", "judged"),
        ("correct of WAVs (paper's denominator)", lambda r: rate(r, "accuracy_of_wavs", "correct")),
        ("correct of judged", lambda r: rate(r, "accuracy", "correct")),
        ("mean confidence on correct", lambda r: num(r["mean_conf_correct"])),
        ("expected 5-way accuracy", lambda r: pct(r["mean_expected_accuracy"], 0)),
        ("seed", "distractor_seed"),
        ("judge", "judge"),
    ]
    tag = "<span class=tag>paper</span> "
    prows = [
        pad
        + [
            tag + p["model"],
            p["method"],
            str(p["items"]),
            str(p["generated"]),
            "—",
            str(p["generated"]),
            f"{p['correct']} <b>{100 * p['correct'] / p['generated']:.0f}%</b>",
            "—",
            f"{p['mean_conf']:.2f}",
            "—",
            "—",
            "CLAP",
        ]
        for p in paper.TABLE1
    ]
    st = stats[(stats["method"] == "all") & (stats["run"] != "all")]
    st_cols = who + [
        ("n correct", "n"),
        ("max", lambda r: num(r["max"])),
        ("min", lambda r: num(r["min"])),
        ("mean", lambda r: num(r["mean"])),
        ("median", lambda r: num(r["median"])),
    ]
    hist = rt["confidence_histogram"]
    for b in paper.CONF_BIN_LABELS:
        st_cols.append((b, lambda r, b=b: _bin_cell(hist, r, b)))
    f4 = paper.FIG4
    st_prows = [
        pad
        + [
            tag + "GPT-4 + Llama 3.1-70b",
            str(f4["n"]),
            f"{f4['max']:.2f}",
            f"{f4['min']:.2f}",
            f"{f4['mean']:.2f}",
            f"{f4['median']:.2f}",
        ]
        + [f"{f4['bins'][b]} ({100 * f4['bins'][b] / f4['n']:.0f}%)" for b in paper.CONF_BIN_LABELS]
    ]
    numeric = {
        "items",
        "WAV produced",
        "valid audio",
        "judged",
        "correct of WAVs (paper's denominator)",
        "correct of judged",
        "mean confidence on correct",
        "expected 5-way accuracy",
    }
    return (
        "<section id=environmental><h2>4. Environmental sounds</h2>"
        "<h3>Table 1: generated, correctly classified, mean confidence</h3>"
        "<p class=note>5-way forced choice: the target class against 4 others drawn with a fixed seed (shown) "
        "from the labels that are neither its ancestors nor its descendants in the AudioSet ontology (a dog "
        "is not a wrong answer for a bark); chance is 20%. The paper's denominator is generated WAVs. "
        "<i>expected 5-way accuracy</i> is the exact average over all distractor draws, from the target's "
        "rank, where the judge records it. The judge column says which classifier decided (the paper used "
        "CLAP).</p>"
        + table(t1, cols, prows, numeric)
        + quote(tier)
        + "<h3>Confidence of correctly classified clips (the paper's Figure 4)</h3>"
        + fig(media.figure_confidence(hist), "Confidence histogram")
        + table(
            st,
            st_cols,
            st_prows,
            numeric={"n correct", "max", "min", "mean", "median", *paper.CONF_BIN_LABELS},
            empty="No correctly classified clips.",
        )
        + "</section>"
    )


def _bin_cell(hist: pd.DataFrame, row, b: str) -> str:
    sel = hist[
        (hist["run"] == row["run"])
        & (hist["model"] == row["model"])
        & (hist["method"] == "all")
        & (hist["bin"] == b)
    ]
    if sel.empty:
        return "—"
    return f"{int(sel['count'].iloc[0])} ({pct(sel['share'].iloc[0], 0)})"


def section_speech(rt: ReportTables, tier: str) -> str:
    acc, texts = rt["speech"], rt["speech_text"]
    who = who_columns(rt)
    cols = who + [
        ("method", "method"),
        ("items", "items"),
        ("valid audio", "valid_audio"),
        ("judged", "judged"),
        ("WAVs", "wav_produced"),
        ("5-way accuracy, of judged", lambda r: rate(r, "accuracy", "correct")),
        ("of generated WAVs", lambda r: rate(r, "accuracy_of_wavs", "correct")),
        ("chance: nominal / empirical", lambda r: f"{pct(r['chance'], 0)} / {pct(r['empirical_chance'], 0)}"),
        ("judge", "judge"),
    ]
    tcols = who + [
        ("word", "word"),
        (
            "chosen (5-way)",
            lambda r: f"<b>{E(str(r['chosen']))}</b>" + (" ✓" if r["correct"] is True else ""),
        ),
        ("decoded text (free)", lambda r: E(str(r["text"])) if not _isnull(r["text"]) else "—"),
        ("choices", lambda r: E(", ".join(json.loads(r["choices"]) or []))),
        ("judge", "judge"),
    ]
    return (
        "<section id=speech><h2>5. Speech</h2><p class=note>A speech recogniser's forced choice among the "
        "target word and 4 others (nominally 20%; the empirical chance is its accuracy on silence, noise and a "
        "tone burst, from the reference points), and what it decodes with no choices given. Silence is gated "
        "before it is judged.</p>"
        + table(
            acc,
            cols,
            numeric={"items", "WAVs", "valid audio", "judged", "5-way accuracy, of judged", "of generated WAVs"},
            empty="No speech items.",
        )
        + quote(tier)
        + f"<div class=scroll>{table(texts, tcols, empty='No speech judgements.')}</div></section>"
    )
