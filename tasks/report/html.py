"""The report page: one self-contained HTML file (inline CSS, images and audio as data URIs, no URL).

Big runs are capped (ReportLimits): every item is in the item table and items.csv, but only a few items
per (run, model, tier, method) get a detail card, and audio is embedded only until a byte budget is spent.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audioprobe.settings import get_settings
from tasks.report import media, paper
from tasks.report.tables import KIND_LABELS, KINDS, ReportTables, Row, classify_failure, resolve_audio

E = html.escape


@dataclass(frozen=True)
class ReportLimits:
    items_per_group: int = 6  # detail cards per (run, model, tier, method): one per failure kind first
    audio_mb: float = 24.0  # WAV bytes embedded across the page (base64 makes the file about 4/3 of this)
    text_chars: int = 6000  # prompt, code and stderr shown per card (the full text is in files/<key>/)

    def describe(self) -> str:
        return (f"Detail cards for at most {self.items_per_group} items per run x model x tier x method "
                f"(one of each failure kind first, then valid clips); audio embedded until {self.audio_mb:g} MiB "
                f"of WAV (each clip as mono 16-bit PCM, its first {media.CLIP_SECONDS:g} s); prompt, code and "
                f"stderr cut at {self.text_chars} characters. Every item is still in the item table and in "
                "items.csv; the full files are in the run directory under files/&lt;key&gt;/.")


CSS = """
:root{--ink:#1d232b;--muted:#68717d;--line:#dfe3e8;--bg:#f6f7f9;--accent:#3b6ea8;--paper:#8a6d1f}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:var(--bg)}main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
header{background:#1d2a3a;color:#fff;padding:22px 28px}header .wrap{max-width:1180px;margin:0 auto}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}header p{margin:0;color:#c9d3df}
nav{display:flex;flex-wrap:wrap;gap:6px 16px;margin:14px 0 0}nav a{color:#e8eef6;text-decoration:none;font-size:13px}
nav a:hover{text-decoration:underline}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:18px 0}
h2{font-size:18px;margin:0 0 10px;border-bottom:2px solid var(--accent);display:inline-block;padding-bottom:2px}
h3{font-size:15px;margin:18px 0 6px}p.note{color:var(--muted);margin:4px 0 10px;font-size:12.5px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:12.5px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef2f6;font-weight:600;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.paper td{color:var(--paper);font-style:italic;background:#fdf8ea}
.tag{display:inline-block;font-size:10.5px;padding:0 5px;border-radius:3px;background:#f0e4bf;color:#6b5312;font-style:normal}
.ci{color:var(--muted);font-size:11px}.zero{color:#c3c8ce}
blockquote{margin:8px 0;padding:6px 12px;border-left:3px solid #d9c27a;background:#fdf8ea;color:#5c4a12;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px;margin:8px 0 4px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:#fbfcfd}
.card b{font-size:20px;display:block}.card span{color:var(--muted);font-size:12px}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;color:#fff;white-space:nowrap}
.k-ok{background:#3f8f4f}.k-pending{background:#9aa3ad}.k-invalid_audio{background:#c07a1c}
.k-llm_error,.k-no_code{background:#7a68a6}.k-syntax,.k-runtime,.k-missing_module{background:#b8434a}
.k-timeout,.k-memory,.k-no_output,.k-output_rejected{background:#a8456b}
img.fig{max-width:100%;display:block;margin:6px 0}
details.item{border:1px solid var(--line);border-radius:6px;margin:8px 0;background:#fff}
details.item>summary{cursor:pointer;padding:7px 12px;font-size:13px}details.item[open]>summary{border-bottom:1px solid var(--line)}
.itembody{display:grid;grid-template-columns:1fr 1fr;gap:10px 18px;padding:10px 12px}
.itembody .wide{grid-column:1/3}pre{background:#f3f5f7;border:1px solid var(--line);border-radius:4px;padding:6px 8px;
max-height:240px;overflow:auto;font-size:11.5px;margin:2px 0;white-space:pre-wrap;word-break:break-word}
.players{display:flex;gap:16px;flex-wrap:wrap}.players figure{margin:0}.players figcaption{font-size:11.5px;color:var(--muted)}
audio{width:260px;height:34px}.scroll{max-height:420px;overflow:auto;border:1px solid var(--line);border-radius:4px}
.scroll table{margin:0}.scroll th{position:sticky;top:0}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
"""


# --------------------------------------------------------------------------- formatting


def _isnull(x) -> bool:
    try:
        return x is None or bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def num(x, digits: int = 2) -> str:
    if _isnull(x):
        return "—"
    if isinstance(x, (int,)) or (isinstance(x, float) and x.is_integer() and digits == 0):
        return f"{int(x):,}"
    return f"{float(x):,.{digits}f}"


def pct(x, digits: int = 1) -> str:
    return "—" if _isnull(x) else f"{100 * float(x):.{digits}f}%"


def rate(row, name: str, count: str | None = None) -> str:
    value = row.get(f"{name}_rate")
    if _isnull(value):
        return "—"
    lo, hi = row.get(f"{name}_ci_lo"), row.get(f"{name}_ci_hi")
    head = f"{int(row[count])} " if count else ""
    return f"{head}<b>{pct(value, 0)}</b> <span class=ci>[{pct(lo, 0)}–{pct(hi, 0)}]</span>"


def fad_cell(row) -> str:
    if _isnull(row["fad"]):
        return "—"
    ci = "" if _isnull(row["ci_lo"]) else f" <span class=ci>[{num(row['ci_lo'])}–{num(row['ci_hi'])}]</span>"
    return f"<b>{num(row['fad'])}</b>{ci}"


def table(df: pd.DataFrame, columns: list[tuple[str, object]], paper_rows: list[list[str]] | None = None,
          numeric: set[str] | None = None, empty: str = "No data in this run.") -> str:
    if df.empty and not paper_rows:
        return f"<p class=note>{E(empty)}</p>"
    numeric = numeric or set()
    head = "".join(f"<th>{h}</th>" for h, _ in columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for h, spec in columns:
            value = spec(row) if callable(spec) else (E(str(row[spec])) if not _isnull(row[spec]) else "—")
            cls = " class=n" if h in numeric else ""
            cells.append(f"<td{cls}>{value}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    for prow in paper_rows or []:
        body.append("<tr class=paper>" + "".join(
            f"<td{' class=n' if h in numeric else ''}>{c}</td>" for (h, _), c in zip(columns, prow)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def who_columns(rt: ReportTables) -> list[tuple[str, object]]:
    return ([("run", "run")] if len(rt.runs) > 1 else []) + [("model", "model")]


def quote(key: str) -> str:
    return f"<blockquote><span class=tag>paper</span> {E(paper.QUOTES[key])}</blockquote>"


def fig(uri: str | None, alt: str) -> str:
    return f'<img class=fig alt="{E(alt)}" src="{uri}">' if uri else f"<p class=note>{E(alt)}: nothing to plot.</p>"


# --------------------------------------------------------------------------- sections


def section_overview(rt: ReportTables) -> str:
    ov = rt["overview"]
    who = who_columns(rt)
    pad = [""] * (len(who) - 1)
    cols = who + [("tier", "tier"), ("method", "method"), ("items", "items"),
                  ("generated (code)", lambda r: rate(r, "generated", "generated")),
                  ("executed OK", lambda r: rate(r, "executed_ok", "executed_ok")),
                  ("valid audio (gate)", lambda r: rate(r, "valid_audio", "valid_audio"))]
    tag = "<span class=tag>paper</span> "
    prows = [pad + [tag + p["model"], "notes", "paper", "1,500", "—", f"{p['generated']} <b>{p['generated'] / 15:.1f}%</b>",
                    "—"] for p in paper.NOTES_GENERATED]
    prows += [pad + [tag + p["model"], "environmental", p["method"], "200", "—",
                     f"{p['generated']} <b>{p['generated'] / 2:.1f}%</b>", "—"] for p in paper.TABLE1]
    numeric = {"items", "generated (code)", "executed OK", "valid audio (gate)"}
    return ("<section id=overview><h2>1. Generated, executed, valid audio</h2>"
            "<p class=note>Per model, tier and prompt method. <i>generated</i>: a program was extracted from the "
            "answer; <i>executed OK</i>: it ran in the sandbox and wrote its WAV; <i>valid audio</i>: the WAV "
            "passed the audio gate (readable, right rate and length, not silent, not clipped, finite). Rates are "
            "of all items, with Wilson 95% intervals. Paper rows (yellow) quote the WAV files it reported.</p>"
            + table(ov, cols, prows, numeric) + "</section>")


def section_failures(rt: ReportTables) -> str:
    kinds = rt["failures"]
    who = who_columns(rt)
    if kinds.empty:
        return "<section id=failures><h2>2. Failure taxonomy</h2><p class=note>No items.</p></section>"
    pivot = kinds.pivot_table(index=[c for c, _ in who] + ["tier", "method"], columns="kind", values="count",
                              aggfunc="sum", fill_value=0).reset_index()
    for k in KINDS:
        if k not in pivot:
            pivot[k] = 0

    def cell(k):
        return lambda r: f"<span class=zero>0</span>" if not r[k] else f"<b>{int(r[k])}</b>"

    cols = who + [("tier", "tier"), ("method", "method")] + [(KIND_LABELS[k], cell(k)) for k in KINDS]
    mods = rt["missing_modules"]
    det = rt["failure_details"]
    return ("<section id=failures><h2>2. Failure taxonomy</h2>"
            "<p class=note>Each item counted once, at the first stage that failed (LLM call, code extraction, "
            "sandbox run, audio gate), derived from its generation, execution and gate records.</p>"
            + table(pivot, cols, numeric={KIND_LABELS[k] for k in KINDS})
            + "<h3>Missing modules</h3><p class=note>Imports the sandbox does not have, by module name.</p>"
            + table(mods, who + [("module", lambda r: f"<code>{E(r['module'])}</code>"), ("count", "count")],
                    numeric={"count"}, empty="No program imported a missing module.")
            + quote("failures")
            + "<h3>What else went wrong</h3><p class=note>Error types, rejected outputs and the gate's problems.</p>"
            + f"<div class=scroll>{table(det, who + [('tier', 'tier'), ('method', 'method'), ('kind', lambda r: KIND_LABELS[r['kind']]), ('detail', 'detail'), ('count', 'count')], numeric={'count'}, empty='Nothing else failed.')}</div>"
            + "</section>")


def section_notes(rt: ReportTables) -> str:
    fad, sim, pit = rt["fad"], rt["notes_similarity"], rt["pitch"]
    who = who_columns(rt)
    families = sorted({r.outcome.item.instrument_family for r in rt.rows
                       if r.outcome.item.tier == "notes" and r.outcome.item.instrument_family})
    labels = families if len(fad) and fad["label"].isin(families).any() else sorted(set(fad["label"])) if len(fad) else []
    fad_cols = who + [("method", "method"), ("class", "label"), ("FAD [95% CI]", fad_cell),
                      ("same-distribution baseline", lambda r: num(r["baseline"])),
                      ("N gen / N ref", lambda r: f"{int(r['n_gen'])} / {int(r['n_ref'])}"),
                      ("embedding", "embedding"), ("band (paper's)", "band"), ("note", "note")]
    sim_cols = who + [("method", "method"), ("classes", "classes"),
                      ("highly similar (<10)", lambda r: f"{int(r['highly_classes'])} <b>{pct(r['highly_share'], 0)}</b>"),
                      ("moderately (10–15)", lambda r: f"{int(r['moderately_classes'])} ({pct(r['moderately_share'], 0)})"),
                      ("distinct (>15)", lambda r: f"{int(r['distinct_classes'])} ({pct(r['distinct_share'], 0)})"),
                      ("notes in highly similar classes", lambda r: f"{pct(r['highly_notes_share'], 0)} of {int(r['notes'])}"),
                      ("median FAD", lambda r: num(r["median_fad"])), ("embedding", "embedding")]
    pit_cols = who + [("method", "method"), ("instrument", "instrument"), ("judged", "judged"),
                      ("measurable", "measurable"), ("within ±50 cents", lambda r: rate(r, "accuracy", "correct")),
                      ("octave errors", "octave_errors"), ("median |cents|", lambda r: num(r["median_abs_cents"], 0)),
                      ("judge", "judge")]
    return ("<section id=notes><h2>3. Musical notes</h2>"
            "<h3>FAD per instrument (the paper's Figure 2)</h3>"
            "<p class=note>Fréchet Audio Distance between each model's valid clips of a class and that class's "
            "reference clips; whiskers are bootstrap 95% intervals over generated clips, black ticks the "
            "same-distribution baseline (the references split in halves: what two samples of real audio score at "
            "this N). Shaded: the paper's bands, calibrated on VGGish with its human study — read them with the "
            "embedding named beside each score, and with the baseline: FAD is biased upward at small N.</p>"
            + fig(media.figure_fad(fad, labels), "FAD per instrument") + quote("notes_fad")
            + f"<div class=scroll>{table(fad, fad_cols, numeric={'FAD [95% CI]', 'same-distribution baseline', 'N gen / N ref'}, empty='No FAD results (fad.json) in this run.')}</div>"
            + "<h3>Share of highly similar instruments (the paper's Figure 3)</h3>"
            "<p class=note>Instrument classes per band of the paper's calibration, and the share of valid notes "
            "that fall in highly similar classes.</p>"
            + fig(media.figure_similar(sim), "Share of instrument classes per FAD band") + quote("notes_similar")
            + table(sim, sim_cols, numeric={"classes", "median FAD"}, empty="No FAD results to band.")
            + "<h3>Pitch accuracy per instrument</h3><p class=note>Median f0 of each valid clip against the "
            "requested MIDI pitch; correct within ±50 cents (the nearest semitone). Not in the paper.</p>"
            + table(pit, pit_cols, numeric={"judged", "measurable", "within ±50 cents", "octave errors", "median |cents|"},
                    empty="No pitch judgements in this run.")
            + "</section>")


def section_environmental(rt: ReportTables) -> str:
    t1, stats = rt["environmental_table1"], rt["confidence_stats"]
    who = who_columns(rt)
    pad = [""] * (len(who) - 1)
    cols = who + [("method", "method"), ("items", "items"), ("WAV produced", "wav_produced"),
                  ("valid audio", "valid_audio"), ("judged", "judged"),
                  ("correctly classified (5-way)", lambda r: rate(r, "accuracy", "correct")),
                  ("mean confidence on correct", lambda r: num(r["mean_conf_correct"])),
                  ("expected 5-way accuracy", lambda r: pct(r["mean_expected_accuracy"], 0)), ("judge", "judge")]
    tag = "<span class=tag>paper</span> "
    prows = [pad + [tag + p["model"], p["method"], str(p["items"]), str(p["generated"]), "—", str(p["generated"]),
                    f"{p['correct']} <b>{100 * p['correct'] / p['generated']:.0f}%</b>", f"{p['mean_conf']:.2f}", "—",
                    "CLAP"] for p in paper.TABLE1]
    st = stats[(stats["method"] == "all") & (stats["run"] != "all")]
    st_cols = who + [("n correct", "n"), ("max", lambda r: num(r["max"])), ("min", lambda r: num(r["min"])),
                     ("mean", lambda r: num(r["mean"])), ("median", lambda r: num(r["median"]))]
    hist = rt["confidence_histogram"]
    for b in paper.CONF_BIN_LABELS:
        st_cols.append((b, lambda r, b=b: _bin_cell(hist, r, b)))
    f4 = paper.FIG4
    st_prows = [pad + [tag + "GPT-4 + Llama 3.1-70b", str(f4["n"]), f"{f4['max']:.2f}", f"{f4['min']:.2f}",
                       f"{f4['mean']:.2f}", f"{f4['median']:.2f}"]
                + [f"{f4['bins'][b]} ({100 * f4['bins'][b] / f4['n']:.0f}%)" for b in paper.CONF_BIN_LABELS]]
    numeric = {"items", "WAV produced", "valid audio", "judged", "correctly classified (5-way)",
               "mean confidence on correct", "expected 5-way accuracy"}
    return ("<section id=environmental><h2>4. Environmental sounds</h2>"
            "<h3>Table 1: generated, correctly classified, mean confidence</h3>"
            "<p class=note>5-way forced choice: the target class against 4 seeded random others; chance is 20%. "
            "<i>expected 5-way accuracy</i> is the exact average over all distractor draws, from the target's "
            "rank, where the judge records it. The judge column says which classifier decided (the paper used "
            "CLAP).</p>"
            + table(t1, cols, prows, numeric) + quote("environmental")
            + "<h3>Confidence of correctly classified clips (the paper's Figure 4)</h3>"
            + fig(media.figure_confidence(hist), "Confidence histogram")
            + table(st, st_cols, st_prows, numeric={"n correct", "max", "min", "mean", "median", *paper.CONF_BIN_LABELS},
                    empty="No correctly classified clips.")
            + "</section>")


def _bin_cell(hist: pd.DataFrame, row, b: str) -> str:
    sel = hist[(hist["run"] == row["run"]) & (hist["model"] == row["model"]) & (hist["method"] == "all")
               & (hist["bin"] == b)]
    if sel.empty:
        return "—"
    return f"{int(sel['count'].iloc[0])} ({pct(sel['share'].iloc[0], 0)})"


def section_speech(rt: ReportTables) -> str:
    acc, texts = rt["speech"], rt["speech_text"]
    who = who_columns(rt)
    cols = who + [("method", "method"), ("items", "items"), ("valid audio", "valid_audio"), ("judged", "judged"),
                  ("5-way accuracy", lambda r: rate(r, "accuracy", "correct")), ("chance", lambda r: pct(r["chance"], 0)),
                  ("judge", "judge")]
    tcols = who + [("word", "word"), ("chosen (5-way)", lambda r: f"<b>{E(str(r['chosen']))}</b>"
                   + (" ✓" if r["correct"] is True else "")),
                   ("decoded text (free)", lambda r: E(str(r["text"])) if not _isnull(r["text"]) else "—"),
                   ("choices", lambda r: E(", ".join(json.loads(r["choices"]) or []))), ("judge", "judge")]
    return ("<section id=speech><h2>5. Speech</h2><p class=note>A speech recogniser's forced choice among the "
            "target word and 4 others (chance 20%), and what it decodes with no choices given. Silence is gated "
            "before it is judged.</p>"
            + table(acc, cols, numeric={"items", "valid audio", "judged", "5-way accuracy"}, empty="No speech items.")
            + quote("speech")
            + f"<div class=scroll>{table(texts, tcols, empty='No speech judgements.')}</div></section>")


def _badge(kind: str) -> str:
    return f"<span class='badge k-{kind}'>{E(KIND_LABELS.get(kind, kind))}</span>"


def section_items(rt: ReportTables, limits: ReportLimits) -> str:
    it = rt["items"]
    who = who_columns(rt)

    def score(r) -> str:
        bits = []
        for name, fmt in (("pitch_cents_error", "{:+.0f} cents"), ("classify_confidence", "conf {:.2f}"),
                          ("speech_chosen", "heard “{}”")):
            if name in r and not _isnull(r[name]):
                try:
                    bits.append(fmt.format(r[name]))
                except (ValueError, TypeError):
                    bits.append(E(str(r[name])))
        for name in ("pitch_correct", "classify_correct", "speech_correct"):
            if name in r and not _isnull(r[name]):
                bits.append("✓" if r[name] else "✗")
        return " ".join(bits) or "—"

    cols = who + [("tier", "tier"), ("method", "method"), ("item", "item"), ("label", "label"),
                  ("outcome", lambda r: _badge(r["kind"])), ("detail", lambda r: E(str(r["detail"])[:90])),
                  ("judges", score)]
    cards, spent = [], 0
    budget = int(limits.audio_mb * 2**20)
    for row in select_items(rt.rows, limits.items_per_group):
        card, used = item_card(row, limits, budget - spent, several_runs=len(rt.runs) > 1)
        cards.append(card)
        spent += used
    return ("<section id=items><h2>6. Items</h2><p class=note>Every item of the run; the outcome is the first "
            "stage that failed.</p>"
            + f"<div class=scroll>{table(it, cols)}</div>"
            + f"<h3>Listen: prompt, program, stderr, the clip beside a reference clip</h3><p class=note>{limits.describe()} "
            f"Embedded here: {spent / 2**20:.1f} MiB of audio.</p>"
            + "".join(cards) + "</section>")


def select_items(rows: list[Row], per_group: int) -> list[Row]:
    """Per (run, model, tier, method): one item of each failure kind first, then valid clips, then the rest."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        o = r.outcome
        groups.setdefault((r.run, o.model, o.item.tier, o.method), []).append(r)
    chosen = []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda r: (r.outcome.item.id, r.outcome.sample))
        first, seen = [], set()
        for r in ranked:
            kind = classify_failure(r.outcome)[0]
            if kind not in seen and kind != "ok":
                seen.add(kind)
                first.append(r)
        oks = [r for r in ranked if classify_failure(r.outcome)[0] == "ok"]
        rest = [r for r in ranked if r not in first and r not in oks]
        picked = (first[: max(1, per_group // 2)] + oks + first[max(1, per_group // 2):] + rest)[:per_group]
        chosen += sorted(picked, key=lambda r: (r.outcome.item.id, r.outcome.sample))
    return chosen


def resolve_reference(path: str, row: Row) -> Path | None:
    p = Path(path)
    for c in ([p] if p.is_absolute() else [get_settings().refs_dir / p, row.store.dir / p, p]):
        if c.is_file():
            return c
    return None


def _clip(path: Path | None, title: str, budget: int) -> tuple[str, tuple | None, int]:
    """A player for one clip (or why there is none), its samples for the spectrogram, and bytes used."""
    if path is None:
        return f"<figure><figcaption>{E(title)}: no file</figcaption></figure>", None, 0
    try:
        mono, sr = media.read_clip(path)
    except Exception as exc:  # an unreadable WAV is a finding to show, not a report failure
        return f"<figure><figcaption>{E(title)}: unreadable ({E(type(exc).__name__)})</figcaption></figure>", None, 0
    payload = media.wav_bytes(mono, sr)
    caption = f"{E(title)} · {len(mono) / sr:.2f} s · {sr} Hz · <code>{E(path.name)}</code>"
    if len(payload) > budget:
        return (f"<figure><figcaption>{caption}<br>not embedded (audio cap reached): {E(str(path))}</figcaption>"
                "</figure>", (title, mono, sr), 0)
    player = f'<audio controls preload="metadata" src="{media.data_uri(payload, "audio/wav")}"></audio>'
    return f"<figure>{player}<figcaption>{caption}</figcaption></figure>", (title, mono, sr), len(payload)


def item_card(row: Row, limits: ReportLimits, budget: int, several_runs: bool) -> tuple[str, int]:
    o = row.outcome
    kind, detail = classify_failure(o)

    def text_block(title: str, text: str | None) -> str:
        if not text:
            return f"<div><b>{title}</b><p class=note>none</p></div>"
        cut = text if len(text) <= limits.text_chars else text[: limits.text_chars] + "\n… (cut; full text in files/)"
        return f"<div><b>{title}</b><pre>{E(cut)}</pre></div>"

    gen_path = resolve_audio(row)
    ref = resolve_reference(o.item.references[0], row) if o.item.references else None
    used = 0
    gen_html, gen_clip, n = _clip(gen_path, "generated", budget) if gen_path else ("", None, 0)
    used += n
    ref_html, ref_clip, n = _clip(ref, f"reference: {Path(o.item.references[0]).name}" if ref else "reference",
                                  budget - used) if o.item.references else ("", None, 0)
    used += n
    clips = [c for c in (gen_clip, ref_clip) if c]
    spec = f'<img class=fig alt="spectrograms" src="{media.spectrograms(clips)}">' if clips else ""
    judges = "; ".join(f"{E(j.judge)} {E(j.judge_version)}: " + (f"error {E(j.error)}" if j.error else
                       ("✓ " if j.correct else "✗ " if j.correct is False else "")
                       + E(json.dumps({k: v for k, v in j.values.items() if k != "choices"}, default=str)[:200]))
                       for j in o.judgements) or "none"
    g, gate = o.generation, o.gate
    facts = [f"key <code>{E(row.key)}</code>", f"stage {E(o.stage_reached)}"]
    if g:
        facts.append(f"extraction {E(g.extraction_status)}; tokens {g.tokens_in or 0}/{g.tokens_out or 0}")
    if o.execution:
        facts.append(f"exit {o.execution.exit_code} in {o.execution.wall_s:.1f} s")
    if gate:
        facts.append("gate " + ("ok" if gate.ok else "failed: " + E(", ".join(gate.problems))))
    who = f"{E(o.model)}{' @ ' + E(row.run) if several_runs else ''}"
    summary = (f"{_badge(kind)} <b>{E(o.item.id)}</b> · {E(o.item.label)} · {who} · {E(o.item.tier)}/{E(o.method)}"
               + (f" · <span class=ci>{E(detail[:80])}</span>" if detail else ""))
    body = (f"<div class=wide><p class=note>{' · '.join(facts)}<br>judges: {judges}</p>"
            f"<div class=players>{gen_html}{ref_html}</div>{spec}</div>"
            + text_block("prompt", o.prompt.text if o.prompt else None)
            + text_block("program", g.code if g else None)
            + text_block("stderr", o.execution.stderr_tail if o.execution else (g.error if g else None))
            + text_block("stdout", o.execution.stdout_tail if o.execution else None))
    return f"<details class=item><summary>{summary}</summary><div class=itembody>{body}</div></details>", used


def section_provenance(rt: ReportTables, limits: ReportLimits) -> str:
    who = who_columns(rt)
    runs = "".join(
        f"<tr><td>{E(m.run_id)}</td><td>{E(m.created)}</td><td>{E(m.finished or 'not finished')}</td>"
        f"<td>{E(', '.join(m.models))}</td><td>{E(', '.join(m.tiers))}</td>"
        f"<td>{E('; '.join(f'{t}: {chr(44).join(v)}' for t, v in m.methods.items()))}</td><td class=n>{m.samples}</td>"
        f"<td class=n>{m.limit if m.limit is not None else 'all'}</td><td class=n>{m.seed}</td>"
        f"<td>{E(m.dataset_root or 'offline reference sets')}</td><td><code>{E(m.config_hash[:12])}</code></td></tr>"
        for m in rt.runs)
    usage = rt["usage"]
    ucols = who + [("calls", "calls"), ("cached", "cached"), ("tokens in", lambda r: num(r["tokens_in"], 0)),
                   ("tokens out", lambda r: num(r["tokens_out"], 0)),
                   ("cost (USD)", lambda r: "unpriced" if _isnull(r["cost"]) else f"${r['cost']:.4f} ({int(r['priced_calls'])} priced calls)"),
                   ("mean latency", lambda r: num(r["mean_latency_s"]) + " s")]
    settings = "".join(f"<details><summary>settings of {E(m.run_id)}</summary><pre>"
                       f"{E(json.dumps(m.settings, indent=1, default=str))}</pre></details>" for m in rt.runs)
    return ("<section id=provenance><h2>7. What made these numbers</h2>"
            "<table><thead><tr><th>run</th><th>created</th><th>finished</th><th>models</th><th>tiers</th>"
            "<th>methods</th><th>samples</th><th>limit</th><th>seed</th><th>data</th><th>config</th></tr></thead>"
            f"<tbody>{runs}</tbody></table>"
            "<h3>Tokens and cost</h3>" + table(usage, ucols, numeric={"calls", "cached", "tokens in", "tokens out"})
            + "<h3>Judges and embeddings</h3>"
            + table(rt["judges"], [("run", "run"), ("judge", "judge"), ("version", "version"), ("N", "n"),
                                   ("errors", "errors"), ("cached", "cached"), ("parameters", "params")],
                    numeric={"N", "errors", "cached"})
            + "<h3>Prompt templates</h3>"
            + table(rt["prompts"], [("run", "run"), ("tier", "tier"), ("method", "method"), ("template", "template"),
                                    ("sha256", "sha256"), ("output contract", "contract_line"), ("N", "n")],
                    numeric={"N"})
            + "<h3>Versions</h3>" + table(rt["versions"], [("run", "run"), ("what", "what"), ("version", "version")])
            + "<h3>Skipped items</h3>" + table(rt["skipped"], [("run", "run"), ("tier", "tier"), ("key", "key"),
                                                                ("reason", "reason")], empty="None skipped.")
            + settings + f"<h3>Report caps</h3><p class=note>{limits.describe()}</p></section>")


def headline(rt: ReportTables) -> str:
    ov = rt["overview"]
    cards = []
    for (run, model, tier), g in ov.groupby(["run", "model", "tier"], sort=True):
        n, k = int(g["items"].sum()), int(g["valid_audio"].sum())
        name = f"{model} @ {run}" if len(rt.runs) > 1 else model
        cards.append(f"<div class=card><span>{E(name)} · {E(tier)}</span><b>{k} / {n}</b>"
                     f"<span>valid audio ({pct(k / n if n else None, 0)})</span></div>")
    return f"<div class=cards>{''.join(cards)}</div>"


def render(rt: ReportTables, limits: ReportLimits | None = None) -> str:
    limits = limits or ReportLimits()
    ids = ", ".join(m.run_id for m in rt.runs)
    models = sorted({m for r in rt.runs for m in r.models})
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("overview", "1 · Generated and valid"), ("failures", "2 · Failures"), ("notes", "3 · Notes"),
        ("environmental", "4 · Environmental"), ("speech", "5 · Speech"), ("items", "6 · Items"),
        ("provenance", "7 · Provenance")))
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>audioprobe report · {E(ids)}</title><style>{CSS}</style></head><body>"
        f"<header><div class=wrap><h1>audioprobe · can a text-only LLM make sound?</h1>"
        f"<p>run {E(ids)} · models: {E(', '.join(models))} · {len(rt.rows)} outcomes</p><nav>{nav}</nav></div></header>"
        f"<main>{headline(rt)}"
        "<p class=note>Yellow rows and quotes are the paper's own numbers (GPT-4, Llama 3.1-70b; NSynth, FSD50K, "
        "Speech Commands), given for orientation: they come from other models, data and judges than this run's "
        "unless section 7 says otherwise.</p>"
        + section_overview(rt) + section_failures(rt) + section_notes(rt) + section_environmental(rt)
        + section_speech(rt) + section_items(rt, limits) + section_provenance(rt, limits)
        + "<footer>audioprobe report · self-contained: no network needed to read or listen</footer></main></body></html>")
