"""A real browser on the local dashboard, opened before any run, while real pipeline runs happen.

``sentiment-local dashboard`` (a subprocess) is started over an *empty* state directory, then
``sentiment-local run`` (another subprocess, the shared model) ingests two feeds into it, one after the
other, while the dashboard stays up; the page is read after each step. Feed A has one item whose text is
``… <script>document.title="pwned"; window.pwned = 1</script> …`` and one in Arabic (right to left);
both feeds give every item a link, a title and a publication date. Debian's Chromium, driven by
Playwright through its executable path, then checks what a person meets:

* every number shown equals what the saved items table says (counted from the items, not from the
  counters the page reads); hostile markup is text and nothing ran;
* at 390 and 1280 px nothing scrolls sideways; axe-core reports no serious or critical WCAG 2.1 A/AA
  violation; each chart's accessibility snapshot names every sentiment with its count and share;
* the recent items link to their originals; filtering by sentiment and by source (following the pages)
  and the CSV/JSON downloads return exactly the matching items; a bad query parameter is a 400;
* screenshots at both widths in ``build/`` (copied to ``docs/`` with ``SENTIMENT_UPDATE_DOCS_SCREENSHOT=1``).

Chromium comes from apt and axe-core from npm (``.ci/run`` installs both: ``npm ci`` in ``.ci/axe``, a
pinned version checked against the lock file's integrity hash); Playwright's own browser download is
never used. Without them the tests skip, unless ``SENTIMENT_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
where a missing browser or axe-core is a failure.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from xml.sax.saxutils import escape

import pytest

from sentiment_shared.dynamo import plain

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SENTIMENT_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = Path(
    os.environ.get("SENTIMENT_AXE_JS", REPO_ROOT / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js")
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = '<script>document.title="pwned"; window.pwned = 1</script>'
RTL = "المنتج رائع جدا وأنا سعيد به"
FEED_A = [
    "I absolutely love this kettle, it boils fast and looks great.",
    "The blender broke after two days and support never answered.",
    f"Lovely colour {HOSTILE} and the strap feels sturdy.",
    "Terrible battery life, it dies before lunch every day.",
    "Works exactly as described, a solid purchase.",
    "The parcel arrived on Tuesday.",
    RTL,
    "Awful smell from the plastic, I returned it at once.",
]
FEED_B = [
    "Wonderful sound, the best headphones I have owned.",
    "The lid cracked on the first wash, very disappointing.",
    "Great value and friendly delivery people.",
    "Useless manual and the app keeps crashing.",
    "Comfortable and warm, I wear it every day.",
    "It is a chair.",
    "Beautiful finish, my kitchen looks new.",
    "Slow, noisy and it overheats, avoid.",
]
SENTIMENTS = ("positive", "neutral", "negative")
NOW = datetime.now(UTC).replace(microsecond=0)
"""The feeds' items were published 2 and 5 days before the test: two bars in the per-publication-day chart."""
BUILD = REPO_ROOT / "build"
SCREENSHOTS = {1280: BUILD / "dashboard.png", 390: BUILD / "dashboard-mobile.png"}
DOCS_SCREENSHOTS = {1280: REPO_ROOT / "docs" / "dashboard.png", 390: REPO_ROOT / "docs" / "dashboard-mobile.png"}


def _sentiment_local() -> list[str]:
    script = Path(sys.executable).parent / "sentiment-local"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sentiment_local.cli"]


def _required(path: Path, reason: str) -> Path:
    if not path.is_file():
        if os.environ.get("SENTIMENT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " — required here (SENTIMENT_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def chromium() -> Path:
    return _required(CHROMIUM, f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)")


@pytest.fixture(scope="module")
def axe_js() -> Path:
    return _required(AXE_JS, f"no axe-core at {AXE_JS}: `npm ci --prefix .ci/axe` (.ci/run does)")


def _write_feed(path: Path, name: str, texts: list[str], host: str) -> None:
    # The description is HTML-escaped twice over: the feed's text, once decoded, is literal markup.
    items = "".join(
        f"<item><guid>{name}-{n}</guid><title>{name.upper()} review {n}</title>"
        f"<link>https://{host}/reviews/{name}-{n}?utm_source=rss&amp;ref=feed</link>"
        f"<pubDate>{format_datetime(NOW - timedelta(days=5 if n % 2 else 2), usegmt=True)}</pubDate>"
        f"<description>{escape(escape(text))}</description></item>"
        for n, text in enumerate(texts)
    )
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name} reviews</title>{items}'
        "</channel></rss>",
        encoding="utf-8",
    )


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8")


@dataclass
class Live:
    """The dashboard's URL and state, and what its page said before and after each run."""

    url: str
    state_dir: Path
    pages: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def live(shared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``sentiment-local dashboard --port 0`` over an empty state, then two real runs while it serves."""
    work = tmp_path_factory.mktemp("browser")
    state = work / "state"
    process = subprocess.Popen(
        [*_sentiment_local(), "dashboard", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the server listens (or the process ends)
        if not line.startswith("Dashboard: "):
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"dashboard did not start without a state: {line!r} {err[-2000:]}")
        result = Live(url=line.split()[1], state_dir=state)
        result.pages["empty"] = _get(result.url)[2]
        for name, texts, host in (("a", FEED_A, "www.kettles.example"), ("b", FEED_B, "shop.example.org")):
            feed = work / f"reviews-{name}.xml"
            _write_feed(feed, name, texts, host)
            run = subprocess.run(
                [*_sentiment_local(), "run", "--model-dir", str(shared_model_dir), "--feed", str(feed),
                 "--state-dir", str(state), "--json"],
                capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr[-2000:]
            assert json.loads(run.stdout)["ingested"] == len(texts)
            result.pages[f"after-{name}"] = _get(result.url)[2]
        yield result
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reaps it and closes both pipes


def _items(state_dir: Path) -> list[dict[str, Any]]:
    """The saved items (not the counters the page reads), as plain values."""
    out = []
    for line in (state_dir / "items-table.jsonl").read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        if "#" in raw["item_id"]["S"]:  # bookkeeping: feed state, run markers, counters
            continue
        out.append(plain(raw))
    return out


def _truth(state_dir: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for item in _items(state_dir):
        counts["total"] += 1
        counts[item.get("sentiment") or "pending"] += 1
    counts["analyzed"] = counts["total"] - counts["pending"]
    return {k: counts[k] for k in ("total", "analyzed", "pending", "positive", "negative", "neutral")}


def _number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %"


@contextmanager
def _page(chromium: Path, width: int, **options: Any) -> Iterator[Any]:
    """A page ``width`` px wide (900 high) in a new headless Chromium (``options``: more context options),
    closed with its browser on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": 900}, **options)
        finally:
            browser.close()


def test_the_server_starts_without_state_and_a_run_made_while_it_is_open_appears_on_reload(live: Live) -> None:
    empty = live.pages["empty"]
    assert 'id="empty"' in empty
    assert "sentiment-local run" in empty  # the one command a new user needs
    assert re.search(r'id="total">0<', empty)
    after_a, after_b = live.pages["after-a"], live.pages["after-b"]
    assert re.search(rf'id="total">{len(FEED_A)}<', after_a)
    assert re.search(rf'id="total">{len(FEED_A) + len(FEED_B)}<', after_b)
    assert 'id="empty"' not in after_b
    # "data as of" is the last analysis, not the time of the request
    last = max(i["analyzed_at"] for i in _items(live.state_dir))
    assert f"{last[:10]} {last[11:16]} UTC" in re.sub(r"<[^>]+>", "", after_b.split('id="data-as-of"')[1][:300])


def test_the_browser_shows_the_tables_numbers_and_runs_no_feed_markup(chromium: Path, live: Live) -> None:
    truth = _truth(live.state_dir)
    assert truth["total"] == len(FEED_A) + len(FEED_B)
    with _page(chromium, 1280) as page:
        dialogs: list[str] = []
        console: list[str] = []
        failed: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: console.append(m.text))
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        response = page.goto(live.url, wait_until="load")
        assert response is not None
        assert response.status == 200
        assert "script-src 'none'" in (response.header_value("content-security-policy") or "")
        shown = {key: _number(page.inner_text(f"#{key}")) for key in truth}
        assert shown == truth
        api = json.loads(page.context.request.get(live.url + "api/summary").text())
        assert {k: api[k] for k in truth} == truth
        for sentiment in SENTIMENTS:
            assert page.inner_text(f"#{sentiment}-share") == _share(truth[sentiment], truth["analyzed"])
        # The hostile item's markup is text on the page, and nothing of it ran
        hostile = [i for i in _items(live.state_dir) if HOSTILE in i["text"]]
        assert len(hostile) == 1
        page.goto(live.url + "?source=reviews-a.xml", wait_until="load")
        text = page.locator(f'li[data-item="{hostile[0]["item_id"]}"] .text')
        assert HOSTILE in text.inner_text()
        assert page.title().startswith("Sentiment analyzer")
        assert page.evaluate("() => document.scripts.length") == 0
        assert page.evaluate("() => typeof window.pwned") == "undefined"
        assert dialogs == []
        # Right-to-left text keeps its direction: every text cell says dir="auto"
        assert page.locator(".text:not([dir=auto])").count() == 0
        # The stylesheet is allowed by its hash; the favicon is served (no 404 on any load)
        assert not [c for c in console if "Content Security Policy" in c], console
        assert page.evaluate("() => getComputedStyle(document.querySelector('header')).backgroundColor") == (
            "rgb(29, 35, 48)"
        )
        icon = page.locator("link[rel=icon]").get_attribute("href")
        assert icon is not None
        assert page.context.request.get(urljoin(live.url, icon)).status == 200
        assert page.context.request.get(live.url + "favicon.ico").status == 200
        assert failed == []


@pytest.mark.parametrize("width", [390, 1280])
def test_nothing_scrolls_sideways_and_axe_finds_no_serious_violation(
    chromium: Path, axe_js: Path, live: Live, width: int
) -> None:
    # axe-core is a script and the page's CSP allows none: this context bypasses the CSP
    with _page(chromium, width, bypass_csp=True) as page:
        for path in ("(empty state)", "", "?sentiment=negative", "?source=reviews-b.xml&page=2"):
            if path == "(empty state)":  # the page the dashboard served before the first run
                page.set_content(live.pages["empty"], wait_until="load")
            else:
                page.goto(live.url + path, wait_until="load")
            overflow = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert overflow[0] <= overflow[1], f"{path or '/'} at {width} px scrolls sideways: {overflow}"
            page.add_script_tag(path=str(axe_js))
            result = page.evaluate(
                "async () => await axe.run(document, {runOnly: {type: 'tag', "
                "values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
            )
            bad = [
                (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert bad == [], f"{path or '/'} at {width} px: {bad}"
        page.goto(live.url, wait_until="load")
        BUILD.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS[width]), full_page=True)
    assert SCREENSHOTS[width].stat().st_size > 10_000
    if os.environ.get("SENTIMENT_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(SCREENSHOTS[width], DOCS_SCREENSHOTS[width])


def test_each_chart_names_every_sentiment_with_its_numbers(chromium: Path, live: Live) -> None:
    truth = _truth(live.state_dir)
    with _page(chromium, 390) as page:
        page.goto(live.url, wait_until="load")
        charts = page.locator("figure.chart")
        assert charts.count() == 2
        for n in range(2):
            snapshot = charts.nth(n).aria_snapshot()
            for sentiment in SENTIMENTS:
                count, share = truth[sentiment], _share(truth[sentiment], truth["analyzed"])
                assert re.search(rf"{sentiment}\W+{count}\b[^\n]*{re.escape(share)}", snapshot), (
                    sentiment,
                    snapshot,
                )
        # The per-day chart counts by publication date (the runs were both today; the items were not)
        assert "Published per day" in page.inner_text("main")
        per_day: Counter[str] = Counter(i["published_at"][:10] for i in _items(live.state_dir))
        assert len(per_day) == 2
        rows = page.locator("#days-chart table tr").evaluate_all(
            "rows => rows.slice(1).map(r => [...r.cells].map(c => c.textContent))"
        )
        assert {r[0]: _number(r[-1]) for r in rows} == dict(per_day)


def _listed(page: Any, url: str) -> list[str]:
    """The item ids shown on a filtered page and the pages after it ("more" links)."""
    ids: list[str] = []
    for _ in range(20):
        page.goto(url, wait_until="load")
        ids += page.locator("#recent li[data-item]").evaluate_all("els => els.map(e => e.dataset.item)")
        more = page.locator("a[rel=next]")
        if not more.count():
            return ids
        url = urljoin(url, more.first.get_attribute("href") or "")
    raise AssertionError("more than 20 pages")


def test_items_link_to_their_originals_and_filters_and_downloads_return_exactly_the_matching_items(
    chromium: Path, live: Live
) -> None:
    items = [i for i in _items(live.state_dir) if i.get("sentiment")]
    by_id = {i["item_id"]: i for i in items}
    with _page(chromium, 1280) as page:
        page.goto(live.url, wait_until="load")
        shown = page.locator("#recent li[data-item]")
        assert shown.count() == 12  # the 12 most recent; the rest are one "more" away
        for n in range(shown.count()):
            row = shown.nth(n)
            item = by_id[row.get_attribute("data-item") or ""]
            link = row.locator("a.original")
            assert link.get_attribute("href") == item["url"]
            assert link.inner_text() == item["title"]
        assert sorted(_listed(page, live.url)) == sorted(by_id)
        # Short source names, no paths or query strings
        sources = page.locator("#sources td.source").all_inner_texts()
        assert sorted(sources) == ["reviews-a.xml", "reviews-b.xml"]
        filters: list[tuple[str, set[str]]] = [
            (f"sentiment={s}", {i["item_id"] for i in items if i["sentiment"] == s}) for s in SENTIMENTS
        ]
        filters += [
            (f"source=reviews-{f}.xml", {i["item_id"] for i in items if i["source"].endswith(f"reviews-{f}.xml")})
            for f in "ab"
        ]
        filters.append(
            (
                "sentiment=negative&source=reviews-b.xml",
                {i["item_id"] for i in items if i["sentiment"] == "negative" and "reviews-b" in i["source"]},
            )
        )
        for query, expected in filters:
            assert expected, query
            assert sorted(_listed(page, f"{live.url}?{query}")) == sorted(expected), query
            page.goto(f"{live.url}?{query}", wait_until="load")
            csv_href = page.locator("a#download-csv").get_attribute("href") or ""
            json_href = page.locator("a#download-json").get_attribute("href") or ""
            response = page.context.request.get(urljoin(page.url, csv_href))
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(response.text())))
            assert sorted(r["item_id"] for r in rows) == sorted(expected), query
            for row in rows:
                assert row["url"] == by_id[row["item_id"]]["url"]
            response = page.context.request.get(urljoin(page.url, json_href))
            assert response.status == 200
            body = json.loads(response.text())
            assert sorted(i["item_id"] for i in body["items"]) == sorted(expected), query
        # A bad query parameter is a 400 with a plain message
        for query in ("sentiment=happy", "page=0", "page=x", "colour=red", "sentiment=positive&sentiment=negative"):
            status, headers, body = _get(f"{live.url}?{query}")
            assert status == 400, query
            assert headers["Content-Type"].startswith("text/plain"), query
            assert len(body.strip().splitlines()) == 1, body
        assert _get(f"{live.url}items.csv?sentiment=bad")[0] == 400
