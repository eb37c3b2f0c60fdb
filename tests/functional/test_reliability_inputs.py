"""Hostile inputs against both handlers (moto, the real model) and both CLIs, one table row per case.

The standard every case is held to: a clear 400 (or a one-line CLI error), or a reported record
failure that names only the bad record; never an unhandled exception, never a lost record. Each test
records what it observed for ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from model_fixtures import make_model_dir
from reliability_support import (
    analyzed,
    clean_ingestion_stack,
    clean_stack,
    configure_analysis,
    failed_ids,
    put_items,
    shared_model_cache,
    sns_envelope,
    sqs_record,
    stored_batch,
    topic_message,
)
from reliability_table import Recorder

from sentiment_ingestion.events import MAX_ENTRIES_PER_EVENT
from sentiment_local.provision import StackResources
from sentiment_shared import aws, model_bundle
from sentiment_shared.dynamo import plain
from sentiment_shared.settings import reset_settings_cache
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

pytestmark = pytest.mark.functional

MEGABYTE_TEXT = "This blender is wonderful and I adore it. " * 25_000  # ~1 MB
CONTROL_TEXT = "great\x00 product\x07 \x1b[31mred\x1b[0m\r\n\x0b\x0c end"
EMOJI_TEXT = "Best purchase ever 😍🔥👍🏽 🎉🎉"
RTL_TEXT = "\u202eThis is reversed\u202c المنتج رائع جدا וזה מעולה"


# --------------------------------------------------------------------------- ingestion handler


@pytest.fixture
def ingestion_stack(moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> StackResources:
    return clean_ingestion_stack(moto_server_url, monkeypatch)


def _stored_items(table: str) -> dict[str, dict[str, Any]]:
    raw = aws.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    rows = (plain(attrs) for attrs in raw)
    # not a feed-state / run-marker bookkeeping item
    return {row[ITEMS_TABLE_HASH_KEY]: row for row in rows if "#" not in row[ITEMS_TABLE_HASH_KEY]}


def _queued_messages(queue_url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            found.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


@dataclass(frozen=True)
class IngestionCase:
    name: str
    event: Any
    expected: str
    """``400: <fragment of the error>`` or ``200`` (then ``counts`` and ``check`` apply)."""
    counts: dict[str, int] | None = None
    check: Callable[[list[str]], None] | None = None
    """Called with the stored texts."""


def _no_controls(texts: list[str]) -> None:
    (text,) = texts
    assert not [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf")], text
    assert text.split()[:2] == ["great", "product"]
    assert text.endswith(" end")


def _kept(expected: str) -> Callable[[list[str]], None]:
    def check(texts: list[str]) -> None:
        assert texts == [expected]

    return check


def _truncated(texts: list[str]) -> None:
    (text,) = texts
    assert 9_000 < len(text) <= 10_000


INGESTION_CASES = [
    IngestionCase("malformed JSON (a JSON string payload)", '{"texts": ["unterminated', "400: must be a JSON object"),
    IngestionCase("JSON null payload", None, "400: must be a JSON object"),
    IngestionCase("wrong type: texts is a string", {"texts": "one"}, "400: texts: Input should be a valid list"),
    IngestionCase("wrong type: a number among texts", {"texts": ["ok", 7]}, "400: texts[1]: Input should be a valid"),
    IngestionCase("wrong type: boolean item id", {"items": [{"text": "a", "id": True}]}, "400: items[0].id"),
    IngestionCase(
        "missing field: item without text", {"items": [{"source": "x"}]}, "400: items[0].text: Field required"
    ),
    IngestionCase("unknown field (typo)", {"items": [{"text": "a", "txt": "b"}]}, "400: items[0].txt: Extra inputs"),
    IngestionCase(
        "unknown event shape: S3 notification", {"Records": [{"eventSource": "aws:s3"}]}, "400: unrecognised"
    ),
    IngestionCase(
        "SNS envelope with non-JSON Message",
        {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "not json"}}]},
        "400: unrecognised event",
    ),
    IngestionCase(
        f"oversized batch: {MAX_ENTRIES_PER_EVENT + 1} texts",
        {"texts": ["x"] * (MAX_ENTRIES_PER_EVENT + 1)},
        "400: at most",
    ),
    IngestionCase("invalid UTF-8: lone surrogate in a text", {"texts": ["ok \ud800 bad"]}, "400: not valid Unicode"),
    IngestionCase(
        "invalid UTF-8: lone surrogate in an item id", {"items": [{"text": "a", "id": "\udcff"}]}, "400: items[0].id"
    ),
    IngestionCase(
        "empty and whitespace-only texts",
        {"texts": ["", "   ", "\n\t\u200b"]},
        "200",
        {"received": 3, "stored": 0, "skipped": 3, "published": 0},
    ),
    IngestionCase(
        "1 MB text",
        {"texts": [MEGABYTE_TEXT]},
        "200",
        {"received": 1, "stored": 1, "truncated": 1, "published": 1},
        _truncated,
    ),
    IngestionCase(
        "control characters and ANSI escapes",
        {"texts": [CONTROL_TEXT]},
        "200",
        {"received": 1, "stored": 1, "published": 1},
        _no_controls,
    ),
    IngestionCase(
        "emoji (astral plane, skin-tone modifiers)",
        {"texts": [EMOJI_TEXT]},
        "200",
        {"stored": 1, "published": 1},
        _kept(EMOJI_TEXT),
    ),
    IngestionCase(
        "RTL text with bidi override characters",
        {"texts": [RTL_TEXT]},
        "200",
        {"stored": 1, "published": 1},
        _kept("This is reversed المنتج رائع جدا וזה מעולה"),
    ),
    IngestionCase(
        "duplicate item ids in one payload",
        {"items": [{"id": "r-1", "text": "first"}, {"id": "r-1", "text": "second"}, {"id": 2, "text": "other"}]},
        "200",
        {"received": 3, "stored": 2, "duplicates": 1, "published": 2},
    ),
    IngestionCase(
        "HTML/script injection in a text",
        {"texts": ["<script>alert(1)</script><img src=x onerror=alert(2)>Nice <b>shoes</b>"]},
        "200",
        {"stored": 1},
        _kept("Nice shoes"),
    ),
]


def test_ingestion_handler_answers_hostile_events_clearly_and_loses_nothing(
    ingestion_stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_ingestion.handler import handler

    for case in INGESTION_CASES:
        expected = case.expected if case.counts is None else f"200 {case.counts}"
        with reliability.row("ingestion handler (direct invoke)", case.name, expected) as row:
            before = set(_stored_items(ingestion_stack.items_table))
            # Given a hostile event / When the handler gets it
            response = handler(case.event, lambda_context)
            stored = {k: v for k, v in _stored_items(ingestion_stack.items_table).items() if k not in before}
            messages = _queued_messages(ingestion_stack.queue_url)
            # Then a clear 400 that touches nothing, or a 200 whose counts account for every entry
            if case.expected.startswith("400"):
                assert response["statusCode"] == 400, response
                assert case.expected.removeprefix("400: ") in response["error"], response["error"]
                assert stored == {}
                assert messages == []
                row.observed(f"400 {response['error'][:140]!r}; nothing stored or published")
                continue
            assert response["statusCode"] == 200, response
            assert case.counts is not None
            assert {k: response[k] for k in case.counts} == case.counts
            assert response["received"] == response["stored"] + response["duplicates"] + response["skipped"]
            assert response["stored"] == response["published"] + response["failed"]
            assert sorted(stored) == sorted(m["item_id"] for m in messages), "every stored item is announced once"
            assert all(len(json.dumps(m).encode()) < 256 * 1024 for m in messages)
            if case.check is not None:
                case.check([str(i["text"]) for i in stored.values()])
            keys = ("received", "stored", "duplicates", "skipped", "truncated", "published")
            row.observed(f"200 { ({k: response[k] for k in keys}) }; {len(messages)} message(s) on the queue")


# --------------------------------------------------------------------------- ingestion: hostile feeds

GOOD_FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>ok</title>'
    b"<item><guid>good-1</guid><description>Lovely weather today.</description></item>"
    b"<item><guid>good-2</guid><description>The train was late again.</description></item></channel></rss>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()  # b = 10 a, c = 10 b, ...
        for i in range(8)
    )
    + b']><rss version="2.0"><channel><item><guid>bl</guid><description>&i;</description></item></channel></rss>'
)
HOSTILE_FEEDS: dict[str, tuple[bytes, str]] = {
    "bytes that are not UTF-8 in a UTF-8 feed": (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><item><guid>bin-1</guid>'
        b"<description>caf\xe9 \xff\xfe broken \xc3( bytes</description></item></channel></rss>",
        "recovered",
    ),
    "character reference to a surrogate (&#55296;)": (
        b'<?xml version="1.0"?><rss version="2.0"><channel><item><guid>sur-1</guid>'
        b"<description>bad &#55296; ref</description></item></channel></rss>",
        "error",
    ),
    "billion laughs entity expansion": (BILLION_LAUGHS, "recovered"),
    "external entity (XXE) to /etc/passwd": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss version="2.0">'
        b"<channel><item><guid>xxe-1</guid><description>leak: &x;</description></item></channel></rss>",
        "recovered",
    ),
    "binary garbage": (bytes(range(256)) * 8, "error"),
    "empty file": (b"", "error"),
    "1 MB entry": (
        b'<rss version="2.0"><channel><item><guid>big-1</guid><description>'
        + MEGABYTE_TEXT.encode()
        + b"</description></item></channel></rss>",
        "recovered",
    ),
}


def test_hostile_feeds_fail_or_are_cleaned_one_by_one_and_the_good_feed_still_arrives(
    ingestion_stack: StackResources,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reliability: Recorder,
    lambda_context: LambdaContext,
) -> None:
    from sentiment_ingestion.handler import build_handler
    from sentiment_local.file_feeds import LocalFeedFetcher

    handler = build_handler(feed_fetcher=LocalFeedFetcher)  # the feeds are files, as the local pipeline reads them
    # Given one scheduled run over every hostile feed and a good one
    paths = []
    for n, (body, _) in enumerate(HOSTILE_FEEDS.values()):
        path = tmp_path / f"hostile-{n}.xml"
        path.write_bytes(body)
        paths.append(str(path))
    good = tmp_path / "good.xml"
    good.write_bytes(GOOD_FEED)
    monkeypatch.setenv("FEEDS", json.dumps([*paths, str(good)]))
    reset_settings_cache()
    # When the run happens
    event = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    response = handler(event, lambda_context)
    # Then it succeeds, the good feed is in, and each hostile feed failed alone or yielded clean text
    assert response["statusCode"] == 200, response
    *hostile_reports, fine = response["feeds"]
    assert fine["error"] is None
    assert fine["new"] == 2
    items = _stored_items(ingestion_stack.items_table)
    assert response["stored"] == len(items) == response["published"]
    for (name, (_, kind)), report in zip(HOSTILE_FEEDS.items(), hostile_reports, strict=True):
        expected = "that feed reported failed" if kind == "error" else "that feed's entries stored as clean text"
        area = "ingestion handler (scheduled feeds)"
        with reliability.row(area, name, f"{expected}; the other feeds' items stored") as row:
            texts = [str(i["text"]) for i in items.values() if i.get("source") == report["url"]]
            for text in texts:
                text.encode("utf-8")  # storable and publishable
                assert "root:" not in text, "an external entity was resolved"
                assert len(text) <= 10_000
            if kind == "error":
                assert report["error"], report
                assert texts == []
                row.observed(f"feed error {report['error'][:110]!r}; good feed: {fine['new']} new")
            else:
                assert report["error"] is None, report
                assert len(texts) == report["new"] >= 1
                row.observed(f"{report['new']} entry stored as {texts[0][:40]!r}…; good feed: {fine['new']} new")


# --------------------------------------------------------------------------- analysis handler


@pytest.fixture(scope="module")
def bundle(shared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> model_bundle.BundleInfo:
    return model_bundle.pack(shared_model_dir, tmp_path_factory.mktemp("bundle") / model_bundle.BUNDLE_FILE_NAME)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_model_cache(tmp_path_factory)


@pytest.fixture
def analysis_stack(
    moto_server_url: str, monkeypatch: pytest.MonkeyPatch, bundle: model_bundle.BundleInfo, model_cache: Path
) -> StackResources:
    stack = clean_stack(moto_server_url, monkeypatch)
    configure_analysis(monkeypatch, stack, bundle, model_cache)
    return stack


@dataclass(frozen=True)
class RecordCase:
    name: str
    body: Any
    outcome: str
    """``failed: <reason fragment>`` or ``analyzed``."""
    item_text: str | None = None
    """Store this item (id ``hostile``) first, so a valid message has something to update."""


def _msg(text: Any, item_id: Any = "hostile", **extra: Any) -> str:
    return json.dumps({"item_id": item_id, "text": text, **extra})


RECORD_CASES = [
    RecordCase("malformed JSON body", '{"item_id": "hostile", "text": ', "failed: not JSON"),
    RecordCase("SNS envelope with non-JSON Message", sns_envelope("<xml>not json</xml>"), "failed: SNS Message is not"),
    RecordCase(
        "SNS envelope whose Message is an object", json.dumps({"Type": "Notification", "Message": {}}), "failed"
    ),
    RecordCase("wrong type: text is a list", sns_envelope(_msg(["a"])), "failed: text"),
    RecordCase("wrong type: item_id is a number", sns_envelope(_msg("x", item_id=7)), "failed: item_id"),
    RecordCase("missing field: no text", sns_envelope(json.dumps({"item_id": "hostile"})), "failed: text"),
    RecordCase("missing field: no item_id", sns_envelope(json.dumps({"text": "hi"})), "failed: item_id"),
    RecordCase("unknown message shape: a JSON array", sns_envelope("[1, 2, 3]"), "failed: JSON object"),
    RecordCase("future schema_version", sns_envelope(_msg("x", schema_version=99)), "failed: schema_version"),
    RecordCase("empty body", "", "failed: empty"),
    RecordCase("null body", None, "failed: empty"),
    RecordCase("body that is a number, not a string", 42, "failed: not a string"),
    RecordCase("deeply nested JSON (recursion bomb)", "[" * 100_000, "failed: not JSON"),
    RecordCase("item_id over 256 characters", sns_envelope(_msg("x", item_id="i" * 300)), "failed: item_id"),
    RecordCase(
        "item not in the table (never ingested)", sns_envelope(_msg("x", item_id="orphan")), "failed: does not exist"
    ),
    RecordCase("invalid UTF-8: lone surrogate in text", sns_envelope(_msg("bad \ud800 text")), "failed: not JSON"),
    RecordCase("invalid UTF-8: lone surrogate in item_id", sns_envelope(_msg("x", item_id="\udcff")), "failed"),
    RecordCase("empty text", sns_envelope(_msg("")), "analyzed", item_text="placeholder"),
    RecordCase("whitespace-only text", sns_envelope(_msg(" \n\t ")), "analyzed", item_text="placeholder"),
    RecordCase("1 MB text", sns_envelope(_msg(MEGABYTE_TEXT)), "analyzed", item_text="big"),
    RecordCase("control characters", sns_envelope(_msg(CONTROL_TEXT)), "analyzed", item_text="ctl"),
    RecordCase("emoji", sns_envelope(_msg(EMOJI_TEXT)), "analyzed", item_text="emoji"),
    RecordCase("RTL text with bidi overrides", sns_envelope(_msg(RTL_TEXT)), "analyzed", item_text="rtl"),
    RecordCase("raw message delivery (no SNS envelope)", _msg("I love it"), "analyzed", item_text="raw"),
]

GOOD_ID, GOOD_TEXT = "good-neighbour", "An absolutely wonderful, heart-warming film."


@pytest.mark.slow
def test_analysis_batch_fails_only_the_hostile_record(
    analysis_stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler

    # The item the hostile records name exists: a record fails for its content, not for a missing item.
    put_items(analysis_stack.items_table, {"hostile": "An item whose message arrives mangled."})
    for n, case in enumerate(RECORD_CASES):
        expected = "only that record in batchItemFailures" if case.outcome.startswith("failed") else "analyzed"
        area = "analysis handler (SQS batch)"
        with reliability.row(area, case.name, f"{expected}; its good neighbour analyzed") as row:
            # Given a batch of a good record and a hostile one
            good_id = f"good-{n}"
            put_items(analysis_stack.items_table, {good_id: GOOD_TEXT})
            body = case.body
            if case.item_text is not None:
                put_items(analysis_stack.items_table, {f"valid-{n}": case.item_text})
                body = _retarget(body, f"valid-{n}")
            good = sqs_record("m-good", sns_envelope(topic_message(good_id, GOOD_TEXT)))
            # When the analysis handler gets it
            response = handler({"Records": [good, sqs_record("m-bad", body)]}, lambda_context)
            # Then exactly the hostile record is reported (or it was analyzed), and the neighbour is analyzed
            done = analyzed(analysis_stack.items_table)
            assert done[good_id]["sentiment"] == "positive"
            if case.outcome.startswith("failed"):
                assert failed_ids(response) == ["m-bad"]
                assert "hostile" not in done
                # And it failed for the expected reason (the response names records, not reasons)
                reason = _failure_reason(body)
                assert case.outcome.removeprefix("failed").removeprefix(": ") in reason, reason
                row.observed(f"batchItemFailures=[m-bad] ({reason[:70]}); neighbour analyzed")
            else:
                assert failed_ids(response) == []
                result = done[f"valid-{n}"]
                assert result["sentiment"] in ("positive", "negative", "neutral")
                row.observed(f"analyzed: {result['sentiment']} {float(result['score']):.2f}; neighbour analyzed")


def _failure_reason(body: Any) -> str:
    """Why the analysis refuses this record body: the decoder's error, or the missing item."""
    from sentiment_analysis.core import InvalidMessageError, decode_message

    try:
        message = decode_message(body)
    except InvalidMessageError as exc:
        return str(exc)
    return f"item {message.item_id!r} does not exist"


def _retarget(body: str, item_id: str) -> str:
    """The same record body, about ``item_id`` (inside the SNS envelope when there is one)."""
    outer = json.loads(body)
    if outer.get("Type") == "Notification":
        inner = json.loads(outer["Message"])
        outer["Message"] = json.dumps({**inner, "item_id": item_id})
        return json.dumps(outer)
    return json.dumps({**outer, "item_id": item_id})


@pytest.mark.slow
def test_a_batch_of_every_hostile_record_at_once_names_exactly_the_bad_ones(
    analysis_stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler

    reliability.case(
        "analysis handler (SQS batch)",
        f"all {len(RECORD_CASES)} hostile records + 5 good ones in one batch",
        "batchItemFailures = exactly the failing cases; every valid record analyzed",
    )
    # Given one batch holding every case above, each valid one with its own item, plus good records
    records, bad, valid = [], [], []
    for n, case in enumerate(RECORD_CASES):
        body = case.body
        if case.item_text is not None:
            item_id = f"item-{n}"
            put_items(analysis_stack.items_table, {item_id: case.item_text})
            body = _retarget(body, item_id)
            valid.append(item_id)
        records.append(sqs_record(f"m-{n}", body))
        if case.outcome.startswith("failed"):
            bad.append(f"m-{n}")
    good = {f"good-{n}": f"Really great product number {n}, I love it." for n in range(5)}
    put_items(analysis_stack.items_table, good)
    records += [sqs_record(f"g-{k}", sns_envelope(topic_message(k, t))) for k, t in good.items()]
    # When the handler gets the batch
    response = handler({"Records": records}, lambda_context)
    # Then the failures are exactly the hostile records, and everything valid was analyzed
    assert failed_ids(response) == sorted(bad)
    assert set(analyzed(analysis_stack.items_table)) == set(good) | set(valid)
    reliability.observed(f"{len(bad)} named in batchItemFailures, {len(good) + len(valid)} analyzed, 0 lost")


@pytest.mark.slow
def test_duplicate_message_ids_and_duplicate_items_in_a_batch_are_analysed_once(
    analysis_stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler

    reliability.case(
        "analysis handler (SQS batch)",
        "duplicate message ids, and two messages for one item, in one batch",
        "no failure; each item analyzed once with one result",
    )
    put_items(analysis_stack.items_table, {"dup": "Terrible, awful service.", "other": "Fine."})
    body = sns_envelope(topic_message("dup", "Terrible, awful service."))
    records = [sqs_record("m-1", body), sqs_record("m-1", body), sqs_record("m-2", body)]
    records.append(sqs_record("m-3", sns_envelope(topic_message("other", "Fine."))))
    response = handler({"Records": records}, lambda_context)
    assert failed_ids(response) == []
    done = analyzed(analysis_stack.items_table)
    assert set(done) == {"dup", "other"}
    assert done["dup"]["sentiment"] == "negative"
    reliability.observed(f"no failures; {len(done)} items analyzed, 'dup' = {done['dup']['sentiment']}")


@pytest.mark.slow
def test_an_oversized_batch_is_processed_whole(
    analysis_stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler

    reliability.case(
        "analysis handler (SQS batch)",
        "oversized batch: 300 records (30x the configured batch size)",
        "all analyzed, no failure",
    )
    texts = {f"bulk-{n}": f"Review {n}: {'good' if n % 2 else 'bad'} value for money." for n in range(300)}
    records = stored_batch(analysis_stack.items_table, texts)
    response = handler({"Records": records}, lambda_context)
    assert failed_ids(response) == []
    assert len(analyzed(analysis_stack.items_table)) == 300
    reliability.observed("300 of 300 analyzed, batchItemFailures empty")


DIRECT_CASES: list[tuple[str, Any, str]] = [
    ("malformed JSON (a JSON string payload)", '{"texts": [', "400: unknown event"),
    ("JSON null payload", None, "400: unknown event"),
    ("wrong type: texts is a string", {"texts": "good"}, "400: texts: Input should be a valid list"),
    ("wrong type: a number among texts", {"texts": ["ok", 3]}, "400: texts[1]: Input should be a valid string"),
    ("missing field: item without text", {"items": [{"id": "a"}]}, "400: items[0].text: Field required"),
    ("unknown event shape", {"detail-type": "Scheduled Event"}, "400: unknown event"),
    ("SQS-looking record without messageId", {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, "400: unknown"),
    ("SNS event with non-JSON Message", {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "x"}}]}, "400"),
    ("oversized batch: 4,097 texts", {"texts": ["x"] * 4097}, "400: too many texts"),
    ("empty list", {"texts": []}, "400: texts: List should have at least 1 item"),
    ("invalid UTF-8: lone surrogate", {"texts": ["ok", "bad \ud800"]}, "400: texts[1]: not valid Unicode"),
    ("invalid UTF-8: lone surrogate in an item", {"items": [{"text": "\udfff"}]}, "400: items[0].text"),
    ("empty and whitespace-only texts", {"texts": ["", "  \n"]}, "200"),
    ("1 MB text", {"texts": [MEGABYTE_TEXT]}, "200"),
    ("control characters, emoji, RTL", {"texts": [CONTROL_TEXT, EMOJI_TEXT, RTL_TEXT]}, "200"),
    ("duplicate ids in items", {"items": [{"id": 1, "text": "good"}, {"id": 1, "text": "bad"}]}, "200"),
]


@pytest.mark.slow
def test_analysis_direct_invoke_answers_400_or_one_result_per_text(
    analysis_stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler

    for name, event, expected in DIRECT_CASES:
        shown = expected if expected != "200" else "200, one result per text"
        with reliability.row("analysis handler (direct invoke)", name, shown) as row:
            response = handler(event, lambda_context)
            if expected.startswith("400"):
                assert response["statusCode"] == 400, response
                assert expected.removeprefix("400").removeprefix(": ") in response["error"], response["error"]
                row.observed(f"400 {response['error'][:120]!r}")
                continue
            assert response["statusCode"] == 200
            n = len(event.get("texts") or event.get("items"))
            assert response["count"] == len(response["results"]) == n
            json.dumps(response, allow_nan=False)  # the runtime can serialise it
            row.observed(f"200, {n} results: {[r['sentiment'] for r in response['results']]}")


# --------------------------------------------------------------------------- CLIs


NOT_UTF8 = b"bad-\xff\xfe".decode("utf-8", "surrogateescape")
"""How a non-UTF-8 command-line argument reaches Python (PEP 383)."""


@dataclass(frozen=True)
class CliCase:
    tool: str
    name: str
    argv: list[str]
    """``{model}``, ``{broken}`` and ``{tmp}`` are filled in per test."""
    code: int
    match: str
    process: bool = False
    """Run as a real process (the argument bytes go through the OS), else ``main(argv)`` in-process."""


CLI_CASES = [
    CliCase(
        "sentiment-model",
        "--key that is not UTF-8 (real process)",
        ["publish", "--model-dir", "{model}", "--bucket", "models", "--key", NOT_UTF8],
        1,
        "UnicodeEncodeError",
        process=True,
    ),
    CliCase(
        "sentiment-model",
        "hub revision that is not UTF-8",
        ["publish", "--model", f"org/m@{NOT_UTF8}", "--bucket", "models", "--key", "k/m.tar"],
        1,
        "not a hub revision",
    ),
    CliCase(
        "sentiment-model",
        "5,000-character hub model id",
        ["publish", "--model", "x" * 5000, "--bucket", "models", "--key", "k/m.tar"],
        1,
        "Repo id",
    ),
    CliCase(
        "sentiment-model",
        "invalid bucket name",
        ["publish", "--model-dir", "{model}", "--bucket", "Bad_Bucket!", "--key", "k/m.tar"],
        2,
        "is not an S3 bucket name",
    ),
    CliCase(
        "sentiment-model", "pack OUT under a regular file", ["pack", "{model}", "{tmp}/file.txt/m.tar"], 1, "FileExists"
    ),
    CliCase("sentiment-model", "model dir is a file", ["pack", "{tmp}/file.txt", "{tmp}/m.tar"], 1, "not found"),
    CliCase(
        "sentiment-model", "config.json that is not JSON", ["pack", "{broken}", "{tmp}/m.tar"], 1, "not valid JSON"
    ),
    CliCase("sentiment-local", "batch size 0", ["run", "--batch-size", "0"], 2, "between 1 and 10"),
    CliCase("sentiment-local", "batch size not a number", ["run", "--batch-size", "ten"], 2, "not an integer"),
    CliCase(
        "sentiment-local",
        "feed file that does not exist",
        ["run", "--model-dir", "{model}", "--feed", "{tmp}/nope.xml"],
        1,
        "feed file not found",
    ),
    CliCase(
        "sentiment-local",
        "classify a text that is not UTF-8 (real process)",
        ["classify", NOT_UTF8, "--model-dir", "{model}"],
        2,
        "not valid Unicode",
        process=True,
    ),
    CliCase("sentiment-local", "unknown command", ["frobnicate"], 2, "invalid choice"),
]


def _run_cli(case: CliCase, args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the tool, as a real process or through its ``main``."""
    if case.process:
        module = "sentiment_model.cli" if case.tool == "sentiment-model" else "sentiment_local.cli"
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=300,
            check=False,
            cwd=cwd,
        )
        return result.returncode, result.stdout, result.stderr
    from sentiment_local.cli import main as local_main
    from sentiment_model.cli import main as model_main

    capsys.readouterr()
    try:
        code = model_main(args) if case.tool == "sentiment-model" else local_main(args)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_cli_hostile_arguments_end_in_one_clear_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reliability: Recorder
) -> None:
    model = make_model_dir(tmp_path / "model")
    broken = make_model_dir(tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    (tmp_path / "file.txt").write_text("x")
    for case in CLI_CASES:
        expected = f"exit {case.code}, one-line error naming the problem, no traceback"
        with reliability.row(f"CLI {case.tool}", case.name, expected) as row:
            args = [a.format(model=model, tmp=tmp_path, broken=broken) for a in case.argv]
            if case.tool == "sentiment-local" and args[0] in ("run", "classify"):
                args += ["--state-dir", str(tmp_path / "state")]
            # When the tool runs with the hostile arguments
            code, out, err = _run_cli(case, args, tmp_path, capsys)
            # Then it exits with the expected code and one error line, never a traceback
            assert code == case.code, err[-2000:]
            assert "Traceback" not in err
            assert out == ""
            last = err.strip().splitlines()[-1]
            assert "error" in last
            assert case.match in last, last
            row.observed(f"exit {code}: {last[:140]!r}")
