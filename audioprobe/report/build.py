"""Write a run's report: report/index.html plus every table as CSV and Parquet, and a markdown summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audioprobe.report.html import ReportLimits, render
from audioprobe.report.sections import protocols
from audioprobe.report.tables import KIND_LABELS, ReportTables, build_tables
from tasks.records import Run, atomic_write


def _open(run: str | Path | Run) -> Run:
    return run if isinstance(run, Run) else Run.open(str(run))


def write_tables(rt: ReportTables, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in rt.tables.items():
        atomic_write(folder / f"{name}.csv", df.to_csv(index=False))
        try:
            df.to_parquet(folder / f"{name}.parquet", index=False)
        except (TypeError, ValueError, ArithmeticError):
            # judge values of mixed types in one column: Parquet wants one type, CSV kept them all
            df.astype({c: "string" for c in df.columns if df[c].dtype == object}).to_parquet(
                folder / f"{name}.parquet", index=False
            )


def build_report(
    run_id_or_path: str | Path | Run, compare: list | None = None, *, limits: ReportLimits | None = None
) -> Path:
    """Build RUN's report under <run dir>/report/, compare's runs side by side; return index.html. The
    tables are built once: the short summary (the console's and the Prefect UI's) is written beside it."""
    run = _open(run_id_or_path)
    rt = build_tables(run, [_open(c) for c in compare or []])
    folder = run.dir / "report"
    write_tables(rt, folder)
    index = folder / "index.html"
    atomic_write(index, render(rt, limits))
    atomic_write(folder / SUMMARY, summary_markdown(run, rt))
    for path in folder.iterdir():  # temp files are 0600; a report is for reading and sharing
        path.chmod(0o644)
    return index


SUMMARY = "summary.md"


def report_summary(run: Run) -> str:
    """The summary written with the run's last report; made now when there is none."""
    path = run.dir / "report" / SUMMARY
    return path.read_text() if path.exists() else summary_markdown(run)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "0/0"


def summary_markdown(run: Run | str | Path, rt: ReportTables | None = None) -> str:
    """A short markdown summary: counts and rates per model x tier x method, top failures, headline scores."""
    run = _open(run)
    rt = rt or build_tables(run)
    m = rt.runs[0]
    lines = [
        f"## audioprobe run `{m.run_id}`",
        "",
        f"models: {', '.join(m.models)} · tiers: {', '.join(m.tiers)} · {len(rt.rows)} outcomes"
        + ("" if m.finished else " · **not finished**"),
        "",
        "| model | tier | method | generated | executed OK | valid audio |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in rt["overview"].iterrows():
        n = int(r["items"])
        lines.append(
            f"| {r['model']} | {r['tier']} | {r['method']} | {_pct(int(r['generated']), n)} | "
            f"{_pct(int(r['executed_ok']), n)} | {_pct(int(r['valid_audio']), n)} |"
        )
    fails = rt["failures"]
    fails = (
        fails[~fails["kind"].isin(["ok", "pending"])]
        .groupby("kind")["count"]
        .sum()
        .sort_values(ascending=False)
    )
    if len(fails):
        lines += ["", "**Failures:** " + ", ".join(f"{KIND_LABELS[k]} {int(v)}" for k, v in fails.items())]
    mods = rt["missing_modules"]
    if len(mods):
        top = mods.groupby("module")["count"].sum().sort_values(ascending=False).head(5)
        lines.append("**Missing modules:** " + ", ".join(f"`{k}` {int(v)}" for k, v in top.items()))
    sim = rt["notes_similarity"]
    for _, r in sim.iterrows():
        bands = (
            f"no band ({r['band_note']})"
            if pd.isna(r["highly_classes"])
            else f"{int(r['highly_classes'])}/{int(r['classes'])} instruments highly similar (median <10), "
            f"{100 * r['highly_notes_share']:.0f}% of notes"
        )
        kad = "" if pd.isna(r["median_kad"]) else f", median per-note KAD {r['median_kad']:.2f}"
        lines.append(
            f"**Notes per-note FAD ({r['embedding']}), {r['model']}:** {int(r['notes'])} notes, "
            f"median {r['median_fad']:.1f}{kad}; {bands}"
        )
    for model, r in rt["fad"][rt["fad"]["group"] == "instrument"].groupby("model")[["fad", "kad"]].median().iterrows():
        fad = "— (no valid clip scored)" if pd.isna(r["fad"]) else f"{r['fad']:.2f}"
        kad = "— (fewer than 2 clips a side)" if pd.isna(r["kad"]) else f"{r['kad']:.3f}"
        lines.append(f"**Class FAD / KAD (median over instruments), {model}:** {fad} / {kad}")
    for _, r in rt["pitch"].groupby("model")[["correct", "measurable", "wavs"]].sum().iterrows():
        lines.append(
            f"**Pitch within ±50 cents, {_}:** {_pct(int(r['correct']), int(r['measurable']))} of measurable "
            f"(unvoiced = miss), {_pct(int(r['correct']), int(r['wavs']))} of generated WAVs"
        )
    for _, r in rt["environmental_table1"].iterrows():
        conf = (
            ""
            if pd.isna(r["mean_conf_correct"])
            else f", mean confidence on correct {r['mean_conf_correct']:.2f}"
        )
        lines.append(
            f"**Environmental 5-way, {r['model']} / {r['method']}:** "
            f"{_pct(int(r['correct']), int(r['judged']))} correct of judged, "
            f"{_pct(int(r['correct']), int(r['wav_produced']))} of generated WAVs (chance 20%){conf}"
        )
    for _, r in rt["speech"].iterrows():
        chance = "" if pd.isna(r["empirical_chance"]) else f", empirical {100 * r['empirical_chance']:.0f}%"
        lines.append(
            f"**Speech 5-way, {r['model']}:** {_pct(int(r['correct']), int(r['judged']))} of judged, "
            f"{_pct(int(r['correct']), int(r['wav_produced']))} of WAVs (chance 20% nominal{chance})"
        )
    refs = rt["reference_points"]
    if len(refs):
        lines += ["", "**Reference points** (control: correct/judged, median per-note FAD / KAD):"]
        for (tier, judge), g in refs.groupby(["tier", "judge"], sort=False):
            cells = []
            for _, r in g.iterrows():
                score = f"{int(r['correct'])}/{int(r['judged'])}" if r["judged"] else ""
                if not pd.isna(r["median_note_fad"]):
                    kad = "—" if pd.isna(r["median_note_kad"]) else f"{r['median_note_kad']:.2f}"
                    score += f" FAD {r['median_note_fad']:.1f} / KAD {kad}"
                cells.append(f"{r['control']} {score.strip() or '—'}")
            lines.append(f"- {tier} · `{judge}`: " + "; ".join(cells))
    lines += protocols.summary_lines(rt.tables)
    usage = rt["usage"]
    if len(usage):
        cost = usage["cost"].dropna().sum()
        lines.append(
            f"**Tokens:** {int(usage['tokens_in'].sum()):,} in / {int(usage['tokens_out'].sum()):,} out"
            + (f" · cost ${cost:.4f}" if cost else "")
        )
    report = run.dir / "report" / "index.html"
    if report.exists():
        lines += ["", f"Report: `{report}`"]
    return "\n".join(lines) + "\n"
