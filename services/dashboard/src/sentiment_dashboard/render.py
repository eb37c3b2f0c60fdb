"""The dashboard page: server-rendered HTML with inline SVG charts, no JavaScript at all.

Every value that comes from the table (texts, titles, links, sources, model versions) goes through
:func:`esc` (``html.escape`` with quotes), and a link is only ever an absolute ``http(s)`` URL, so hostile
feed markup shows as text. The page carries no script and one ``<style>`` element whose SHA-256 is in
the Content-Security-Policy (:data:`CONTENT_SECURITY_POLICY`), so even a missed escape could run nothing:
no script source is allowed (and no ``style`` attribute either: all styling is in the hashed sheet).

What a person meets: the layout is one fluid column from 360 px up (charts are SVGs sized in percent of
their card, so nothing scrolls sideways); each sentiment has one colour, one fill pattern (a second cue
besides colour) and one place in :data:`ORDER` everywhere; each chart has a legend with its numbers and
an accessible name that says them, the per-day chart a table of its numbers too.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sentiment_dashboard.items import DOWNLOAD_LIMIT, PER_PAGE, ItemFilter, ItemsPage, safe_link, short_source
from sentiment_shared.dal.read_model import SUMMARY_DAYS

if TYPE_CHECKING:
    from sentiment_dashboard.items import ListedItem

EXCERPT_CHARS = 280
ORDER = ("positive", "neutral", "negative")
"""One order for the sentiments everywhere on the page: cards, bars, legends, tables, filters."""
COLOURS = {"positive": "#0072B2", "neutral": "#767676", "negative": "#B8490A"}
"""Okabe-Ito blue and a dark vermillion, and a mid grey: each at least 4.5:1 on white, and told apart under
protanopia, deuteranopia and tritanopia (tests/unit/test_dashboard_render.py simulates them)."""
DASH = "\u2013"
"""An en dash: "no value" and number ranges."""
LOCAL_EMPTY_HINT = "uv run sentiment-local run"
HOSTED_EMPTY_HINT = (
    "Items appear here after the ingestion function's next scheduled run has fetched the configured feeds "
    "and the analysis has scored them."
)

STYLE = """
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 16px}
header h1{margin:0;font-size:21px}
header p{margin:4px 0 0;color:#d5d9e2;font-size:14px}
header a{color:#9ecbff}
main{padding:12px;max-width:1200px;margin:0 auto}
a{color:#0b57b0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin:0 0 12px;padding:0}
.card{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px #0002;margin:0;
border-top:4px solid #c5cad6}
.card dt{color:#4a5262;font-size:14px}
.card dd{margin:0;font-size:28px;font-weight:600;font-variant-numeric:tabular-nums}
.card dd .share{font-size:15px;font-weight:400;color:#4a5262;margin-left:6px}
.card.positive{border-top-color:#0072B2}.card.neutral{border-top-color:#767676}.card.negative{border-top-color:#B8490A}
section.counts{background:none;box-shadow:none;padding:0}
section{background:#fff;border-radius:8px;padding:12px 14px;margin-bottom:12px;box-shadow:0 1px 2px #0002;min-width:0}
h2{font-size:18px;margin:0 0 8px}
h3{font-size:16px;margin:2px 0}
figure{margin:0}
figure svg{display:block;width:100%;overflow:visible}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
svg text.in{fill:#fff;font-weight:600;font-size:13px;stroke-width:4px;paint-order:stroke;stroke-linejoin:round}
.defs{position:absolute;width:0;height:0;overflow:hidden}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 18px;margin:8px 0 0;padding:0}
.legend li{display:flex;align-items:center;gap:6px}
.sw{width:16px;height:16px;flex:none;border-radius:2px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 6px;border-bottom:1px solid #e3e6eb;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.source{overflow-wrap:anywhere}
.muted{color:#4a5262;font-size:14px}
details{margin-top:8px}
summary{cursor:pointer;color:#0b57b0}
nav.filters{display:flex;flex-wrap:wrap;gap:6px 14px;margin:0 0 8px;font-size:15px}
nav.filters ul{list-style:none;display:flex;flex-wrap:wrap;gap:4px;margin:0;padding:0}
nav.filters a{display:inline-block;padding:3px 10px;border:1px solid #c5cad6;border-radius:14px;text-decoration:none}
nav.filters a[aria-current]{background:#1d2330;color:#fff;border-color:#1d2330}
ol.items{list-style:none;margin:0;padding:0}
ol.items li{border-bottom:1px solid #e3e6eb;padding:8px 0;min-width:0}
.text{margin:2px 0;overflow-wrap:break-word}
.meta{margin:0;font-size:14px;color:#4a5262;display:flex;flex-wrap:wrap;gap:2px 12px;align-items:center}
.badge{display:inline-flex;align-items:center;gap:5px;font-weight:600;color:#1d2330}
.pager{display:flex;flex-wrap:wrap;gap:8px 18px;margin-top:8px}
code{background:#eef0f4;padding:1px 5px;border-radius:4px;overflow-wrap:anywhere}
#empty{border-left:6px solid #0072B2}
#empty p{font-size:17px}
@media (max-width:520px){main{padding:8px}section{padding:10px}th,td{padding:4px 3px;font-size:14px}
.card dd{font-size:24px}}
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    f"style-src 'sha256-{_STYLE_HASH}'; "
    "img-src 'self'; script-src 'none'; connect-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No script of any kind; the one stylesheet by hash; images only the page's own (its icon); nothing may be
framed, posted or fetched."""

FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1d2330"/>'
    '<rect x="5" y="14" width="6" height="13" fill="#0072B2"/><rect x="13" y="8" width="6" height="19" fill="#767676"/>'
    '<rect x="21" y="18" width="6" height="9" fill="#B8490A"/></svg>\n'
)

_PATTERNS = (
    '<svg class="defs" aria-hidden="true" focusable="false"><defs>'
    '<pattern id="fill-positive" width="8" height="8" patternUnits="userSpaceOnUse">'
    '<rect width="8" height="8" fill="#0072B2"/></pattern>'
    '<pattern id="fill-neutral" width="8" height="8" patternUnits="userSpaceOnUse">'
    '<rect width="8" height="8" fill="#767676"/><circle cx="4" cy="4" r="1.4" fill="#fff"/></pattern>'
    '<pattern id="fill-negative" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="8" height="8" fill="#B8490A"/><rect width="2" height="8" fill="#fff"/></pattern>'
    "</defs></svg>"
)
"""One fill per sentiment (solid, dotted, striped), defined once and used by every chart and legend swatch."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def num(value: int) -> str:
    """A count with thousands separators (``12,345``)."""
    return f"{int(value):,}"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else DASH


def when(value: str | None, *, date_only: bool = False, seconds: bool = False) -> str:
    """An ISO time as ``2026-12-02 06:46 UTC`` (or just the date); unreadable values as they came."""
    if not value:
        return DASH
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if date_only:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def usd(value: float | int | None) -> str:
    """Dollars in plain figures: cents from $1 up, else two significant digits (``$0.000020``, never ``$0.0000``)."""
    if value is None:
        return DASH
    amount = float(value)
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    digits = Decimal(f"{amount:.2g}")
    text = f"{digits:f}"
    if len(digits.as_tuple().digits) == 1:  # 2e-05 → 0.000020: two significant digits shown
        text += "0"
    return "$" + text


def _swatch(sentiment: str) -> str:
    return (
        f'<svg class="sw" viewBox="0 0 16 16" aria-hidden="true" focusable="false">'
        f'<rect width="16" height="16" fill="url(#fill-{sentiment})" stroke="{COLOURS[sentiment]}"/></svg>'
    )


def _numbers(counts: dict[str, int]) -> str:
    """Every sentiment with its count and share, in :data:`ORDER` (a chart's accessible name)."""
    whole = sum(counts[s] for s in ORDER)
    return ", ".join(f"{s} {num(counts[s])} ({share(counts[s], whole)})" for s in ORDER)


def _legend(counts: dict[str, int]) -> str:
    whole = sum(counts[s] for s in ORDER)
    items = "".join(
        f"<li>{_swatch(s)}<span><strong>{s}</strong> {num(counts[s])} · {share(counts[s], whole)}</span></li>"
        for s in ORDER
    )
    return f'<ul class="legend">{items}</ul>'


def _share_bar(summary: dict[str, Any]) -> str:
    """One horizontal bar split by sentiment share, labelled where a label fits, with its legend."""
    counts = {s: int(summary[s]) for s in ORDER}
    total = sum(counts.values())
    label = f"Share per sentiment of {num(total)} analysed items: {_numbers(counts)}"
    parts, x = [], 0.0
    for sentiment in ORDER:
        w = 100 * counts[sentiment] / total if total else 0
        if w:
            parts.append(
                f'<rect x="{x:.3f}%" y="0" width="{w:.3f}%" height="34" fill="url(#fill-{sentiment})" '
                f'stroke="#fff" stroke-width="2"/>'
            )
            if w >= 12:
                parts.append(
                    f'<text class="in" x="{x + w / 2:.3f}%" y="22" text-anchor="middle" '
                    f'stroke="{COLOURS[sentiment]}">{w:.0f} %</text>'
                )
        x += w
    return (
        f'<figure class="chart" id="share-chart"><svg role="img" aria-label="{esc(label)}" height="34">'
        f"{''.join(parts)}</svg>{_legend(counts)}</figure>"
    )


def _short_day(day: str) -> str:
    try:
        return datetime.fromisoformat(day).strftime("%b %-d")
    except ValueError:
        return day


def _outside(published: dict[str, Any]) -> str:
    """The analysed items a publication-date chart leaves out, in words ("" if none)."""
    parts = []
    for key, words in (("earlier", "published before these days"), ("undated", "without a publication date")):
        counts = published.get(key) or {}
        count = sum(int(counts.get(s, 0)) for s in ORDER)
        if count:
            parts.append(f"{num(count)} {words} ({', '.join(f'{s} {num(counts.get(s, 0))}' for s in ORDER)})")
    return "; not shown: " + " and ".join(parts) if parts else ""


def _trend(days: list[dict[str, Any]], kind: str = "analysed", outside: str = "") -> str:
    """Stacked bars per day (in :data:`ORDER` from the bottom), sized in percent of the card's width."""
    height, top, bottom = 176, 18, 22
    plot_h = height - top - bottom
    totals = {s: sum(int(d[s]) for d in days) for s in ORDER}
    peak_day = max(days, key=lambda d: sum(int(d[s]) for s in ORDER), default=None)
    peak = sum(int(peak_day[s]) for s in ORDER) if peak_day else 0
    busiest = f"; busiest day {_short_day(peak_day['date'])} with {num(peak)}" if peak_day and peak else ""
    label = (
        f"Items {kind} per day, last {len(days)} days, {num(sum(totals.values()))} in all: "
        f"{_numbers(totals)}{busiest}{outside}"
    )
    step = 100 / max(len(days), 1)
    out = [
        f'<svg role="img" aria-label="{esc(label)}" height="{height}">',
        f'<line x1="0" y1="{top}" x2="100%" y2="{top}" stroke="#c5cad6" stroke-dasharray="3 3"/>',
        f'<text x="0" y="{top - 5}">{num(peak)} a day</text>',
        f'<line x1="0" y1="{height - bottom}" x2="100%" y2="{height - bottom}" stroke="#4a5262"/>',
    ]
    for i, day in enumerate(days):
        y = float(height - bottom)
        for sentiment in ORDER:
            count = int(day[sentiment])
            if not count or not peak:
                continue
            h = plot_h * count / peak
            y -= h
            out.append(
                f'<rect x="{i * step + step * 0.1:.3f}%" y="{y:.1f}" width="{step * 0.8:.3f}%" height="{h:.1f}" '
                f'fill="url(#fill-{sentiment})" stroke="{COLOURS[sentiment]}" stroke-width="0.5"/>'
            )
    if days:
        for i, anchor in ((0, "start"), (len(days) // 2, "middle"), (len(days) - 1, "end")):
            x = {"start": i * step, "middle": (i + 0.5) * step, "end": (i + 1) * step}[anchor]
            out.append(
                f'<text x="{x:.3f}%" y="{height - 5}" text-anchor="{anchor}">{esc(_short_day(days[i]["date"]))}</text>'
            )
    out.append("</svg>")
    rows = "".join(
        f"<tr><td>{esc(d['date'])}</td>"
        + "".join(f'<td class="num">{num(d[s])}</td>' for s in ORDER)
        + f'<td class="num">{num(sum(int(d[s]) for s in ORDER))}</td></tr>'
        for d in days
        if any(int(d[s]) for s in ORDER)
    )
    header = "".join(f'<th scope="col" class="num">{s}</th>' for s in ORDER)
    table = (
        f'<details><summary>The numbers per day</summary><table><tr><th scope="col">day (UTC)</th>{header}'
        f'<th scope="col" class="num">all</th></tr>{rows}</table></details>'
    )
    note = f'<p class="muted">{esc(outside.removeprefix("; not shown: ").capitalize())}: not in the chart.</p>'
    return (
        f'<figure class="chart" id="days-chart">{"".join(out)}{_legend(totals)}{note if outside else ""}{table}'
        "</figure>"
    )


def _days_section(summary: dict[str, Any]) -> str:
    """Per day of publication where the items are at hand (the local twin), else per day of analysis
    (the counters: the analysis does not know an item's publication date)."""
    published = summary.get("published_days")
    if isinstance(published, dict) and published.get("days"):
        days = published["days"]
        return (
            f"<section><h2>Published per day (last {len(days)} days, UTC)</h2>"
            f"{_trend(days, 'published', _outside(published))}</section>"
        )
    days = summary["days"]
    return f"<section><h2>Analysed per day (last {len(days)} days, UTC)</h2>{_trend(days)}</section>"


def _cost(cost: dict[str, Any] | None, analyzed: int) -> str:
    if not cost:
        return (
            '<p class="muted" id="cost">No measured run yet: the cost per 1,000 items appears after the '
            "pipeline has analysed items and measured how long that took.</p>"
        )
    covers = cost.get("covers") or "the last measured run"
    measured = int(cost.get("items_measured") or 0)
    whole = (
        f" The counts above cover all {num(analyzed)} analysed items; "
        f"this estimate only the {num(measured)} of that run."
        if measured and measured != analyzed
        else ""
    )
    ms = cost.get("analysis_ms_per_item")
    memory = cost.get("analysis_memory_mb")
    timing = (
        f"the analysis function took {ms:,.0f} ms per item with {num(memory)} MB of memory"
        if isinstance(ms, int | float) and isinstance(memory, int)
        else esc(cost.get("basis", "the analysis time per item"))
    )
    starts = int(cost.get("cold_starts_measured") or 0)
    loading = ""
    if starts:
        each = f"{float(cost.get('cold_start_s') or 0):.1f} s"
        loading = (
            f" (left out: the model's loading when a fresh function starts, {each}, "
            f"{'once' if starts == 1 else f'{num(starts)} times'} in that run: it happens per start, not per item)"
        )
    rows = "".join(
        f'<tr><td>{esc(label)}</td><td class="num">{usd(cost.get(key))}</td></tr>'
        for label, key in (
            ("Lambda run time (memory \u00d7 seconds)", "lambda_compute_usd"),
            ("Lambda calls", "lambda_requests_usd"),
            ("SQS queue messages", "sqs_usd"),
            ("SNS topic messages", "sns_usd"),
            ("DynamoDB writes", "dynamodb_usd"),
        )
    )
    return (
        f'<p id="cost"><strong>{usd(cost.get("total_usd"))}</strong> per 1,000 items: an estimate from '
        f"{esc(covers)}, which analysed {num(measured)} items.{whole}</p>"
        f"<p>Measured: {timing}{loading}. Priced: that time and the calls, messages and writes per item, at "
        f"{esc(cost.get('prices', 'AWS list prices'))}:</p>"
        f'<table><tr><th scope="col">part</th><th scope="col" class="num">per 1,000 items</th></tr>{rows}</table>'
    )


def _table(table_id: str, columns: list[str], rows: Iterable[str], empty: str) -> str:
    """A table under a header row (a column named ``#…`` holds numbers), or one row saying it is empty."""
    header = "".join(
        f'<th scope="col" class="num">{c[1:]}</th>' if c.startswith("#") else f'<th scope="col">{c}</th>'
        for c in columns
    )
    body = "".join(rows) or f'<tr><td colspan="{len(columns)}" class="muted">{empty}</td></tr>'
    return f'<table id="{table_id}"><tr>{header}</tr>{body}</table>'


def _sources(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The top sources by short name (a host or file name; two feeds of one host count together)."""
    merged: dict[str, dict[str, Any]] = {}
    for s in summary.get("sources", []):
        name = short_source(str(s["source"]))
        row = merged.setdefault(name, {"name": name, "total": 0, **dict.fromkeys(ORDER, 0)})
        row["total"] += int(s["total"])
        for k in ORDER:
            row[k] += int(s[k])
    return sorted(merged.values(), key=lambda r: (-r["total"], r["name"]))


def _filters(flt: ItemFilter, sources: Sequence[str]) -> str:
    def chip(label: str, target: ItemFilter, current: bool) -> str:
        mark = ' aria-current="true"' if current else ""
        return f'<li><a href="./{esc(target.query(page=1)) or "."}"{mark}>{esc(label)}</a></li>'

    by_sentiment = [chip("all", ItemFilter(None, flt.source), flt.sentiment is None)] + [
        chip(s, ItemFilter(s, flt.source), flt.sentiment == s) for s in ORDER
    ]
    names = list(sources)
    if flt.source is not None and flt.source not in names:
        names.append(flt.source)
    by_source = [chip("all", ItemFilter(flt.sentiment, None), flt.source is None)] + [
        chip(n, ItemFilter(flt.sentiment, n), flt.source == n) for n in names
    ]
    return (
        '<nav class="filters" aria-label="Filter the items">'
        f"<span>Sentiment:</span><ul>{''.join(by_sentiment)}</ul>"
        f"<span>Source:</span><ul>{''.join(by_source)}</ul></nav>"
    )


def _item(item: ListedItem) -> str:
    link = safe_link(item.url)
    title = item.title or (link and "the original") or ""
    heading = (
        f'<h3><a class="original" href="{esc(link)}" rel="noopener noreferrer nofollow" dir="auto">'
        f"{esc(title)}</a></h3>"
        if link
        else (f'<h3 dir="auto">{esc(title)}</h3>' if title else "")
    )
    published = f"<span>published {esc(when(item.published_at, date_only=True))}</span>" if item.published_at else ""
    return (
        f'<li data-item="{esc(item.item_id)}">{heading}'
        f'<p class="text" dir="auto">{esc(excerpt(item.text))}</p>'
        f'<p class="meta"><span class="badge">{_swatch(item.sentiment) if item.sentiment in COLOURS else ""}'
        f"{esc(item.sentiment)}</span><span>score {item.score:.3f}</span>"
        f'<span class="src" dir="auto">{esc(item.source_name)}</span>{published}'
        f"<span>analysed {esc(when(item.analyzed_at))}</span></p></li>"
    )


def _items(listed: ItemsPage, sources: Sequence[str]) -> str:
    flt = listed.filter
    what = " ".join(p for p in (flt.sentiment, "items", f"from {flt.source}" if flt.source else "") if p)
    first = (flt.page - 1) * PER_PAGE + 1
    if listed.items:
        shown = f"{what.capitalize()} {num(first)}{DASH}{num(first + len(listed.items) - 1)}, newest first"
        body = f'<ol class="items" id="recent" start="{first}">{"".join(_item(i) for i in listed.items)}</ol>'
    else:
        shown = f"No {what} analysed in the last {SUMMARY_DAYS} days" + (" on this page" if flt.page > 1 else "")
        body = f'<ol class="items" id="recent"></ol><p class="muted">{esc(shown)}.</p>'
    pager = []
    if flt.page > 1:
        pager.append(f'<a href="./{esc(flt.query(page=flt.page - 1)) or "."}" rel="prev">Newer items</a>')
    if listed.has_more:
        pager.append(f'<a href="./{esc(flt.query(page=flt.page + 1))}" rel="next">More items</a>')
    download = ItemFilter(flt.sentiment, flt.source).query()
    return (
        f"{_filters(flt, sources)}"
        f'<p class="muted">{esc(shown)} (items analysed in the last {SUMMARY_DAYS} days). Download these: '
        f'<a id="download-csv" href="items.csv{esc(download)}" download>CSV</a> · '
        f'<a id="download-json" href="items.json{esc(download)}" download>JSON</a> '
        f"(the newest {num(DOWNLOAD_LIMIT)} at most).</p>"
        f"{body}" + (f'<nav class="pager" aria-label="More items">{"".join(pager)}</nav>' if pager else "")
    )


def _recent_from_summary(summary: dict[str, Any]) -> ItemsPage:
    """The first, unfiltered page of items: the summary's recent items (the 12 newest, with their links
    when the summary has them), and whether more were analysed in the window the item list reads."""
    from sentiment_dashboard.items import ListedItem

    def text(row: dict[str, Any], key: str) -> str | None:
        value = row.get(key)
        return value if isinstance(value, str) else None

    items = [
        ListedItem(
            item_id=str(r["item_id"]),
            title=text(r, "title"),
            url=text(r, "url"),
            text=str(r["text"]),
            sentiment=str(r["sentiment"]),
            score=float(r["score"]),
            analyzed_at=str(r["analyzed_at"]),
            published_at=text(r, "published_at"),
            source=str(r.get("source", "")),
            source_name=short_source(str(r.get("source", ""))),
            model_version=str(r.get("model_version", "")),
        )
        for r in summary.get("recent", [])[:PER_PAGE]
    ]
    in_window = sum(int(d[s]) for d in summary.get("days", []) for s in ORDER)
    return ItemsPage(filter=ItemFilter(), items=items, has_more=in_window > len(items))


def page(
    summary: dict[str, Any],
    *,
    title: str = "Sentiment analyzer",
    items: ItemsPage | None = None,
    empty_hint: str | None = None,
    cache_ttl: int = 30,
) -> str:
    """The whole HTML document for a ``GET /api/summary`` body (and one page of items)."""
    analyzed = int(summary["analyzed"])
    cards = [("total", "items stored", summary["total"], ""), ("analyzed", "analysed", analyzed, "")]
    cards += [("pending", "waiting for analysis", summary["pending"], "")]
    cards += [(s, s, summary[s], share(int(summary[s]), analyzed)) for s in ORDER]
    card_html = "".join(
        f'<div class="card {esc(key)}"><dt>{esc(label)}</dt><dd><span id="{esc(key)}">{num(value)}</span>'
        + (f'<span class="share" id="{esc(key)}-share">{esc(pct)}</span>' if pct and analyzed else "")
        + "</dd></div>"
        for key, label, value, pct in cards
    )
    sources = _sources(summary)
    source_table = _table(
        "sources",
        ["source", "#items", *(f"#{s}" for s in ORDER)],
        (
            f'<tr><td class="source" dir="auto"><a href="./?source={esc(_quote(s["name"]))}">{esc(s["name"])}</a></td>'
            f'<td class="num">{num(s["total"])}</td>'
            + "".join(f'<td class="num">{num(s[k])}</td>' for k in ORDER)
            + "</tr>"
            for s in sources
        ),
        "No analysed items yet.",
    )
    recent = summary.get("recent") or []
    as_of = when(recent[0]["analyzed_at"]) if recent else "no analysis yet"
    model = summary.get("model_version") or "none yet"
    listed = items if items is not None else _recent_from_summary(summary)
    if analyzed or int(summary["pending"]):
        charts = (
            f"<section><h2>Share per sentiment</h2>{_share_bar(summary)}</section>{_days_section(summary)}"
            if analyzed
            else ""
        )
        content = (
            charts + f"<section><h2>Sources</h2>{source_table}</section>"
            f"<section><h2>Recent items</h2>{_items(listed, [s['name'] for s in sources])}</section>"
        )
        empty = ""
        if not analyzed:  # stored, none analysed yet: say so instead of empty charts
            waiting = int(summary["pending"])
            empty = (
                f'<section id="waiting"><h2>Waiting for the analysis</h2><p>Nothing analysed yet: {num(waiting)} '
                f"item{'s' if waiting != 1 else ''} stored and waiting. The charts appear once the analysis has "
                "scored them.</p></section>"
            )
    else:
        hint = empty_hint or HOSTED_EMPTY_HINT
        command = (
            f"<p>Nothing analysed yet. Run the pipeline once — <code>{esc(hint)}</code> — then reload this page.</p>"
            if hint.startswith(("uv ", "sentiment-"))
            else f"<p>Nothing analysed yet. {esc(hint)}</p>"
        )
        empty = f'<section id="empty"><h2>Welcome</h2>{command}</section>'
        content = ""
    generated = when(summary.get("generated_at"), seconds=True)
    age = f", at most {cache_ttl} s before this page was served" if cache_ttl else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)}</title><link rel="icon" href="favicon.svg" type="image/svg+xml">'
        f"<style>{STYLE}</style></head><body>{_PATTERNS}"
        f'<header><h1>{esc(title)}</h1><p>Data as of <span id="data-as-of">{esc(as_of)}</span> (the last '
        f"analysis) · read {esc(generated)}{age} · model "
        f'<span id="model-version">{esc(model)}</span> · <a href="api/summary">JSON</a></p></header><main>'
        f"{empty}"
        f'<section class="counts" aria-label="Counts"><dl class="cards">{card_html}</dl></section>'
        f"{content}"
        f"<section><h2>Cost per 1,000 items</h2>{_cost(summary.get('cost_per_1000_items'), analyzed)}</section>"
        "</main></body></html>\n"
    )


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
