"""Section 9 of the page (id="human-calibration"): the listening study's fitted curve, band thresholds with
CIs, agreement figures, and the run's clips banded by this calibration where the paper's bands do not
apply. The tables are sections/human_calibration.py's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioprobe.report import media
from audioprobe.report.fmt import E, fig, num, table
from audioprobe.report.tables import ReportTables


def figure(fit: dict) -> str | None:
    plt = media.plt
    d, y = np.array(fit["points"]["distance"]), np.array(fit["points"]["rating"], dtype=float)
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(y))
    fig_, ax = plt.subplots(figsize=(6.4, 3.0))
    ax.scatter(d, y + jitter, s=10, alpha=0.45, color=media.COLORS[0], label="ratings")
    c = fit["curve"]
    ax.plot(c["distance"], c["ordinal_mean_rating"], color=media.COLORS[1], lw=2, label="ordinal fit (mean)")
    ax.step(
        c["distance"],
        c["isotonic_mean_rating"],
        where="mid",
        color=media.COLORS[2],
        lw=1,
        ls="--",
        label="isotonic (mean)",
    )
    for t, color in zip(fit["thresholds"], ("#5a9e5a", "#d08c2f")):
        ax.axvline(t["value"], color=color, lw=1)
        if t["ci"][0] is not None:
            ax.axvspan(t["ci"][0], t["ci"][1], color=color, alpha=0.12)
    ax.set_yticks([0, 1, 2], ["highly", "moderately", "not similar"])
    ax.set_xlabel(f"{fit['metric']} on {fit['embedding']} ({fit['clip_length']} clips)")
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    return media._png(fig_)


def _ci(t: dict) -> str:
    lo, hi = t["ci"]
    return (
        f"<b>{num(t['value'], 2)}</b> [{num(lo, 2)}, {num(hi, 2)}]"
        if lo is not None
        else f"{num(t['value'], 2)} (no CI)"
    )


def _fitted(row) -> bool:
    return isinstance(row.get("thresholds"), list)


def section_human_calibration(rt: ReportTables) -> str:
    head = "<section id=human-calibration><h2>9. Human calibration of the bands</h2>"
    cal = rt.calibration
    if not cal:
        return (
            head + "<p class=note>No listening study in this run. Serve it with <code>audioprobe listen RUN"
            "</code>, collect ratings, then <code>audioprobe calibrate RUN</code>: this section then shows "
            "band thresholds fitted to the listeners, for any embedding.</p></section>"
        )
    ag = cal["agreement"]
    fits = [f for f in cal["fits"] if "thresholds" in f]
    cols = [
        ("embedding", "embedding"),
        ("metric", "metric"),
        ("clip length", "clip_length"),
        ("ratings", "n_ratings"),
        ("clips", "n_clips"),
        ("raters", lambda r: E(", ".join(r["raters"]))),
        (
            "highly | moderately",
            lambda r: _ci(r["thresholds"][0]) if _fitted(r) else E(str(r.get("skipped"))),
        ),
        ("moderately | not", lambda r: _ci(r["thresholds"][1]) if _fitted(r) else ""),
    ]
    fit_table = table(pd.DataFrame(cal["fits"]), cols, numeric={"ratings", "clips"})
    alpha = ag["krippendorff_alpha_ordinal"]
    rep = ag["repeat_exact_agreement"]
    five = ag["five_way"]
    agree = (
        [
            ("raters", E(", ".join(ag["raters"])) + f" ({len(ag['raters'])})"),
            ("ratings / clips rated", f"{ag['n_ratings']} / {ag['n_clips']}"),
            (
                "Krippendorff's alpha (ordinal, between raters)",
                num(alpha, 2) if alpha is not None else "— (needs 2 raters on a clip)",
            ),
            (
                "same answer on a repeated trial",
                f"{num(rep * 100, 0)}% of {ag['repeat_pairs']}" if rep is not None else "—",
            ),
        ]
        + [
            (
                f"Spearman, {E(m)} vs mean rating",
                f"ρ = {num(s['rho'], 2)} (N = {s['n_clips']} clips, p = {s['p']:.2g})",
            )
            for m, s in ag["spearman_distance_vs_rating"].items()
        ]
        + (
            [
                ("5-way: humans right", f"{num(five['human_accuracy'] * 100, 0)}% of {five['n']} answers"),
                (
                    "5-way: judge right on the same clips",
                    f"{num(five['judge_accuracy_same_clips'] * 100, 0)}% of {five['n_judged_clips']} clips"
                    if five["n_judged"]
                    else "—",
                ),
                (
                    "5-way: judge agrees with humans",
                    f"{num(five['judge_human_agreement'] * 100, 0)}% of {five['n_judged']} answers"
                    if five["n_judged"]
                    else "—",
                ),
            ]
            if five["n"]
            else []
        )
    )
    agree_html = (
        "<table><tbody>"
        + "".join(f"<tr><td>{k}</td><td class=n>{v}</td></tr>" for k, v in agree)
        + "</tbody></table>"
    )
    figs = "".join(
        fig(figure(f), f"Ratings against {f['metric']} on {f['embedding']}, {f['clip_length']}") for f in fits
    )
    bands = rt["human_calibration_bands"]
    band_html = (
        table(
            bands,
            [(c, c) for c in bands.columns],
            numeric={"highly similar", "moderately similar", "not similar", "clips"},
        )
        if len(bands)
        else "<p class=note>No clip distances to band.</p>"
    )
    return (
        head
        + "<p class=note>Bands fitted to this run's listeners (<code>audioprobe listen</code> / <code>calibrate"
        "</code>, "
        + E(cal["created"])
        + "), labelled with their N and raters. The paper's bands (&lt;10, 10–15, "
        "&gt;15) were calibrated by the paper's listeners on single notes' VGGish FAD at 4 s: they apply to "
        "per-note VGGish scores at 4 s only (the only scores section 3 bands), never to a class's FAD or "
        "to another embedding, window or metric; the bands here are this run's own. "
        "Thresholds: the distance where the two neighbouring answers are equally likely under a cumulative-logit "
        "ordinal fit, with 95% bootstrap CIs over clips.</p>"
        + fit_table
        + figs
        + "<h3>Agreement</h3>"
        + agree_html
        + "<h3>This run's clips in the calibrated bands</h3>"
        + band_html
        + "</section>"
    )
