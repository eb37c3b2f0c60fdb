"""The dashboard page's details: colours, numbers, times, query parameters, links, downloads, the icon.

The colour checks simulate colour-vision deficiencies with Machado, Oliveira & Fernandes (2009)'s
matrices (severity 1.0, applied in linear RGB) and compare in CIELAB (ΔE*76): the page's three sentiment
colours must stay at least 20 apart under protanopia, deuteranopia and tritanopia, and each must have at
least 3:1 contrast with white (WCAG 2.1 1.4.11, graphics). The colours before issue 22 fail both.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from typing import Any

import pytest

from sentiment_dashboard import app, handler, render
from sentiment_dashboard.items import (
    ItemFilter,
    ItemsPage,
    ListedItem,
    QueryError,
    parse_query,
    safe_link,
    short_source,
)

pytestmark = pytest.mark.unit

OLD_COLOURS = {"positive": "#2e7d32", "negative": "#c62828", "neutral": "#9e9d24"}
MACHADO = {
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900)),
}


def _linear(hex_colour: str) -> list[float]:
    channels = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]


def _luminance(rgb: list[float]) -> float:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def _contrast_on_white(hex_colour: str) -> float:
    return 1.05 / (_luminance(_linear(hex_colour)) + 0.05)


def _lab(rgb: list[float]) -> tuple[float, float, float]:
    x = (0.4124 * rgb[0] + 0.3576 * rgb[1] + 0.1805 * rgb[2]) / 0.95047
    y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    z = (0.0193 * rgb[0] + 0.1192 * rgb[1] + 0.9505 * rgb[2]) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _seen_as(hex_colour: str, deficiency: str) -> tuple[float, float, float]:
    rgb = _linear(hex_colour)
    matrix = MACHADO[deficiency]
    simulated = [min(1.0, max(0.0, sum(row[k] * rgb[k] for k in range(3)))) for row in matrix]
    return _lab(simulated)


def _closest_pair(colours: dict[str, str], deficiency: str) -> float:
    return min(
        sum((p - q) ** 2 for p, q in zip(_seen_as(a, deficiency), _seen_as(b, deficiency), strict=True)) ** 0.5
        for a, b in itertools.combinations(colours.values(), 2)
    )


def _problems(colours: dict[str, str]) -> list[str]:
    found = [f"{s} {c} {_contrast_on_white(c):.2f}:1" for s, c in colours.items() if _contrast_on_white(c) < 3]
    found += [f"{d} ΔE {_closest_pair(colours, d):.1f}" for d in MACHADO if _closest_pair(colours, d) < 20]
    return found


def test_the_sentiment_colours_pass_3_to_1_and_stay_apart_under_colour_blindness() -> None:
    assert _problems(render.COLOURS) == []
    # The colours before: neutral at 2.88:1, positive and negative ~16 apart under deuteranopia
    assert _problems(OLD_COLOURS) == ["neutral #9e9d24 2.88:1", "protanopia ΔE 18.9", "deuteranopia ΔE 15.8"]


def _summary(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total": 12_345,
        "analyzed": 12_340,
        "pending": 5,
        "positive": 6_000,
        "negative": 4_000,
        "neutral": 2_340,
        "days": [{"date": f"2026-11-{d:02d}", "positive": 200, "negative": 133, "neutral": 78} for d in range(1, 31)],
        "recent": [
            {
                "item_id": "abc",
                "text": "نص عربي",
                "sentiment": "negative",
                "score": 0.9,
                "analyzed_at": "2026-11-29T12:00:00.123456+00:00",
                "source": "https://www.example.com/feed.xml?utm_source=x",
                "model_version": "v1",
            }
        ],
        "sources": [
            {
                "source": "https://www.example.com/feed.xml?utm_source=x",
                "total": 10,
                "positive": 6,
                "negative": 3,
                "neutral": 1,
            },
            {"source": "/home/me/feeds/kettles.xml", "total": 4, "positive": 1, "negative": 1, "neutral": 2},
        ],
        "model_version": "v1",
        "generated_at": "2026-11-29T12:00:05+00:00",
        "cost_per_1000_items": None,
    }
    body.update(overrides)
    return body


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_numbers_have_thousands_separators_and_times_are_formatted() -> None:
    html = render.page(_summary())
    assert 'id="total">12,345<' in html
    assert 'id="positive">6,000<' in html
    assert 'id="data-as-of">2026-11-29 12:00 UTC<' in html  # the last analysis, not the request
    assert "read 2026-11-29 12:00:05 UTC" in html
    assert "+00:00" not in _text(html)
    assert "T12:00" not in _text(html)


def test_one_order_per_sentiment_everywhere_and_charts_say_their_numbers() -> None:
    html = render.page(_summary())
    share_label = re.search(r'id="share-chart"><svg role="img" aria-label="([^"]+)"', html)
    assert share_label is not None
    assert share_label.group(1) == (
        "Share per sentiment of 12,340 analysed items: positive 6,000 (48.6 %), neutral 2,340 (19.0 %), "
        "negative 4,000 (32.4 %)"
    )
    days_label = re.search(r'id="days-chart"><svg role="img" aria-label="([^"]+)"', html)
    assert days_label is not None
    assert days_label.group(1) == (
        "Items analysed per day, last 30 days, 12,330 in all: positive 6,000 (48.7 %), neutral 2,340 (19.0 %), "
        "negative 3,990 (32.4 %); busiest day Nov 1 with 411"
    )
    # Every place that lists the sentiments lists them positive, neutral, negative
    for block in [*re.findall(r'<ul class="legend">.*?</ul>', html), html.split('class="cards"')[1].split("</dl>")[0]]:
        found = list(re.findall(r"positive|neutral|negative", _text(block)))
        assert found == ["positive", "neutral", "negative"], block
    headers = re.findall(r'<th scope="col" class="num">(positive|neutral|negative)</th>', html)
    assert headers == ["positive", "neutral", "negative"] * 2  # sources table and the per-day numbers
    # A second cue besides colour: each sentiment has its own fill pattern
    for sentiment in render.ORDER:
        assert f'fill="url(#fill-{sentiment})"' in html


def test_charts_are_fluid() -> None:
    html = render.page(_summary())
    for svg in re.findall(r"<svg role=\"img\"[^>]*>", html):
        assert "width=" not in svg  # the CSS makes it 100 % of its card; its parts are placed in percent


def test_sources_have_short_names_and_link_to_their_filter() -> None:
    html = render.page(_summary())
    assert '<a href="./?source=example.com">example.com</a>' in html
    assert '<a href="./?source=kettles.xml">kettles.xml</a>' in html
    assert "utm_source" not in html
    assert "/home/me" not in html


@pytest.mark.parametrize(
    ("source", "short"),
    [
        ("https://www.example.com/feed.xml?utm_source=x&utm_medium=rss", "example.com"),
        ("http://blog.example.org:8080/rss", "blog.example.org"),
        ("/tmp/feeds/reviews-a.xml", "reviews-a.xml"),
        ("C:\\feeds\\local.xml", "local.xml"),
        ("direct", "direct"),
        ("", "direct"),
    ],
)
def test_short_source(source: str, short: str) -> None:
    assert short_source(source) == short


def test_only_http_links_are_links() -> None:
    assert safe_link("https://example.com/a?b=1") == "https://example.com/a?b=1"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "/relative", "//host/x", None, ""):
        assert safe_link(bad) is None


def _listed(**overrides: Any) -> ListedItem:
    fields: dict[str, Any] = {
        "item_id": "i1",
        "title": "A <b>title</b>",
        "url": "https://example.com/r/1?utm_source=rss",
        "text": "text",
        "sentiment": "positive",
        "score": 0.5,
        "analyzed_at": "2026-11-29T12:00:00+00:00",
        "published_at": "2026-11-20T08:00:00+00:00",
        "source": "https://example.com/feed",
        "source_name": "example.com",
        "model_version": "v1",
    }
    fields.update(overrides)
    return ListedItem(**fields)


def test_items_link_to_their_original_and_text_keeps_its_direction() -> None:
    page = ItemsPage(
        filter=ItemFilter(), items=[_listed(), _listed(item_id="i2", url="javascript:alert(1)")], has_more=True
    )
    html = render.page(_summary(), items=page)
    assert (
        '<a class="original" href="https://example.com/r/1?utm_source=rss" rel="noopener noreferrer nofollow" '
        'dir="auto">A &lt;b&gt;title&lt;/b&gt;</a>' in html
    )
    assert "javascript:" not in html
    assert "published 2026-11-20" in html
    assert re.findall(r'class="text"(?! dir="auto")', html) == []
    assert '<a href="./?page=2" rel="next">More items</a>' in html


def test_filters_keep_each_other_and_downloads_carry_the_filter() -> None:
    page = ItemsPage(
        filter=ItemFilter("negative", "example.com", 2), items=[_listed(sentiment="negative")], has_more=False
    )
    html = render.page(_summary(), items=page)
    assert '<a href="./?sentiment=negative&amp;source=example.com" aria-current="true">negative</a>' in html
    assert '<a href="./?source=example.com">all</a>' in html  # "all sentiments" keeps the source
    assert 'href="items.csv?sentiment=negative&amp;source=example.com"' in html
    assert 'href="items.json?sentiment=negative&amp;source=example.com"' in html
    assert 'rel="prev"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sentiment=happy", "sentiment must be one of positive, negative, neutral"),
        ("page=0", "page must be a whole number from 1 to 500"),
        ("page=x", "page must be a whole number"),
        ("page=99999", "page must be a whole number"),
        ("colour=red", "unknown parameter 'colour'"),
        ("sentiment=positive&sentiment=negative", "sentiment is given twice"),
        ("source=" + "x" * 301, "source must be a source name"),
        ("source=%0a", "source must be a source name"),
    ],
)
def test_a_bad_query_parameter_is_a_400_with_one_plain_line(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(query)
    calls: list[int] = []
    response = app.respond("GET", "/", lambda: calls.append(1) or _summary(), query=query)  # type: ignore[func-returns-value]
    assert response.status == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.body.decode().count("\n") == 1
    assert message in response.body.decode()
    assert calls == []  # nothing was read
    assert app.respond("GET", "/items.csv", _summary, query=query).status == 400


def test_good_queries_parse() -> None:
    assert parse_query("") == ItemFilter()
    assert parse_query("sentiment=neutral&source=example.com&page=3") == ItemFilter("neutral", "example.com", 3)
    assert parse_query("sentiment=&source=") == ItemFilter()


def test_downloads_hold_the_filtered_items_and_no_formulas() -> None:
    seen: list[tuple[ItemFilter, int, int]] = []

    def load_items(flt: ItemFilter, skip: int, limit: int) -> ItemsPage:
        seen.append((flt, skip, limit))
        return ItemsPage(filter=flt, items=[_listed(text='=HYPERLINK("http://x")', title="+1")], has_more=False)

    response = app.respond("GET", "/items.csv", _summary, query="sentiment=positive&page=3", load_items=load_items)
    assert response.status == 200
    assert seen == [(ItemFilter("positive"), 0, 5000)]  # all matching items, not one page
    assert response.headers["Content-Disposition"] == 'attachment; filename="items-positive.csv"'
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    assert rows[0]["item_id"] == "i1"
    assert rows[0]["text"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["title"] == "'+1"
    assert rows[0]["url"] == "https://example.com/r/1?utm_source=rss"
    body = json.loads(app.respond("GET", "/items.json", _summary, load_items=load_items).body)
    assert body["count"] == 1
    assert body["items"][0]["text"] == '=HYPERLINK("http://x")'  # JSON is data, not a spreadsheet


def test_the_page_asks_for_one_page_of_items() -> None:
    seen: list[tuple[ItemFilter, int, int]] = []

    def load_items(flt: ItemFilter, skip: int, limit: int) -> ItemsPage:
        seen.append((flt, skip, limit))
        return ItemsPage(filter=flt, items=[], has_more=False)

    html = app.respond("GET", "/", _summary, query="source=example.com&page=2", load_items=load_items).body.decode()
    assert seen == [(ItemFilter(None, "example.com", 2), 12, 12)]
    assert "No items from example.com analysed in the last 30 days on this page" in html


def test_the_icon_is_served_and_allowed() -> None:
    for path in ("/favicon.svg", "/favicon.ico"):
        response = app.respond("GET", path, _summary)
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/svg+xml"
        assert response.body.startswith(b"<svg")
    assert '<link rel="icon" href="favicon.svg"' in render.page(_summary())
    assert "img-src 'self'" in render.CONTENT_SECURITY_POLICY
    assert "script-src 'none'" in render.CONTENT_SECURITY_POLICY


def test_the_lambda_passes_the_query_string() -> None:
    seen: list[ItemFilter] = []

    def load_items(flt: ItemFilter, skip: int, limit: int) -> ItemsPage:
        seen.append(flt)
        return ItemsPage(filter=flt, items=[], has_more=False)

    function = handler.build_handler(_summary, load_items)
    event = {"rawPath": "/", "rawQueryString": "sentiment=neutral", "requestContext": {"http": {"method": "GET"}}}
    assert function(event, None)["statusCode"] == 200
    assert seen == [ItemFilter("neutral")]
    event["rawQueryString"] = "sentiment=nope"
    assert function(event, None)["statusCode"] == 400


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "$0"),
        (0.00002, "$0.000020"),
        (0.000024, "$0.000024"),
        (0.0421, "$0.042"),
        (0.5, "$0.50"),
        (1234.5, "$1,234.50"),
    ],
)
def test_dollars_never_hide_small_amounts(amount: float, shown: str) -> None:
    assert render.usd(amount) == shown


@pytest.mark.parametrize("route", ["/items.csv", "/items.json"])
def test_a_download_fits_the_function_urls_6_mb_and_says_when_it_was_cut(route: str) -> None:
    # 5,000 items of 2,000 characters (10 MB) would be 13 MB base64: Lambda's buffered function URL refuses > 6 MB
    def load_items(flt: ItemFilter, skip: int, limit: int) -> ItemsPage:
        items = [_listed(item_id=f"i{n}", text="é" * 1000) for n in range(limit)]
        return ItemsPage(filter=flt, items=items, has_more=True, truncated=True)

    response = app.respond("GET", route, _summary, load_items=load_items)
    assert response.status == 200
    assert len(response.body) <= app.DOWNLOAD_MAX_BYTES
    assert response.headers["X-Items-Truncated"].endswith("items: the newest that fit the download's limit")
    kept = int(response.headers["X-Items-Truncated"].split()[0])
    assert 1_000 < kept < 5_000
    if route == "/items.json":
        body = json.loads(response.body)
        assert (body["count"], body["truncated"], len(body["items"])) == (kept, True, kept)
    else:
        assert len(list(csv.DictReader(io.StringIO(response.body.decode())))) == kept
    encoded = len(json.dumps(handler.build_handler(_summary, load_items)({"rawPath": route}, None)))
    assert encoded < 6 * 1024 * 1024


def _row(item_id: str, sentiment: str | None, published: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"item_id": item_id}
    if sentiment:
        row["sentiment"] = sentiment
    if published:
        row["published_at"] = published
    return row


def test_items_per_day_of_publication_and_what_falls_outside() -> None:
    from datetime import date

    from sentiment_dashboard.summary import published_days

    rows = [
        _row("a", "positive", "2026-12-01T23:30:00-02:00"),  # 2026-12-02 in UTC
        _row("b", "negative", "2026-11-30T08:00:00+00:00"),
        _row("c", "neutral", "2026-11-30T09:00:00+00:00"),
        _row("d", "positive", "2026-10-01T09:00:00+00:00"),  # before the 30 days
        _row("e", "negative", None),  # no date
        _row("f", None, "2026-11-30T09:00:00+00:00"),  # not analysed
        _row("counter#all", "positive", "2026-11-30T09:00:00+00:00"),  # bookkeeping
        _row("g", "positive", "2027-01-01T00:00:00+00:00"),  # a feed's clock ahead: the last day
    ]
    result = published_days(rows, today=date(2026, 12, 2))
    days = {
        d["date"]: (d["positive"], d["neutral"], d["negative"])
        for d in result["days"]
        if any(d[s] for s in render.ORDER)
    }
    assert days == {"2026-11-30": (0, 1, 1), "2026-12-02": (2, 0, 0)}
    assert len(result["days"]) == 30
    assert result["earlier"] == {"positive": 1, "negative": 0, "neutral": 0}
    assert result["undated"] == {"positive": 0, "negative": 1, "neutral": 0}
    html = render.page(_summary(published_days=result))
    assert "Published per day (last 30 days, UTC)" in html
    assert "Analysed per day" not in html
    label = re.search(r'id="days-chart"><svg role="img" aria-label="([^"]+)"', html)
    assert label is not None
    assert label.group(1).startswith("Items published per day, last 30 days, 4 in all: positive 2 (50.0 %), ")
    assert label.group(1).endswith(
        "; not shown: 1 published before these days (positive 1, neutral 0, negative 0) and "
        "1 without a publication date (positive 0, neutral 0, negative 1)"
    )
    assert "1 published before these days" in _text(html.split('id="days-chart"')[1].split("</figure>")[0])


def test_the_page_says_its_age_hosted_and_the_local_server_does_not_cache() -> None:
    hosted = app.respond("GET", "/", _summary)
    assert hosted.headers["Cache-Control"] == "public, max-age=30, s-maxage=30"
    assert "read 2026-11-29 12:00:05 UTC, at most 30 s before this page was served" in hosted.body.decode()
    local = app.respond("GET", "/", _summary, cache_ttl=0)
    assert local.headers["Cache-Control"] == "no-store"  # a run made while the page is open shows on its next load
    assert "before this page was served" not in local.body.decode()


def test_items_stored_but_none_analysed_say_so_instead_of_empty_charts() -> None:
    waiting = _summary(total=3, analyzed=0, pending=3, positive=0, negative=0, neutral=0, recent=[], sources=[])
    html = render.page(waiting)
    assert "Nothing analysed yet: 3 items stored and waiting." in html
    assert "<svg role" not in html  # no "0" axis, no grey bar
    assert 'id="positive-share"' not in html  # no "positive · -"
