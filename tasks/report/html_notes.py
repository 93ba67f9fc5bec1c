"""Section 3 of the page: FAD and KAD per instrument, models at matched N, Figure 3 from per-note scores,
pitch accuracy."""

from __future__ import annotations

from tasks.report import media
from tasks.report.fmt import _isnull, fad_cell, fig, kad_cell, num, pct, quote, rate, table, who_columns
from tasks.report.tables import ReportTables, instrument_rows


def section_notes(rt: ReportTables) -> str:
    fad, sim, pit, matched = rt["fad"], rt["notes_similarity"], rt["pitch"], rt["matched_n"]
    who = who_columns(rt)
    families = {r.outcome.item.instrument_family for r in rt.rows if r.outcome.item.tier == "notes"} - {None}
    labels = sorted(set(instrument_rows(fad, families)["label"])) if len(fad) else []
    baseline_n = lambda r: "" if _isnull(r["baseline_n_gen"]) else (
        f" <span class=ci>at {int(r['baseline_n_gen'])}/{int(r['baseline_n_ref'])}</span>")  # fmt: skip
    fad_cols = (
        who
        + [
            ("method", "method"),
            ("class", "label"),
            ("group", "group"),
            ("FAD [95% CI]", fad_cell),
            ("FAD baseline", lambda r: num(r["baseline"]) + baseline_n(r)),
            ("FAD∞", lambda r: num(r["fad_inf"])),
            ("KAD [95% CI]", kad_cell),
            ("KAD baseline", lambda r: num(r["kad_baseline"])),
            ("N gen / N ref", lambda r: f"{int(r['n_gen'])} / {int(r['n_ref'])}"),
            ("embedding, window", lambda r: f"{r['embedding']}" + ("" if _isnull(r["window_s"]) else f", {r['window_s']:g} s")),
            ("band (paper's)", lambda r: r["band"] if not _isnull(r["band"]) else f"<span class=ci>{r['band_note']}</span>"),
        ]
        + ([("note", "note")] if len(fad) and (fad["note"].fillna("") != "").any() else [])
    )  # fmt: skip
    fad_numeric = {"FAD [95% CI]", "FAD baseline", "FAD∞", "KAD [95% CI]", "KAD baseline", "N gen / N ref"}
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
        ("FAD [95% CI]", lambda r: kad_cell(r, "fad")), ("FAD baseline", lambda r: num(r["fad_baseline"])),
        ("KAD [95% CI]", kad_cell), ("KAD baseline", lambda r: num(r["kad_baseline"])), ("N ref", "n_ref"),
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
        ("octave errors", "octave_errors"),
        ("median |cents|", lambda r: num(r["median_abs_cents"], 0)),
        ("judge", "judge"),
    ]
    return (
        "<section id=notes><h2>3. Musical notes</h2>"
        "<h3>FAD and KAD per instrument (the paper's Figure 2)</h3>"
        "<p class=note>Each model's valid clips of a class against that class's reference clips, every clip "
        "cut or padded to the references' length (one clip, one weight). FAD: Fréchet Audio Distance, biased "
        "upward at small N; its baseline is what two disjoint draws of real references score at the same "
        "(N gen, N ref), or as close as the pool allows (shown). FAD∞: fadtk's extrapolation to infinite N. "
        "KAD: the unbiased kernel distance (x100, bandwidth from the references; 'KAD: No More FAD!', 2025), "
        "0 in expectation for the same distribution at any N. Intervals: bootstrap over clips, both sets "
        "resampled. The paper's bands were calibrated on single notes' VGGish FAD at 4 s: class scores "
        "carry no band, and the figure is shaded only when every score shown is one of those.</p>"
        + fig(media.figure_fad(fad, labels), "FAD per instrument")
        + quote("notes_fad")
        + f"<div class=scroll>{table(fad, fad_cols, numeric=fad_numeric, empty=no_fad)}</div>"
        + "<h3>Models at matched N</h3><p class=note>Each model's clips of a class subsampled (seeded) to "
        "the smallest N among the models compared, so no model is favoured by FAD's small-N bias; FAD and "
        "KAD recomputed from the cached embeddings.</p>"
        + table(matched, m_cols, numeric={"FAD [95% CI]", "KAD [95% CI]", "FAD baseline", "KAD baseline"},
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
        "requested MIDI pitch; correct within ±50 cents (the nearest semitone). A clip with no voiced frames "
        "is a miss. Out of measurable judged notes, and out of generated WAVs (the paper's denominator). Not "
        "in the paper.</p>"
        + table(
            pit,
            pit_cols,
            numeric={"WAVs", "judged", "measurable", "unvoiced (miss)", "within ±50 cents, of measurable",
                     "of generated WAVs", "octave errors", "median |cents|"},
            empty="No pitch judgements in this run.",
        )
        + "</section>"
    )
