"""The dashboard's item lists: recent analysed items, filtered by sentiment and source, paged, downloadable.

Read-only and separate from the counters (:mod:`sentiment_shared.dal`): items come from the
``recent-by-day`` index (newest first, day by day over the last :data:`~sentiment_shared.dal.read_model.SUMMARY_DAYS`
days), filtered by sentiment in DynamoDB (a projected attribute) and by source name here; the few items
shown (or downloaded) then get their link, title and publication date from the table in one
``BatchGetItem`` per 100 (those attributes are not in the index's projection). Items are decoded once, as
they arrive (:func:`sentiment_shared.dynamo.plain`).

Query parameters are validated by :func:`parse_query`; anything else is a :class:`QueryError` (a 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sentiment_shared import aws
from sentiment_shared.dal.read_model import RECENT_ITEMS, recent_rows
from sentiment_shared.dynamo import get_items
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

DETAILS = ("url", "title", "published_at")
"""What a listed item reads from the table itself: the recent-items index does not carry them."""

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PER_PAGE = RECENT_ITEMS
"""Items per page; the first, unfiltered page is the summary's recent items (as many)."""
MAX_PAGE = 500
DOWNLOAD_LIMIT = 5000
"""A download holds at most this many items (the newest matching ones); the page says so."""
MAX_SOURCE_CHARS = 300
PARAMETERS = ("sentiment", "source", "page")


class QueryError(ValueError):
    """A query parameter the dashboard does not take; the message is the 400's one line."""


@dataclass(frozen=True, slots=True)
class ItemFilter:
    sentiment: str | None = None
    source: str | None = None
    page: int = 1

    @property
    def active(self) -> bool:
        return self.sentiment is not None or self.source is not None

    def query(self, *, page: int | None = None) -> str:
        """The query string for this filter (``page`` overrides; page 1 is left out), ``?`` included if any."""
        from urllib.parse import urlencode

        pairs = [(k, v) for k, v in (("sentiment", self.sentiment), ("source", self.source)) if v]
        number = self.page if page is None else page
        if number > 1:
            pairs.append(("page", str(number)))
        return "?" + urlencode(pairs) if pairs else ""


def parse_query(raw: str) -> ItemFilter:
    """The filter in a query string (``sentiment``, ``source``, ``page``), or a :class:`QueryError` saying why not."""
    values: dict[str, str] = {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=10)
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryError(f"the query string cannot be read: {exc}") from None
    for key, value in pairs:
        if key not in PARAMETERS:
            raise QueryError(f"unknown parameter {key[:40]!r}: this page takes {', '.join(PARAMETERS)}")
        if key in values:
            raise QueryError(f"{key} is given twice: give it once")
        values[key] = value
    sentiment = values.get("sentiment") or None
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise QueryError(f"sentiment must be one of {', '.join(SENTIMENTS)}, not {sentiment[:40]!r}")
    source = values.get("source") or None
    if source is not None and (len(source) > MAX_SOURCE_CHARS or not source.isprintable()):
        raise QueryError(f"source must be a source name of at most {MAX_SOURCE_CHARS} printable characters")
    page = 1
    if "page" in values:
        if not re.fullmatch(r"[0-9]{1,4}", values["page"]) or not 1 <= int(values["page"]) <= MAX_PAGE:
            raise QueryError(f"page must be a whole number from 1 to {MAX_PAGE}, not {values['page'][:40]!r}")
        page = int(values["page"])
    return ItemFilter(sentiment=sentiment, source=source, page=page)


def short_source(source: str) -> str:
    """A source's short name: a feed URL's host (no scheme, path, port or query), a file feed's file name."""
    text = source.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.hostname:
            return parts.hostname.removeprefix("www.")
    if "/" in text or "\\" in text:
        name = (PureWindowsPath(text) if "\\" in text else PurePosixPath(text)).name
        if name:
            return name.split("?", 1)[0]
    return text or "direct"


def safe_link(url: str | None) -> str | None:
    """An item's link if it is an absolute http(s) URL (anything else — ``javascript:``, relative — is no link)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


@dataclass(frozen=True, slots=True)
class ListedItem:
    item_id: str
    title: str | None
    url: str | None
    text: str
    sentiment: str
    score: float
    analyzed_at: str
    published_at: str | None
    source: str
    source_name: str
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ItemsPage:
    filter: ItemFilter
    items: list[ListedItem]
    has_more: bool
    truncated: bool = False
    """A download stopped at its limit (more items match)."""


ItemsLoader = Callable[[ItemFilter, int, int], ItemsPage]
"""``(filter, skip, limit)`` → the page: the matching items after the first ``skip``, at most ``limit``."""


def details(table_name: str, ids: list[str], *, client: DynamoDBClient | None = None) -> dict[str, dict[str, Any]]:
    """item_id → its :data:`DETAILS` (plain values; the attributes the index does not carry), 100 keys per call."""
    return get_items(client or aws.client("dynamodb"), table_name, ids, attributes=DETAILS)


def str_attribute(row: Mapping[str, Any], key: str) -> str | None:
    """A string attribute of a plain row, or None (missing, or not a string)."""
    value = row.get(key)
    return value if isinstance(value, str) else None


def list_items(
    table_name: str,
    flt: ItemFilter,
    skip: int,
    limit: int,
    *,
    now: datetime | None = None,
    client: DynamoDBClient | None = None,
) -> ItemsPage:
    """The matching items, newest first: ``limit`` of them after the first ``skip`` (and whether more match)."""
    ddb = client or aws.client("dynamodb")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    wanted = skip + limit + 1  # one more than shown says whether there is a next page
    batch = wanted if not flt.active else max(wanted, 100)
    matched: list[dict[str, Any]] = []
    for row in recent_rows(ddb, table_name, today, page_size=min(batch, 1000), sentiment=flt.sentiment):
        if flt.source is not None and short_source(str_attribute(row, "source") or "direct") != flt.source:
            continue
        matched.append(row)
        if len(matched) >= wanted:
            break
    chosen = matched[skip : skip + limit]
    extras = details(table_name, [row[ITEMS_TABLE_HASH_KEY] for row in chosen], client=ddb)
    items = []
    for row in chosen:
        item_id = row[ITEMS_TABLE_HASH_KEY]
        extra = extras.get(item_id, {})
        source = str_attribute(row, "source") or "direct"
        items.append(
            ListedItem(
                item_id=item_id,
                title=str_attribute(extra, "title"),
                url=str_attribute(extra, "url"),
                text=str_attribute(row, "text") or "",
                sentiment=str_attribute(row, "sentiment") or "",
                score=float(row.get("score", 0)),
                analyzed_at=str_attribute(row, "analyzed_at") or "",
                published_at=str_attribute(extra, "published_at"),
                source=source,
                source_name=short_source(source),
                model_version=str_attribute(row, "model_version") or "",
            )
        )
    more = len(matched) > skip + limit
    return ItemsPage(filter=flt, items=items, has_more=more, truncated=more)


def table_items(table_name: str) -> ItemsLoader:
    """The items loader over one table (what the Lambda and the local server pass to the app)."""
    return lambda flt, skip, limit: list_items(table_name, flt, skip, limit)
