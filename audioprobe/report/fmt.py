"""The page's building blocks: style, number formats, tables with the paper's rows, and the caps.

Big runs are capped (ReportLimits): every item is in the item table and items.csv, but only a few items
per (run, model, tier, method) get a detail card, and audio is embedded only until a byte budget is spent.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from audioprobe.report import media, paper
from audioprobe.report.tables import KIND_LABELS, ReportTables

E = html.escape


@dataclass(frozen=True)
class ReportLimits:
    items_per_group: int = 6  # detail cards per (run, model, tier, method): commonest failures first
    audio_mb: float = 24.0  # WAV bytes embedded across the page (base64 makes the file about 4/3 of this)
    text_chars: int = 6000  # prompt, code and stderr shown per card (the full text is in files/<key>/)

    def describe(self) -> str:
        return (
            f"Detail cards for at most {self.items_per_group} items per run x model x tier x method "
            "(the commonest failure kinds first, then valid clips); audio embedded until "
            f"{self.audio_mb:g} MiB of WAV (each clip as mono 16-bit PCM, its first "
            f"{media.CLIP_SECONDS:g} s); prompt, code and stderr cut at {self.text_chars} characters. "
            "Every item is still in the item table and in items.csv; the full files are in the run "
            "directory under files/&lt;key&gt;/."
        )


CSS = """
:root{--ink:#1d232b;--muted:#68717d;--line:#dfe3e8;--bg:#f6f7f9;--accent:#3b6ea8;--paper:#8a6d1f}
*{box-sizing:border-box}body{margin:0;
font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
background:var(--bg)}main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
header{background:#1d2a3a;color:#fff;padding:22px 28px}header .wrap{max-width:1180px;margin:0 auto}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}header p{margin:0;color:#c9d3df}
nav{display:flex;flex-wrap:wrap;gap:6px 16px;margin:14px 0 0}
nav a{color:#e8eef6;text-decoration:none;font-size:13px}nav a:hover{text-decoration:underline}
.incomplete{border:2px solid #b3261e;background:#fdecea;padding:10px 16px;border-radius:6px}
.incomplete h2{color:#b3261e;margin-top:4px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:18px 0}
h2{font-size:18px;margin:0 0 10px;border-bottom:2px solid var(--accent);display:inline-block;
padding-bottom:2px}h3{font-size:15px;margin:18px 0 6px}
p.note{color:var(--muted);margin:4px 0 10px;font-size:12.5px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:12.5px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef2f6;font-weight:600;font-size:12px}td.m{white-space:nowrap}
table.kinds th{font-size:11px;line-height:1.2}table.kinds td,table.kinds th{padding:4px 5px}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.paper td{color:var(--paper);font-style:italic;background:#fdf8ea}.tag{display:inline-block;
font-size:10.5px;padding:0 5px;border-radius:3px;background:#f0e4bf;color:#6b5312;font-style:normal}
.ci{color:var(--muted);font-size:11px}.zero{color:#c3c8ce}blockquote{margin:8px 0;padding:6px 12px;
border-left:3px solid #d9c27a;background:#fdf8ea;color:#5c4a12;font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px;margin:8px 0 4px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:#fbfcfd}
.card table{margin:2px 0;font-size:13px}.card td{border:0;padding:1px 4px}
.card span{color:var(--muted);font-size:12px}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;color:#fff;white-space:nowrap}
.k-ok{background:#3f8f4f}.k-pending{background:#9aa3ad}.k-invalid_audio{background:#c07a1c}
.k-llm_error,.k-no_code{background:#7a68a6}.k-syntax,.k-runtime,.k-missing_module,.k-bad_import{background:#b8434a}
.k-timeout,.k-memory,.k-no_output,.k-output_rejected{background:#a8456b}
img.fig{max-width:100%;display:block;margin:6px 0}
details.item{border:1px solid var(--line);border-radius:6px;margin:8px 0;background:#fff}
details.item>summary{cursor:pointer;padding:7px 12px;font-size:13px}
details.item[open]>summary{border-bottom:1px solid var(--line)}
.itembody{display:grid;grid-template-columns:1fr 1fr;gap:10px 18px;padding:10px 12px}
.itembody .wide{grid-column:1/3}pre{background:#f3f5f7;border:1px solid var(--line);border-radius:4px;
padding:6px 8px;max-height:240px;overflow:auto;font-size:11.5px;margin:2px 0;white-space:pre-wrap;
word-break:break-word}.players{display:flex;gap:16px;flex-wrap:wrap}.players figure{margin:0}
.players figcaption{font-size:11.5px;color:var(--muted)}audio{width:260px;height:34px}
.scroll{max-height:420px;overflow:auto;border:1px solid var(--line);border-radius:4px}
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


def kad_cell(row, prefix: str = "kad") -> str:
    """KAD [95% CI] from columns <prefix>, <prefix>_ci_lo, <prefix>_ci_hi."""
    if _isnull(row.get(prefix)):
        return "—"
    lo, hi = row.get(f"{prefix}_ci_lo"), row.get(f"{prefix}_ci_hi")
    ci = "" if _isnull(lo) else f" <span class=ci>[{num(lo)}–{num(hi)}]</span>"
    return f"<b>{num(row[prefix])}</b>{ci}"


def fad_cell(row) -> str:
    if _isnull(row["fad"]):
        return "—"
    ci = "" if _isnull(row["ci_lo"]) else f" <span class=ci>[{num(row['ci_lo'])}–{num(row['ci_hi'])}]</span>"
    return f"<b>{num(row['fad'])}</b>{ci}"


def _rows(df: pd.DataFrame, columns: list[tuple[str, object]], numeric: set[str]) -> list[str]:
    body = []
    for _, row in df.iterrows():
        cells = []
        for h, spec in columns:
            value = spec(row) if callable(spec) else (E(str(row[spec])) if not _isnull(row[spec]) else "—")
            cls = " class=n" if h in numeric else " class=m" if h in ("model", "run") else ""
            cells.append(f"<td{cls}>{value}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return body


def _paper_rows(rows: list[list[str]], columns: list[tuple[str, object]], numeric: set[str]) -> list[str]:
    return [
        "<tr class=paper>"
        + "".join(f"<td{' class=n' if h in numeric else ''}>{c}</td>" for (h, _), c in zip(columns, prow))
        + "</tr>"
        for prow in rows
    ]


def table(
    df: pd.DataFrame,
    columns: list[tuple[str, object]],
    paper_rows: list[list[str]] | None = None,
    numeric: set[str] | None = None,
    empty: str = "No data in this run.",
    body: list[str] | None = None,
    cls: str = "",
) -> str:
    """A table of df's rows; the paper's rows (yellow) after them, or a ready-made body."""
    if df.empty and not paper_rows and not body:
        return f"<p class=note>{E(empty)}</p>"
    numeric = numeric or set()
    head = "".join(f"<th>{h}</th>" for h, _ in columns)
    rows = (
        body
        if body is not None
        else _rows(df, columns, numeric) + _paper_rows(paper_rows or [], columns, numeric)
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def who_columns(rt: ReportTables) -> list[tuple[str, object]]:
    return ([("run", "run")] if len(rt.runs) > 1 else []) + [("model", "model")]


def quote(key: str) -> str:
    return f"<blockquote><span class=tag>paper</span> {E(paper.QUOTES[key])}</blockquote>"


def fig(uri: str | None, alt: str) -> str:
    return (
        f'<img class=fig alt="{E(alt)}" src="{uri}">'
        if uri
        else f"<p class=note>{E(alt)}: nothing to plot.</p>"
    )


# --------------------------------------------------------------------------- sections


def badge(kind: str) -> str:
    return f"<span class='badge k-{kind}'>{E(KIND_LABELS.get(kind, kind))}</span>"
