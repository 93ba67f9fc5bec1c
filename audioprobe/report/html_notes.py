"""Section 3 of the page: FAD and KAD per instrument, models at matched N, Figure 3 from per-note scores,
pitch accuracy."""

from __future__ import annotations

from audioprobe.report import media
from audioprobe.report.fmt import (
    E,
    _isnull,
    fad_cell,
    fig,
    kad_cell,
    num,
    pct,
    quote,
    rate,
    table,
    who_columns,
)
from audioprobe.report.tables import ReportTables, instrument_rows


def section_notes(rt: ReportTables, tier: str) -> str:
    fad, sim, pit, matched = rt["fad"], rt["notes_similarity"], rt["pitch"], rt["matched_n"]
    who = who_columns(rt)
    families = {r.outcome.item.instrument_family for r in rt.rows if r.outcome.item.tier == tier} - {None}
    labels = sorted(set(instrument_rows(fad, families)["label"])) if len(fad) else []
    def baseline(r, key: str = "") -> str:
        """The baseline with its same-distribution spread, the N it stands for, and how it was had."""
        value, lo, hi = r.get(f"{key}baseline"), r.get(f"{key}baseline_lo"), r.get(f"{key}baseline_hi")
        if _isnull(value):
            return "—"
        spread = "" if _isnull(lo) else f" <span class=ci>[{num(lo)}–{num(hi)}]</span>"
        at = "" if _isnull(r.get("baseline_n_gen")) else (
            f" <span class=ci>at {int(r['baseline_n_gen'])}/{int(r['baseline_n_ref'])}"
            + (f", {r['baseline_method']}" if not _isnull(r.get("baseline_method")) and r.get("baseline_method") else "")
            + "</span>")  # fmt: skip
        return num(value) + spread + at
    fad_cols = (
        who
        + [
            ("method", "method"),
            ("class", "label"),
            ("group", "group"),
            ("FAD [95% CI]", fad_cell),
            ("FAD baseline [same-distribution 95 %]", baseline),
            ("FAD∞", lambda r: num(r["fad_inf"])),
            ("KAD [95% CI]", kad_cell),
            ("KAD baseline [same-distribution 95 %]", lambda r: baseline(r, "kad_")),
            ("N gen / N ref", lambda r: f"{int(r['n_gen'])} / {int(r['n_ref'])}"),
            ("embedding, window", lambda r: f"{r['embedding']}" + ("" if _isnull(r["window_s"]) else f", {r['window_s']:g} s")),
            ("band (paper's)", lambda r: r["band"] if not _isnull(r["band"]) else f"<span class=ci>{r['band_note']}</span>"),
        ]
        + ([("note", "note")] if len(fad) and (fad["note"].fillna("") != "").any() else [])
    )  # fmt: skip
    fad_numeric = {"FAD [95% CI]", "FAD baseline [same-distribution 95 %]", "FAD∞", "KAD [95% CI]",
                   "KAD baseline [same-distribution 95 %]", "N gen / N ref"}
    no_fad = "No FAD results (fad.json) in this run."
    band_cell = lambda r, key: "—" if _isnull(r[f"{key}_classes"]) else (
        f"{int(r[f'{key}_classes'])} ({pct(r[f'{key}_share'], 0)})")  # fmt: skip
    sim_cols = who + [
        ("method", "method"),
        ("instruments", "classes"),
        ("notes scored", "notes"),
        ("highly similar notes (<10)", lambda r: pct(r["highly_notes_share"], 0)),
        ("instruments with median <10", lambda r: band_cell(r, "highly")),
        ("median in [10, 15)", lambda r: band_cell(r, "moderately")),
        ("median ≥15", lambda r: band_cell(r, "distinct")),
        ("median per-note FAD", lambda r: num(r["median_fad"])),
        ("median per-note KAD", lambda r: num(r["median_kad"])),
        ("embedding", "embedding"),
        ("why no band", "band_note"),
    ]
    m_cols = [
        ("class", "label"), ("model", "model"), ("method", "method"), ("N gen → matched", lambda r: f"{int(r['n_gen'])} → {int(r['matched_n'])}"),
        ("FAD [95% CI]", lambda r: kad_cell(r, "fad")), ("FAD baseline", lambda r: baseline(r, "fad_")),
        ("KAD [95% CI]", kad_cell), ("KAD baseline", lambda r: baseline(r, "kad_")), ("N ref used", "n_ref"),
        ("embedding", "embedding"), ("note", "note"),
    ]  # fmt: skip
    pit_cols = who + [
        ("method", "method"),
        ("instrument", "instrument"),
        ("WAVs", "wavs"),
        ("judged", "judged"),
        ("measurable", "measurable"),
        ("unvoiced (miss)", "unvoiced"),
        ("within ±50 cents, of measurable", lambda r: rate(r, "accuracy", "correct")),
        ("of generated WAVs", lambda r: rate(r, "accuracy_of_wavs", "correct")),
        ("white noise called this note (control)", lambda r: "—" if _isnull(r.get("noise_judged")) or not r["noise_judged"] else (
            f"{int(r['noise_correct'])}/{int(r['noise_judged'])} " + rate(r, "noise"))),
        ("octave errors", "octave_errors"),
        ("median |cents|", lambda r: num(r["median_abs_cents"], 0)),
        ("judge", "judge"),
    ]
    return (
        "<section id=notes><h2>3. Musical notes</h2>"
        "<h3>FAD and KAD per instrument (the paper's Figure 2)</h3>"
        "<p class=note>Each model's valid clips of a class against that class's reference clips, every clip "
        "cut or padded to the references' length (one clip, one weight). FAD: Fréchet Audio Distance, biased "
        "upward at small N; its baseline is what two disjoint sets of real references score at the "
        "comparison's own (N gen, N ref), with the middle 95 % of such scores: drawn at that N where the pool "
        "allows, else <i>extrapolated</i> from draws at smaller N by FAD's 1/N form (the note gives the fit). "
        "A value inside that range is as close as real recordings are to each other. FAD∞: fadtk's score_inf "
        "(generated frames drawn with replacement at 25 sizes from 500, a line against 1/n, its intercept). "
        "KAD: the unbiased kernel distance (x100; 'KAD: No More FAD!', 2025), with this project's convention: "
        "bandwidth from the references and pairs within a clip left out, so it is 0 in expectation for the "
        "same distribution at any N (kadtk's score takes the bandwidth from the evaluated set and keeps those "
        "pairs; `judge distance --kad-convention kadtk` computes it). Intervals: bootstrap over clips, both sets "
        "resampled. The paper's bands were calibrated on single notes' VGGish FAD at 4 s: class scores "
        "carry no band, and the figure is shaded only when every score shown is one of those.</p>"
        + fig(media.figure_fad(fad, labels), "FAD per instrument")
        + quote("notes_fad")
        + f"<div class=scroll>{table(fad, fad_cols, numeric=fad_numeric, empty=no_fad)}</div>"
        + "<h3>Models at matched N</h3><p class=note>Each model's clips of a class subsampled (seeded) to "
        "the smallest N among the models compared, so no model is favoured by FAD's small-N bias; FAD and "
        "KAD computed at the end of the run from the cached embeddings against one reference set per class, "
        "the same for every model (every reference of the class in the run), whose size is N ref used. "
        "Each run's own table: runs compared side by side are not matched with each other.</p>"
        + "".join(f"<p class=note>Run {E(r)} has no stored matched-N table (it ran before they were stored): "
                  f"<code>audioprobe retry {E(r)} --only judging</code> computes it.</p>"
                  for r in rt.missing.get("matched_n", []))
        + table(matched, m_cols, numeric={"FAD [95% CI]", "KAD [95% CI]", "FAD baseline", "KAD baseline", "N ref used"},
                empty="One model per class in this run: nothing to match.")
        + "<h3>Highly similar notes (the paper's Figure 3)</h3>"
        "<p class=note>Per-note scores: each valid note alone against its instrument's references (fadtk's "
        "per-song FAD, and the kernel score), the paper's unit. Share of notes per band, and instruments "
        "whose median per-note FAD lies in each band — only where the bands were calibrated.</p>"
        + fig(media.figure_similar(sim), "Share of instrument classes per FAD band")
        + quote("notes_similar")
        + table(sim, sim_cols, numeric={"instruments", "notes scored", "median per-note FAD", "median per-note KAD"},
                empty="No per-note scores in this run.")
        + "<h3>Pitch accuracy per instrument</h3><p class=note>Median f0 of each valid clip against the "
        "requested MIDI pitch; correct within ±50 cents (the nearest semitone). A clip with under half its "
        "judged frames periodic is not a note, a miss. Beside each accuracy, the noise floor: how often the "
        "same judge called the run's white-noise control the asked note (reference points). Out of measurable judged notes, and out of generated WAVs (the paper's denominator). Not "
        "in the paper.</p>"
        + table(
            pit,
            pit_cols,
            numeric={"WAVs", "judged", "measurable", "unvoiced (miss)", "within ±50 cents, of measurable",
                     "white noise called this note (control)",
                     "of generated WAVs", "octave errors", "median |cents|"},
            empty="No pitch judgements in this run.",
        )
        + "</section>"
    )
