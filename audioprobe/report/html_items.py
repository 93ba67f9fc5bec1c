"""Section 6: every item in a table, and detail cards to read and listen to (prompt, program, stderr,
the generated clip beside a reference clip, their spectrograms), within the page's caps."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from audioprobe.report import media
from audioprobe.report.fmt import E, ReportLimits, _isnull, badge, table, who_columns
from audioprobe.report.tables import KINDS, ReportTables, Row, resolve_audio, stored_failure
from audioprobe.settings import get_settings


def section_items(rt: ReportTables, limits: ReportLimits) -> str:
    it = rt["items"]
    who = who_columns(rt)

    def score(r) -> str:
        bits = []
        for name, fmt in (
            ("pitch_cents_error", "{:+.0f} cents"),
            ("classify_confidence", "conf {:.2f}"),
            ("speech_chosen", "heard “{}”"),
        ):
            if name in r and not _isnull(r[name]):
                try:
                    bits.append(fmt.format(r[name]))
                except (ValueError, TypeError):
                    bits.append(E(str(r[name])))
        for name in ("pitch_correct", "classify_correct", "speech_correct"):
            if name in r and not _isnull(r[name]):
                bits.append("✓" if r[name] else "✗")
        return " ".join(bits) or "—"

    cols = who + [
        ("tier", "tier"),
        ("method", "method"),
        ("item", "item"),
        ("label", "label"),
        ("outcome", lambda r: badge(r["kind"])),
        ("detail", lambda r: E(str(r["detail"])[:90])),
        ("judges", score),
    ]
    cards, spent = [], 0
    budget = int(limits.audio_mb * 2**20)
    opened = False
    for row in select_items(rt.rows, limits.items_per_group, rt.tiers):
        is_open = not opened and stored_failure(row.outcome)[0] == "ok"
        opened |= is_open
        card, used = item_card(row, limits, budget - spent, several_runs=len(rt.runs) > 1, is_open=is_open)
        cards.append(card)
        spent += used
    return (
        "<section id=items><h2>6. Items</h2><p class=note>Every item of the run; the outcome is the first "
        "stage that failed.</p>"
        + f"<div class=scroll>{table(it, cols)}</div>"
        + "<h3>Listen: prompt, program, stderr, the clip beside a reference clip</h3>"
        + f"<p class=note>{limits.describe()} "
        f"Embedded here: {spent / 2**20:.1f} MiB of audio.</p>" + "".join(cards) + "</section>"
    )


def _short(value):
    return float(f"{value:.4g}") if isinstance(value, float) else value


def select_items(rows: list[Row], per_group: int, tiers: list[str]) -> list[Row]:
    """Per (run, model, tier, method): the commonest failure kinds first, then valid clips, then the rest."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        o = r.outcome
        groups.setdefault((r.run_id, o.model, o.item.tier, o.method), []).append(r)
    chosen = []
    order = {t: i for i, t in enumerate(tiers)}
    for key in sorted(groups, key=lambda k: (k[0], k[1], order.get(k[2], len(order)), k[3])):
        ranked = sorted(groups[key], key=lambda r: (r.outcome.item.id, r.outcome.sample))
        kinds = {id(r): stored_failure(r.outcome)[0] for r in ranked}
        frequency = Counter(kinds.values())
        first = []
        for kind in sorted(set(frequency) - {"ok"}, key=lambda k: (-frequency[k], KINDS.index(k))):
            first.append(next(r for r in ranked if kinds[id(r)] == kind))
        oks = [r for r in ranked if kinds[id(r)] == "ok"]
        rest = [r for r in ranked if r not in first and r not in oks]
        picked = (first[: max(1, per_group // 2)] + oks + first[max(1, per_group // 2) :] + rest)[:per_group]
        chosen += sorted(picked, key=lambda r: (r.outcome.item.id, r.outcome.sample))
    return chosen


def resolve_reference(path: str, row: Row) -> Path | None:
    p = Path(path)
    for c in [p] if p.is_absolute() else [get_settings().refs_dir / p, row.run.dir / p, p]:
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
        return (
            f"<figure><figcaption>{E(title)}: unreadable ({E(type(exc).__name__)})</figcaption></figure>",
            None,
            0,
        )
    payload = media.wav_bytes(mono, sr)
    caption = f"{E(title)} · {len(mono) / sr:.2f} s · {sr} Hz · <code>{E(path.name)}</code>"
    if len(payload) > budget:
        return (
            f"<figure><figcaption>{caption}<br>not embedded (audio cap reached): {E(str(path))}</figcaption>"
            "</figure>",
            (title, mono, sr),
            0,
        )
    player = f'<audio controls preload="metadata" src="{media.data_uri(payload, "audio/wav")}"></audio>'
    return f"<figure>{player}<figcaption>{caption}</figcaption></figure>", (title, mono, sr), len(payload)


def item_card(
    row: Row, limits: ReportLimits, budget: int, several_runs: bool, is_open: bool = False
) -> tuple[str, int]:
    o = row.outcome
    kind, detail = stored_failure(o)

    def text_block(title: str, text: str | None) -> str:
        if not text:
            return f"<div><b>{title}</b><p class=note>none</p></div>"
        cut = (
            text
            if len(text) <= limits.text_chars
            else text[: limits.text_chars] + "\n… (cut; full text in files/)"
        )
        return f"<div><b>{title}</b><pre>{E(cut)}</pre></div>"

    gen_path = resolve_audio(row)
    ref = resolve_reference(o.item.references[0], row) if o.item.references else None
    used = 0
    gen_html, gen_clip, n = _clip(gen_path, "generated", budget) if gen_path else ("", None, 0)
    used += n
    ref_html, ref_clip, n = (
        _clip(ref, f"reference: {Path(o.item.references[0]).name}" if ref else "reference", budget - used)
        if o.item.references
        else ("", None, 0)
    )
    used += n
    clips = [c for c in (gen_clip, ref_clip) if c]
    spec = (
        f'<img class=fig alt="spectrograms" src="{media.spectrograms(clips)}"><p class=note>Spectrograms: '
        + " | ".join(E(title) for title, _, _ in clips)
        + f"; time left to right, log frequency {media.SPEC_LOW_HZ:g} Hz to half the sample rate upwards, "
        f"{media.SPEC_RANGE_DB:g} dB below the loudest.</p>"
        if clips
        else ""
    )
    judges = (
        "; ".join(
            f"{E(j.judge)} {E(j.judge_version)}: "
            + (
                f"error {E(j.error)}"
                if j.error
                else ("✓ " if j.correct else "✗ " if j.correct is False else "")
                + E(
                    json.dumps({k: _short(v) for k, v in j.values.items() if k != "choices"}, default=str)[
                        :200
                    ]
                )
            )
            for j in o.judgements
        )
        or "none"
    )
    g, gate = o.generation, o.gate
    facts = [f"key <code>{E(row.key)}</code>", f"stage {E(o.stage_reached)}"]
    if g:
        facts.append(f"extraction {E(g.extraction_status)}; tokens {g.tokens_in or 0}/{g.tokens_out or 0}")
    if o.execution:
        facts.append(f"exit {o.execution.exit_code} in {o.execution.wall_s:.1f} s")
    if gate:
        facts.append("gate " + ("ok" if gate.ok else "failed: " + E(", ".join(gate.problems))))
    who = f"{E(o.model)}{' @ ' + E(row.run_id) if several_runs else ''}"
    summary = (
        f"{badge(kind)} <b>{E(o.item.id)}</b> · {E(o.item.label)} · {who} · {E(o.item.tier)}/{E(o.method)}"
        + (f" · <span class=ci>{E(detail[:80])}</span>" if detail else "")
    )
    body = (
        f"<div class=wide><p class=note>{' · '.join(facts)}<br>judges: {judges}</p>"
        f"<div class=players>{gen_html}{ref_html}</div>{spec}</div>"
        + text_block("prompt", o.prompt.text if o.prompt else None)
        + text_block("program", g.code if g else None)
        + text_block("stderr", o.execution.stderr_tail if o.execution else (g.error if g else None))
        + text_block("stdout", o.execution.stdout_tail if o.execution else None)
    )
    opened = " open" if is_open else ""
    return (
        f"<details class=item{opened}><summary>{summary}</summary><div class=itembody>{body}</div></details>",
        used,
    )
