"""A real browser on the local dashboard after a real pipeline run: the numbers, hostile text, a screenshot.

``sentiment-local run`` (a subprocess, the shared model) ingests a small feed in which one item's text is
``… <script>document.title="pwned"; window.pwned = 1</script> …``; then ``sentiment-local dashboard``
(another subprocess) serves the saved state on 127.0.0.1 and Debian's Chromium, driven by Playwright
through its executable path, loads it. The test checks that every number shown equals what the saved
items table says (counted from the items, not from the counters the page reads), that the hostile item
shows its markup as text and that nothing ran, and saves ``build/dashboard.png``.

Chromium comes from apt (``.ci/run`` installs it); Playwright's own browser download is never used.
Without ``/usr/bin/chromium`` the test skips, unless ``SENTIMENT_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SENTIMENT_CHROMIUM", "/usr/bin/chromium"))
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
REVIEWS = [
    "I absolutely love this kettle, it boils fast and looks great.",
    "The blender broke after two days and support never answered.",
    f"Lovely colour {HOSTILE} and the strap feels sturdy.",
    "Terrible battery life, it dies before lunch every day.",
    "Works exactly as described, a solid purchase.",
    "The parcel arrived on Tuesday.",
]
SCREENSHOT = REPO_ROOT / "build" / "dashboard.png"


def _sentiment_local() -> list[str]:
    script = Path(sys.executable).parent / "sentiment-local"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sentiment_local.cli"]


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)"
        if os.environ.get("SENTIMENT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " — required here (SENTIMENT_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return CHROMIUM


def _write_feed(path: Path) -> None:
    # The description is HTML-escaped twice over: the feed's text, once decoded, is literal markup.
    items = "".join(
        f"<item><guid>browser-{n}</guid><title>Review {n}</title>"
        f"<description>{escape(escape(text))}</description></item>"
        for n, text in enumerate(REVIEWS)
    )
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>browser</title>{items}'
        "</channel></rss>",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def state_dir(shared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pipeline run (the CLI, in its own process) over the feed; its saved state."""
    work = tmp_path_factory.mktemp("browser")
    feed = work / "feed.xml"
    _write_feed(feed)
    state = work / "state"
    run = subprocess.run(
        [*_sentiment_local(), "run", "--model-dir", str(shared_model_dir), "--feed", str(feed),
         "--state-dir", str(state), "--json"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["ingested"] == len(REVIEWS)
    assert report["dashboard_command"].endswith(f"sentiment-local dashboard --state-dir {state}")
    return state


@pytest.fixture(scope="module")
def dashboard_url(state_dir: Path) -> Iterator[str]:
    """``sentiment-local dashboard --port 0`` in its own process; its URL from the line it prints."""
    process = subprocess.Popen(
        [*_sentiment_local(), "dashboard", "--port", "0", "--state-dir", str(state_dir)],
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
            pytest.fail(f"dashboard did not start: {line!r} {err[-2000:]}")
        yield line.split()[1]
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reaps it and closes both pipes


def _table_truth(state_dir: Path) -> dict[str, int]:
    """The numbers straight from the saved items (not from the counters the page reads)."""
    counts: Counter[str] = Counter()
    for line in (state_dir / "items-table.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if "#" in item["item_id"]["S"]:  # bookkeeping: feed state, run markers, counters
            continue
        counts["total"] += 1
        sentiment = item.get("sentiment", {}).get("S")
        counts[sentiment or "pending"] += 1
    counts["analyzed"] = counts["total"] - counts["pending"]
    return {k: counts[k] for k in ("total", "analyzed", "pending", "positive", "negative", "neutral")}


def test_the_browser_shows_the_tables_numbers_and_runs_no_feed_markup(
    chromium: Path, dashboard_url: str, state_dir: Path
) -> None:
    from playwright.sync_api import sync_playwright

    truth = _table_truth(state_dir)
    assert truth["total"] == len(REVIEWS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []
            console: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("console", lambda m: console.append(m.text))
            started = time.perf_counter()
            response = page.goto(dashboard_url, wait_until="load")
            load_ms = (time.perf_counter() - started) * 1000
            assert response is not None
            assert response.status == 200
            assert "script-src 'none'" in (response.header_value("content-security-policy") or "")
            # Then every number on the page is the table's
            shown = {key: int(page.inner_text(f"#{key}")) for key in truth}
            assert shown == truth
            api = json.loads(page.context.request.get(dashboard_url + "api/summary").text())
            assert {k: api[k] for k in truth} == truth
            for sentiment in ("positive", "negative", "neutral"):
                expected = f"{100 * truth[sentiment] / truth['analyzed']:.1f} %"
                assert page.inner_text(f"#{sentiment}-share") == expected
            # And the hostile item's markup is text on the page, and nothing of it ran
            hostile = [r for r in api["recent"] if HOSTILE in r["text"]]
            assert len(hostile) == 1
            cell = page.locator(f'tr[data-item="{hostile[0]["item_id"]}"] td.text')
            assert HOSTILE in cell.inner_text()
            assert page.title() == "Sentiment analyzer"
            assert page.evaluate("() => document.scripts.length") == 0
            assert page.evaluate("() => typeof window.pwned") == "undefined"
            assert dialogs == []
            # The stylesheet is allowed by its hash: nothing is blocked, the page is styled
            assert not [c for c in console if "Content Security Policy" in c], console
            assert page.evaluate("() => getComputedStyle(document.querySelector('header')).backgroundColor") == (
                "rgb(29, 35, 48)"
            )
            assert page.locator("svg rect").count() > 0
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    print(f"page load {load_ms:.0f} ms; screenshot {SCREENSHOT}")
    if os.environ.get("SENTIMENT_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(SCREENSHOT, REPO_ROOT / "docs" / "dashboard.png")
