"""Text normalization and item identity: HTML to plain text, whitespace, Unicode NFC, a length cap, ``item_id``.

Every text that becomes an item goes through :func:`normalize_text`, so the analysis always sees plain,
composed, single-spaced text of at most ``max_chars`` characters. Longer texts are cut at a word
boundary and flagged (``text_truncated``), never rejected. The identity of an item is decided here too
(:func:`item_id_for`): a hash, so the same entry always maps to the same ``item_id`` and the table's
conditional put can tell a duplicate from a new item.
"""

from __future__ import annotations

import hashlib
import unicodedata
import warnings
from dataclasses import dataclass

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
from bs4.element import CData, NavigableString, PageElement, Tag

DEFAULT_MAX_TEXT_CHARS = 10_000
"""Default cap on an item's text (``MAX_TEXT_CHARS``): far beyond what a 512-token model reads, and it
keeps every message well under SNS's 256 KiB even in 4-byte UTF-8."""

MARKUP_FACTOR = 20
MIN_MARKUP_CAP = 100_000
"""Raw input is read up to ``max(max_chars * MARKUP_FACTOR, MIN_MARKUP_CAP)`` characters; the rest is cut
(and the text flagged as truncated)."""

TITLE_MAX_CHARS = 500
"""Titles are metadata, not analyzed: cut them short."""

# Tags whose content is never readable text.
_INVISIBLE_TAGS = frozenset({"script", "style", "noscript", "template", "head", "iframe", "object", "svg"})
# Elements a browser renders on their own line or cell: a word boundary even when the markup has no
# whitespace there ("<p>one</p><p>two</p>"), unlike inline elements ("<b>un</b>usual" is one word).
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "td", "th", "tr", "ul",
})  # fmt: skip
# Text without either character cannot contain markup or entities: no need to parse it.
_MARKUP_HINTS = ("<", "&")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    text: str
    """Plain text, at most ``max_chars`` characters."""
    truncated: bool
    full_text: str
    """The text before truncation (what the identity hash of an id-less payload uses)."""


def html_to_text(markup: str) -> str:
    """Readable text of an HTML fragment (entities decoded, scripts, styles and comments dropped)."""
    if not any(hint in markup for hint in _MARKUP_HINTS):
        return markup  # plain text: skip the parser (and its "looks like a URL/file name" warning)
    with warnings.catch_warnings():
        # A short text such as "see https://example.com" is a legitimate entry, not a mistake.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(markup, "html.parser")
    # An explicit-stack walk instead of decompose()/insert_before(): those walk to a tag's last
    # descendant on every call, which makes deeply nested markup quadratic (5,000 nested <div>s took
    # seconds); this visits every node once and never recurses.
    parts: list[str] = []
    stack: list[tuple[PageElement, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, Tag):
            block = node.name in _BLOCK_TAGS
            if leaving:
                if block:
                    parts.append(" ")
                continue
            if node.name in _INVISIBLE_TAGS:
                continue
            if block:
                parts.append(" ")  # extra spaces collapse later
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
        elif isinstance(node, NavigableString) and (type(node) is NavigableString or isinstance(node, CData)):
            parts.append(str(node))  # comments, doctypes and processing instructions are not text
    return "".join(parts)


def clean_whitespace(text: str) -> str:
    """NFC, control, format and lone surrogate characters removed, every whitespace run one space."""
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if text.isprintable():  # the common case: nothing left but letters, marks, punctuation and spaces
        return text
    # Cc (controls) and Cf (zero-width and direction marks) carry no meaning for a classifier; Cs (lone
    # surrogates) cannot even be encoded as UTF-8 for the table or the topic.
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return " ".join(kept.split())


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_chars`` characters, at the last word boundary if one is near."""
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    boundary = cut.rfind(" ")
    # Prefer a word boundary, unless that throws away more than a tenth of the allowance (one huge "word").
    if boundary >= max_chars * 0.9:
        cut = cut[:boundary]
    return cut.rstrip(), True


def normalize_text(
    raw: str | None, *, max_chars: int = DEFAULT_MAX_TEXT_CHARS, html: bool = True
) -> NormalizedText | None:
    """Plain, NFC, single-spaced text capped at ``max_chars``; None when nothing readable is left."""
    if raw is None:
        return None
    # Bound the work on absurd inputs (a 5 MB entry): markup beyond this many characters cannot be
    # needed to fill max_chars of text in any realistic page, so it is dropped before parsing.
    markup_cap = max(max_chars * MARKUP_FACTOR, MIN_MARKUP_CAP)
    cut_markup = len(raw) > markup_cap
    full = clean_whitespace(html_to_text(raw[:markup_cap]) if html else raw[:markup_cap])
    if not full:
        return None
    text, truncated = truncate(full, max_chars)
    return NormalizedText(text=text, truncated=truncated or cut_markup, full_text=full)


def normalize_title(raw: str | None) -> str | None:
    """A title as plain text (HTML allowed in feeds' titles), capped at :data:`TITLE_MAX_CHARS`."""
    normalized = normalize_text(raw, max_chars=TITLE_MAX_CHARS)
    return None if normalized is None else normalized.text


def item_id_for(source: str, key: str, *, kind: str) -> str:
    """Deterministic ``item_id``: SHA-256 of (kind, source, key) as 64 hex characters.

    ``kind`` says what ``key`` is (``"guid"``, ``"link"``, ``"id"``, ``"text"``), so a guid that happens
    to equal another entry's text never collides with it. Hex never contains ``#``, so an item id cannot
    clash with the table's ``feed-state#`` / ``publish-run#`` bookkeeping items.
    """
    digest = hashlib.sha256()
    for part in (kind, source, key):
        # surrogatepass: a key with a lone surrogate still hashes (deterministically) instead of raising.
        encoded = part.encode("utf-8", "surrogatepass")
        # Length-prefixed parts: ("ab", "c") and ("a", "bc") hash differently.
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()
