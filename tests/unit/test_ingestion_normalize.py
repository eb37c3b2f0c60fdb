"""Normalization (HTML to text, whitespace, NFC, length cap) and the deterministic item id."""

from __future__ import annotations

import unicodedata

import pytest

from sentiment_ingestion.normalize import (
    MIN_MARKUP_CAP,
    TITLE_MAX_CHARS,
    clean_whitespace,
    html_to_text,
    item_id_for,
    normalize_text,
    normalize_title,
    truncate,
)

pytestmark = pytest.mark.unit


def test_html_becomes_readable_text_without_scripts_styles_or_entities() -> None:
    # Given an HTML-heavy fragment
    markup = (
        "<div><style>p{color:red}</style><script>alert('x')</script>"
        "<p>Great&nbsp;<b>sound</b> &amp; battery</p><p>Second&#8212;para</p><!-- note --></div>"
    )
    # When it is normalized
    result = normalize_text(markup)
    # Then only the visible words remain, entities decoded, blocks separated, spaces collapsed
    assert result is not None
    assert result.text == "Great sound & battery Second\u2014para"
    assert not result.truncated


def test_blocks_separate_words_and_inline_tags_do_not() -> None:
    assert clean_whitespace(html_to_text("<p>one</p><p>two</p><br/>three<td>four</td>")) == "one two three four"
    assert clean_whitespace(html_to_text("<p>un<b>usual</b>, <a href='#'>linked</a>.</p>")) == "unusual, linked."


def test_plain_text_that_looks_like_a_url_is_kept_and_raises_no_warning() -> None:
    # Given a text bs4 would warn about (it "resembles a URL"); the suite turns warnings into errors
    text = "https://example.com/review & more"
    # When normalized / Then no warning escapes and the text is kept
    result = normalize_text(text)
    assert result is not None
    assert result.text == text


def test_whitespace_controls_and_format_characters_are_cleaned() -> None:
    raw = "  tab\there\r\nnew\u00a0line\u200b zero\x00width \u2028 end  "
    assert clean_whitespace(raw) == "tab here new line zerowidth end"


def test_text_is_nfc_composed() -> None:
    decomposed = "cafe\u0301 cre\u0300me"
    result = normalize_text(decomposed)
    assert result is not None
    assert result.text == "caf\u00e9 cr\u00e8me"
    assert unicodedata.is_normalized("NFC", result.text)


@pytest.mark.parametrize(
    "raw", [None, "", "   \n\t ", "<p> </p>", "<img src='x.png'/>", "<script>x()</script>", "\u200b"]
)
def test_no_usable_text_gives_none(raw: str | None) -> None:
    assert normalize_text(raw) is None


def test_long_text_is_truncated_at_a_word_boundary_and_flagged() -> None:
    # Given a text longer than the cap
    words = " ".join(f"word{i}" for i in range(100))
    # When normalized with a cap of 100 characters
    result = normalize_text(words, max_chars=100)
    # Then it is cut at a word boundary, flagged, and the full text is kept for identity
    assert result is not None
    assert result.truncated
    assert len(result.text) <= 100
    assert result.text.endswith(tuple(f"word{i}" for i in range(100)))
    assert result.full_text == words


def test_one_huge_word_is_cut_hard() -> None:
    text, truncated = truncate("x" * 500, 100)
    assert (len(text), truncated) == (100, True)


def test_text_at_the_cap_is_not_truncated() -> None:
    assert truncate("a" * 100, 100) == ("a" * 100, False)


def test_plain_mode_keeps_angle_brackets() -> None:
    result = normalize_text("a<b and c>d", html=False)
    assert result is not None
    assert result.text == "a<b and c>d"


def test_titles_are_plain_and_capped() -> None:
    assert normalize_title("<b>Hello</b>  world") == "Hello world"
    long = normalize_title("t " * 1000)
    assert long is not None
    assert len(long) <= TITLE_MAX_CHARS
    assert normalize_title(None) is None


def test_item_id_is_deterministic_hex_and_separates_sources_kinds_and_boundaries() -> None:
    first = item_id_for("https://feed", "guid-1", kind="guid")
    # Same inputs → same id (so a re-ingested entry is a duplicate)
    assert first == item_id_for("https://feed", "guid-1", kind="guid")
    assert len(first) == 64
    assert all(c in "0123456789abcdef" for c in first)
    # Any difference in source, key or kind → another id
    others = {
        item_id_for("https://other", "guid-1", kind="guid"),
        item_id_for("https://feed", "guid-2", kind="guid"),
        item_id_for("https://feed", "guid-1", kind="link"),
        item_id_for("https://feedguid-1", "", kind="guid"),  # no ambiguity from concatenation
    }
    assert first not in others
    assert len(others) == 4


def test_deeply_nested_markup_is_walked_without_recursion() -> None:
    # Given markup nested far deeper than Python's recursion limit
    depth = 5_000
    markup = "<div>" * depth + "deep <b>bo</b>ld<!-- hidden --><script>x()</script><p>para</p>end" + "</div>" * depth
    # When normalized / Then the text comes out whole, comments and scripts dropped
    result = normalize_text(markup)
    assert result is not None
    assert result.text == "deep bold para end"


def test_oversized_markup_is_cut_before_parsing_and_flagged() -> None:
    # Given far more markup than max_chars could ever need
    unit = "<p>x</p>"  # 8 characters: the cut falls between two units
    markup = unit * (MIN_MARKUP_CAP // len(unit) * 3)
    # When normalized with a small cap
    result = normalize_text(markup, max_chars=100)
    # Then only the first MIN_MARKUP_CAP characters were read, and the text is flagged truncated
    assert result is not None
    assert result.truncated
    assert result.full_text == " ".join(["x"] * (MIN_MARKUP_CAP // len(unit)))


def test_lone_surrogates_are_dropped_from_text_and_still_hash() -> None:
    # Given text and a key carrying an unpaired UTF-16 surrogate (unencodable as UTF-8)
    result = normalize_text("broken \ud800 text")
    # Then the text loses it (the table and topic need valid UTF-8) and the id is still deterministic
    assert result is not None
    assert result.text == "broken text"
    assert item_id_for("s", "key\ud800", kind="guid") == item_id_for("s", "key\ud800", kind="guid")
    assert item_id_for("s", "key\ud800", kind="guid") != item_id_for("s", "key", kind="guid")
