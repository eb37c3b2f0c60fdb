"""The dashboard page: server-rendered HTML with inline SVG charts, no JavaScript at all.

Every value that comes from the table (texts, sources, model versions) goes through :func:`esc`
(``html.escape`` with quotes), so hostile feed markup shows as text. The page carries no script and
one ``<style>`` element whose SHA-256 is in the Content-Security-Policy (:data:`CONTENT_SECURITY_POLICY`),
so even a missed escape could run nothing: no script source is allowed.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from typing import Any

from sentiment_shared.schemas import SENTIMENTS

EXCERPT_CHARS = 140
COLOURS = {"positive": "#2e7d32", "negative": "#c62828", "neutral": "#9e9d24"}

STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c5cad6;font-size:13px}
header a{color:#9ecbff}
main{padding:16px 24px;max-width:1200px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:140px;box-shadow:0 1px 2px #0002}
.card .n{font-size:28px;font-weight:600}
.card .l{color:#5a6272;font-size:13px}
.positive{color:#2e7d32}.negative{color:#c62828}.neutral{color:#827717}
section{background:#fff;border-radius:8px;padding:12px 16px;margin-bottom:16px;box-shadow:0 1px 2px #0002}
h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e6eb;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.text{max-width:640px;overflow-wrap:anywhere}
.muted{color:#5a6272;font-size:13px}
svg text{font:11px system-ui,sans-serif;fill:#5a6272}
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    f"style-src 'sha256-{_STYLE_HASH}'; "
    "img-src 'none'; script-src 'none'; connect-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No script of any kind; the one stylesheet by hash; nothing may be framed, posted or fetched."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _share_bar(summary: dict[str, Any]) -> str:
    """One horizontal bar split by sentiment share."""
    width, height = 600, 22
    total = summary["analyzed"]
    parts, x = [], 0.0
    for sentiment in ("positive", "neutral", "negative"):
        w = width * summary[sentiment] / total if total else 0
        if w:
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{COLOURS[sentiment]}">'
                f"<title>{sentiment}: {summary[sentiment]}</title></rect>"
            )
        x += w
    if not parts:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#e3e6eb"/>')
    return (
        f'<svg role="img" aria-label="share per sentiment" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(parts)}</svg>'
    )


def _trend(days: list[dict[str, Any]]) -> str:
    """Stacked bars per day (positive, neutral, negative), the last 30 days."""
    width, height, left, bottom = 900, 180, 36, 20
    plot_h = height - bottom - 8
    peak = max((d["positive"] + d["negative"] + d["neutral"] for d in days), default=0)
    step = (width - left) / max(len(days), 1)
    bar_w = max(step - 3, 1)
    out = [
        f'<svg role="img" aria-label="items analyzed per day, last {len(days)} days" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#c5cad6"/>',
        f'<text x="0" y="12">{peak}</text><text x="0" y="{height - bottom}">0</text>',
    ]
    for i, day in enumerate(days):
        x = left + i * step
        y = float(height - bottom)
        for sentiment in ("positive", "neutral", "negative"):
            count = day[sentiment]
            if not count or not peak:
                continue
            h = plot_h * count / peak
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{COLOURS[sentiment]}">'
                f"<title>{esc(day['date'])} {sentiment}: {count}</title></rect>"
            )
        if i == len(days) - 1:
            out.append(f'<text x="{x + bar_w:.1f}" y="{height - 5}" text-anchor="end">{esc(day["date"][5:])}</text>')
        elif i % 5 == 0 and i < len(days) - 3:
            out.append(f'<text x="{x:.1f}" y="{height - 5}">{esc(day["date"][5:])}</text>')
    out.append("</svg>")
    return "".join(out)


def _basis(cost: dict[str, Any]) -> str:
    """The figure's basis as the cost says it (a cost saved by an older run has no ``basis``)."""
    basis = cost.get("basis")
    if isinstance(basis, str):
        return basis
    return (
        f"{cost['analysis_ms_per_item']} ms of analysis per item at {cost['analysis_memory_mb']} MB, "
        f"over {cost['items_measured']} items"
    )


def _cost(cost: dict[str, Any] | None) -> str:
    if not cost:
        return '<p class="muted" id="cost">No measured run yet: cost per 1,000 items appears after one.</p>'
    rows = "".join(
        f'<tr><td>{esc(label)}</td><td class="num">${cost[key]:.4f}</td></tr>'
        for label, key in (
            ("Lambda compute (GB-s)", "lambda_compute_usd"),
            ("Lambda requests", "lambda_requests_usd"),
            ("SQS requests", "sqs_usd"),
            ("SNS publishes", "sns_usd"),
            ("DynamoDB writes", "dynamodb_usd"),
        )
    )
    return (
        f'<p id="cost"><strong>${cost["total_usd"]:.4f}</strong> per 1,000 items '
        f'<span class="muted">(measured: {esc(_basis(cost))}; {esc(cost["prices"])})</span></p><table>{rows}</table>'
    )


def _table(table_id: str, columns: list[str], rows: Iterable[str]) -> str:
    """A table under a header row (a column named ``#…`` holds numbers), or one row saying it is empty."""
    header = "".join(f'<th class="num">{c[1:]}</th>' if c.startswith("#") else f"<th>{c}</th>" for c in columns)
    body = "".join(rows) or f'<tr><td colspan="{len(columns)}" class="muted">No analyzed items yet.</td></tr>'
    return f'<table id="{table_id}"><tr>{header}</tr>{body}</table>'


def page(summary: dict[str, Any], *, title: str = "Sentiment analyzer") -> str:
    """The whole HTML document for a ``GET /api/summary`` body."""
    analyzed = summary["analyzed"]
    cards = [
        ("total", "total items", summary["total"], ""),
        ("analyzed", "analyzed", analyzed, ""),
        ("pending", "pending", summary["pending"], ""),
    ] + [(s, s, summary[s], _share(summary[s], analyzed)) for s in SENTIMENTS]
    card_html = "".join(
        f'<div class="card"><div class="n {esc(key)}" id="{esc(key)}">{value}</div>'
        f'<div class="l">{esc(label)}{" · " if share else ""}'
        f'<span id="{esc(key)}-share">{esc(share)}</span></div></div>'
        for key, label, value, share in cards
    )
    sources = _table(
        "sources",
        ["source", "#items", *(f"#{s}" for s in SENTIMENTS)],
        (
            f'<tr><td class="text">{esc(s["source"])}</td><td class="num">{s["total"]}</td>'
            + "".join(f'<td class="num {k}">{s[k]}</td>' for k in SENTIMENTS)
            + "</tr>"
            for s in summary.get("sources", [])
        ),
    )
    recent = _table(
        "recent",
        ["text", "sentiment", "#score", "analyzed at (UTC)"],
        (
            f'<tr data-item="{esc(r["item_id"])}"><td class="text">{esc(excerpt(r["text"]))}</td>'
            f'<td class="{esc(r["sentiment"])}">{esc(r["sentiment"])}</td>'
            f'<td class="num">{float(r["score"]):.3f}</td><td class="muted">{esc(r["analyzed_at"][:19])}</td></tr>'
            for r in summary.get("recent", [])
        ),
    )
    model = summary.get("model_version") or "no items analyzed yet"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p>model <span id="model-version">{esc(model)}</span> · '
        f"updated {esc(summary['generated_at'])} UTC · "
        '<a href="api/summary">JSON</a></p></header><main>'
        f'<div class="cards">{card_html}</div>'
        f"<section><h2>Share per sentiment</h2>{_share_bar(summary)}</section>"
        f"<section><h2>Analyzed per day (last {len(summary['days'])} days, UTC)</h2>{_trend(summary['days'])}"
        "</section>"
        f"<section><h2>Top sources</h2>{sources}</section>"
        f"<section><h2>Most recent items</h2>{recent}</section>"
        f"<section><h2>Cost per 1,000 items</h2>{_cost(summary.get('cost_per_1000_items'))}</section>"
        "</main></body></html>\n"
    )
