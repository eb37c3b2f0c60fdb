"""Feed parsing (feedparser), the HTTP fetcher's limits against an in-memory httpx transport, local file feeds."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sentiment_ingestion.feeds import (
    USER_AGENT,
    FeedError,
    FeedFetcher,
    FeedState,
    parse_feed,
)
from sentiment_local.file_feeds import LocalFeedFetcher
from sentiment_local.samples import SAMPLE_FEED_ENTRIES, sample_feed_bytes, sample_feed_path

pytestmark = pytest.mark.unit

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Shop</title>
<item><guid>g-1</guid><link>https://shop.example.com/1</link><title>Great &amp; cheap</title>
  <description>&lt;p&gt;Works &lt;b&gt;well&lt;/b&gt;&lt;/p&gt;</description>
  <pubDate>Mon, 06 Sep 2021 16:45:00 GMT</pubDate></item>
<item><link>https://shop.example.com/2</link><title>Only a link</title><description>Body two</description></item>
<item><title>Headline only, no body and no id</title></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title><id>urn:feed</id><updated>2026-11-01T00:00:00Z</updated>
<entry><id>urn:e1</id><title>Plain</title><updated>2026-11-02T10:00:00Z</updated>
  <content type="text">a&lt;b and c&gt;d</content></entry>
<entry><id>urn:e2</id><title>Rich</title><updated>2026-11-03T10:00:00Z</updated>
  <summary>short</summary>
  <content type="html">&lt;p&gt;The longer &lt;i&gt;HTML&lt;/i&gt; body&lt;/p&gt;</content></entry>
</feed>"""


def test_rss_entries_get_text_identity_link_title_and_date() -> None:
    parsed = parse_feed(RSS, source="https://shop.example.com/feed")
    first, second, third = parsed.entries
    assert parsed.warning is None
    assert (first.key, first.key_kind, first.url) == ("g-1", "guid", "https://shop.example.com/1")
    assert first.text == "<p>Works <b>well</b></p>"
    assert first.title == "Great & cheap"
    assert first.published_at == datetime(2021, 9, 6, 16, 45, tzinfo=UTC)
    assert first.source == "https://shop.example.com/feed"
    # No guid: the link is the identity
    assert (second.key, second.key_kind) == ("https://shop.example.com/2", "link")
    # Headline-only entry: the title is the text, and the core will hash it (no key)
    assert (third.text, third.key) == ("Headline only, no body and no id", None)


def test_atom_content_is_preferred_and_plain_text_is_not_parsed_as_html() -> None:
    plain, rich = parse_feed(ATOM, source="s").entries
    assert (plain.key, plain.text, plain.html) == ("urn:e1", "a<b and c>d", False)
    assert (rich.text, rich.html) == ("<p>The longer <i>HTML</i> body</p>", True)
    assert rich.published_at == datetime(2026, 11, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<?xml version='1.0'?><rss version='2.0'><channel><<<>>> &&& </rss", "malformed feed"),
        (b'{"not": "xml"}', "malformed feed"),
        (b"<html><body><p>Just a web page</p></body></html>", "not an RSS or Atom feed"),
    ],
)
def test_documents_that_are_not_feeds_raise(body: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(body, source="s")


def test_truncated_feed_keeps_recovered_entries_with_a_warning() -> None:
    body = b"<rss version='2.0'><channel><item><guid>1</guid><description>fine</description></item><item><title>cut"
    parsed = parse_feed(body, source="s")
    assert [e.key for e in parsed.entries][:1] == ["1"]
    assert parsed.warning is not None
    assert "recovered" in parsed.warning


def test_feed_with_no_entries_is_not_an_error() -> None:
    assert parse_feed(b"<rss version='2.0'><channel><title>t</title></channel></rss>", source="s").entries == []


def test_sample_feed_ships_in_the_package_with_enough_distinct_entries() -> None:
    parsed = parse_feed(sample_feed_bytes(), source="sample")
    assert parsed.warning is None
    assert len(parsed.entries) == SAMPLE_FEED_ENTRIES >= 40
    assert len({e.key for e in parsed.entries}) == len(parsed.entries)
    assert all(e.text and e.title and e.published_at for e in parsed.entries)
    assert sample_feed_path().read_bytes() == sample_feed_bytes()


# --------------------------------------------------------------------------- fetcher


GZIP_BOMB = gzip.compress(b"a" * 100_000)


def _fetcher(
    handler: Callable[[httpx.Request], httpx.Response], fetcher: type[FeedFetcher] = FeedFetcher, **kwargs: object
) -> FeedFetcher:
    options: dict[str, object] = {"timeout_s": 2.0, "max_bytes": 4096} | kwargs
    return fetcher(transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


def test_fetch_sends_user_agent_and_returns_body_and_validators() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=RSS,
            headers={"ETag": '"v1"', "Last-Modified": "Mon, 02 Nov 2026 08:00:00 GMT", "Content-Type": "text/xml"},
        )

    with _fetcher(handler) as fetcher:
        result = fetcher.fetch("https://feeds.example.com/rss")
    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert "If-None-Match" not in seen[0].headers
    assert result.body == RSS
    assert result.content_type == "text/xml"
    assert result.state == FeedState(etag='"v1"', last_modified="Mon, 02 Nov 2026 08:00:00 GMT")
    assert not result.not_modified


def test_conditional_get_sends_validators_and_a_304_costs_no_body() -> None:
    previous = FeedState(etag='"v1"', last_modified="Mon, 02 Nov 2026 08:00:00 GMT")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["If-None-Match"] == '"v1"'
        assert request.headers["If-Modified-Since"] == previous.last_modified
        return httpx.Response(304)

    with _fetcher(handler) as fetcher:
        result = fetcher.fetch("https://feeds.example.com/rss", previous)
    assert result.not_modified
    assert result.state == previous


@pytest.mark.reliability(
    area="ingestion feeds (HTTP)", case="redirect loop", expected="stops after 5 redirects with a feed error"
)
def test_redirects_are_followed_but_not_forever() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(301, headers={"Location": "/new"})
        if request.url.path == "/loop":
            return httpx.Response(302, headers={"Location": "/loop"})
        return httpx.Response(200, content=RSS)

    with _fetcher(handler) as fetcher:
        assert fetcher.fetch("https://feeds.example.com/old").body == RSS
        with pytest.raises(FeedError, match="redirects"):
            fetcher.fetch("https://feeds.example.com/loop")


def _feed_case(case: str, expected: str) -> pytest.MarkDecorator:
    return pytest.mark.reliability(area="ingestion feeds (HTTP)", case=case, expected=expected)


def _raise(error: type[httpx.TransportError], message: str) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        raise error(message, request=request)

    return respond


SLOW_OR_REFUSED = _feed_case("slow server, refused connection", "feed errors naming the cause, other feeds unaffected")


@pytest.mark.parametrize(
    ("respond", "error"),
    [
        *(
            pytest.param(lambda _, s=status: httpx.Response(s), f"HTTP {status}", id=str(status))
            for status in (404, 410, 500, 503)
        ),
        pytest.param(
            lambda _: httpx.Response(200, headers={"Content-Length": "999999"}, content=b""),
            "999999 bytes is over the 4096-byte limit",
            marks=_feed_case("feed declaring a body over the byte cap", "refused before reading (a feed error)"),
            id="declared-oversized",
        ),
        pytest.param(
            lambda _: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=GZIP_BOMB),
            "over the 4096-byte limit",
            marks=_feed_case("gzip bomb", "limited by its decoded size"),
            id="gzip-bomb",
        ),
        pytest.param(
            _raise(httpx.ReadTimeout, "read timed out"), "timed out after 2 s", marks=SLOW_OR_REFUSED, id="slow"
        ),
        pytest.param(
            _raise(httpx.ConnectError, "connection refused"), "ConnectError", marks=SLOW_OR_REFUSED, id="refused"
        ),
    ],
)
def test_hostile_answers_are_feed_errors(respond: Callable[[httpx.Request], httpx.Response], error: str) -> None:
    with _fetcher(respond) as fetcher, pytest.raises(FeedError, match=error):
        fetcher.fetch("https://feeds.example.com/rss")


def test_a_gzip_bomb_is_small_on_the_wire() -> None:
    assert len(GZIP_BOMB) < 4096


@pytest.mark.reliability(
    area="ingestion feeds (HTTP)",
    case="feed streaming past the byte cap without Content-Length",
    expected="cut while streaming (a feed error)",
)
def test_undeclared_oversized_body_is_cut_while_streaming() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(1000):
            pulled.append(i)
            yield b"x" * 1024

    with (
        _fetcher(lambda _: httpx.Response(200, content=chunks())) as fetcher,
        pytest.raises(FeedError, match="over the 4096-byte limit"),
    ):
        fetcher.fetch("https://feeds.example.com/rss")
    # Stopped right after the limit, not after downloading everything
    assert len(pulled) < 10


def test_the_function_polls_only_http_feeds_and_the_local_pipeline_also_reads_files(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(RSS)
    with _fetcher(lambda _: httpx.Response(200)) as fetcher:
        for url in ("ftp://example.com/feed", str(feed), feed.as_uri()):
            with pytest.raises(FeedError, match="unsupported URL scheme"):
                fetcher.fetch(url)
    with _fetcher(lambda _: httpx.Response(200, content=RSS), fetcher=LocalFeedFetcher) as local:
        assert local.fetch(str(feed)).body == RSS
        assert local.fetch(feed.as_uri()).body == RSS
        assert local.fetch("https://feeds.example.com/rss").body == RSS
        with pytest.raises(FeedError, match="unsupported URL scheme"):
            local.fetch("ftp://example.com/feed")
        with pytest.raises(FeedError, match="cannot read"):
            local.fetch(str(tmp_path / "missing.xml"))
        feed.write_bytes(b"x" * 8192)
        with pytest.raises(FeedError, match="over the 4096-byte limit"):
            local.fetch(str(feed))


def test_a_feed_that_crashes_the_parser_is_a_feed_error() -> None:
    # A character reference to a surrogate makes feedparser itself raise
    body = b"<rss version='2.0'><channel><item><description>bad &#55296;</description></item></channel></rss>"
    with pytest.raises(FeedError, match="feed parser failed"):
        parse_feed(body, source="s")
