"""Normalisation (HTML to text, whitespace, NFC, length cap) and the deterministic item id."""

from __future__ import annotations

import unicodedata

import pytest

from sentiment_ingestion.normalize import (
    TITLE_MAX_CHARS,
    clean_whitespace,
    html_to_text,
    item_id_for,
    normalise_text,
    normalise_title,
    truncate,
)

pytestmark = pytest.mark.unit


def test_html_becomes_readable_text_without_scripts_styles_or_entities() -> None:
    # Given an HTML-heavy fragment
    markup = (
        "<div><style>p{color:red}</style><script>alert('x')</script>"
        "<p>Great&nbsp;<b>sound</b> &amp; battery</p><p>Second&#8212;para</p><!-- note --></div>"
    )
    # When it is normalised
    result = normalise_text(markup)
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
    # When normalised / Then no warning escapes and the text is kept
    result = normalise_text(text)
    assert result is not None
    assert result.text == text


def test_whitespace_controls_and_format_characters_are_cleaned() -> None:
    raw = "  tab\there\r\nnew\u00a0line\u200b zero\x00width \u2028 end  "
    assert clean_whitespace(raw) == "tab here new line zerowidth end"


def test_text_is_nfc_composed() -> None:
    decomposed = "cafe\u0301 cre\u0300me"
    result = normalise_text(decomposed)
    assert result is not None
    assert result.text == "caf\u00e9 cr\u00e8me"
    assert unicodedata.is_normalized("NFC", result.text)


@pytest.mark.parametrize(
    "raw", [None, "", "   \n\t ", "<p> </p>", "<img src='x.png'/>", "<script>x()</script>", "\u200b"]
)
def test_no_usable_text_gives_none(raw: str | None) -> None:
    assert normalise_text(raw) is None


def test_long_text_is_truncated_at_a_word_boundary_and_flagged() -> None:
    # Given a text longer than the cap
    words = " ".join(f"word{i}" for i in range(100))
    # When normalised with a cap of 100 characters
    result = normalise_text(words, max_chars=100)
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
    result = normalise_text("a<b and c>d", html=False)
    assert result is not None
    assert result.text == "a<b and c>d"


def test_titles_are_plain_and_capped() -> None:
    assert normalise_title("<b>Hello</b>  world") == "Hello world"
    long = normalise_title("t " * 1000)
    assert long is not None
    assert len(long) <= TITLE_MAX_CHARS
    assert normalise_title(None) is None


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
