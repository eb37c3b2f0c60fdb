"""Injected faults against moto and the real handlers: throttling, crashes, duplicates, timeouts, bad bundles, disks.

Faults are injected where they happen in AWS: at the HTTP layer of the boto3 client the code already
uses (``before-send``, so botocore's retries and the adapters' error handling run unchanged), in the
model bundle bytes, or in the process (a crash = an exception no handler code catches). Every test
then checks the invariant that matters: each record is analyzed or reported failed, none is lost and
none is counted twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from queue_support import drain_topic_messages
from reliability_support import (
    FailingCalls,
    FailingEntries,
    analyzed,
    clean_ingestion_stack,
    configure_analysis,
    error_response,
    failed_ids,
    put_items,
    shared_model_cache,
    stored_batch,
)
from reliability_table import Recorder

from sentiment_local.provision import StackResources
from sentiment_shared import aws, model_bundle
from sentiment_shared.adapters import DynamoItemsTable, SnsPublisher
from sentiment_shared.dal.read_model import read_summary
from sentiment_shared.settings import reset_settings_cache

pytestmark = [pytest.mark.functional, pytest.mark.slow]

REVIEWS = [
    "I love it, works perfectly.",
    "Broke after two days, avoid.",
    "Fantastic value and quick delivery.",
    "The worst support I have ever dealt with.",
    "Absolutely delighted with this purchase.",
    "Cheap plastic, fell apart immediately.",
]


class Crash(BaseException):
    """The function's process dies here (OOM, timeout kill): no ``except Exception`` in the code sees it."""


@pytest.fixture(scope="module")
def bundle(shared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> model_bundle.BundleInfo:
    return model_bundle.pack(shared_model_dir, tmp_path_factory.mktemp("bundle") / model_bundle.BUNDLE_FILE_NAME)


@pytest.fixture
def stack(moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> StackResources:
    return clean_ingestion_stack(moto_server_url, monkeypatch)


@pytest.fixture
def analysis(
    stack: StackResources,
    monkeypatch: pytest.MonkeyPatch,
    bundle: model_bundle.BundleInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> StackResources:
    configure_analysis(monkeypatch, stack, bundle, shared_model_cache(tmp_path_factory))
    return stack


def _reviews(prefix: str, count: int = len(REVIEWS)) -> dict[str, str]:
    return {f"{prefix}-{n}": f"{REVIEWS[n % len(REVIEWS)]} (#{n})" for n in range(count)}


def _update_targets(params: dict[str, Any]) -> list[str]:
    """The items a result write is for: the item updates of its TransactWriteItems (a batch's, + counters)."""
    keys = [a.get("Update", {}).get("Key", {}).get("item_id", {}).get("S", "") for a in params.get("TransactItems", [])]
    return [k for k in keys if k and not k.startswith("counter#")]


# --------------------------------------------------------------------------- DynamoDB throttling


def test_analysis_write_throttling_is_retried_then_reported_for_that_record_only(
    analysis: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import build_handler, models

    reliability.case(
        "faults: DynamoDB",
        "analysis result write (the batch's TransactWriteItems) throttled: twice for one item, "
        "on every attempt for another",
        "the first is retried and stored; the second is retried, then tried alone (halves), then only its "
        "record is reported failed, counting nothing",
    )
    items = _reviews("t")
    records = stored_batch(analysis.items_table, items)
    seen: dict[str, int] = {}
    alone: dict[str, int] = {}

    def throttle(params: dict[str, Any]) -> Any:
        targets = _update_targets(params)
        for target in targets:
            seen[target] = seen.get(target, 0) + 1
        if len(targets) == 1:
            alone[targets[0]] = alone.get(targets[0], 0) + 1
        if "t-1" in targets or ("t-0" in targets and seen["t-0"] <= 2):
            return error_response(400, "ProvisionedThroughputExceededException", "Rate of requests exceeds")
        return None

    # When a batch is analyzed while the table throttles (botocore's standard retries, 2 retries)
    fault = FailingCalls("dynamodb", "TransactWriteItems", throttle, max_attempts=2)
    handler = build_handler(models, table=DynamoItemsTable(analysis.items_table, client=fault.client))
    with fault.installed():
        response = handler({"Records": records}, lambda_context)
    # Then the transient throttle was retried away, the persistent one is that record's failure alone: the
    # batch's transaction is retried by botocore, then tried in halves until t-1 fails on its own
    assert failed_ids(response) == ["m-t-1"]
    assert alone["t-1"] == 3, "max_attempts=2: the first try and 2 retries, of t-1 alone"
    assert set(analyzed(analysis.items_table)) == set(items) - {"t-1"}
    assert read_summary(analysis.items_table).analyzed == len(items) - 1, "t-1 counted nothing"
    # And its redelivery, once the table recovers, stores it: nothing lost
    retry = handler({"Records": records[1:3]}, lambda_context)
    assert failed_ids(retry) == []
    assert set(analyzed(analysis.items_table)) == set(items)
    assert read_summary(analysis.items_table).analyzed == len(items)
    reliability.observed(
        f"t-0: {seen['t-0']} attempts, stored; t-1: {seen['t-1']} attempts ({alone['t-1']} alone), "
        "batchItemFailures=[m-t-1], counted nothing; "
        f"{fault.injected} throttles injected; redelivery stored t-1; {len(items)}/{len(items)} analyzed"
    )


def test_ingestion_put_throttling_is_retried_and_a_persistent_one_fails_the_invocation_for_a_retry(
    stack: StackResources, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_ingestion.core import StoreError
    from sentiment_ingestion.handler import build_handler, handler

    reliability.case(
        "faults: DynamoDB",
        "ingestion PutItem throttled: once per item, then on every attempt",
        "transient: all stored once; persistent: the invocation fails (Lambda retries it), the retry stores "
        "each item once and publishes it once",
    )
    texts = [f"Throttled review {n}: {text}" for n, text in enumerate(REVIEWS)]
    attempts: dict[str, int] = {}

    def once(params: dict[str, Any]) -> Any:
        key = params["Item"]["item_id"]["S"]
        attempts[key] = attempts.get(key, 0) + 1
        return error_response(400, "ThrottlingException") if attempts[key] == 1 else None

    def throttled(fault: FailingCalls) -> Any:
        return build_handler(table=DynamoItemsTable(stack.items_table, client=fault.client))

    transient = FailingCalls("dynamodb", "PutItem", once, max_attempts=2)
    with transient.installed():
        first = throttled(transient)({"texts": texts[:3]}, lambda_context)
    assert (first["stored"], first["published"]) == (3, 3)
    assert list(attempts.values()) == [2, 2, 2]

    always = FailingCalls("dynamodb", "PutItem", lambda _p: error_response(400, "ThrottlingException"), max_attempts=2)
    with always.installed(), pytest.raises(StoreError):
        throttled(always)({"texts": texts[3:]}, lambda_context)
    retried = handler({"texts": texts[3:]}, lambda_context)
    assert (retried["stored"], retried["duplicates"], retried["published"]) == (3, 0, 3)
    messages = drain_topic_messages(stack.queue_url)
    assert sorted(m["text"] for m in messages) == sorted(texts)
    reliability.observed(
        f"transient: 3 stored after 2 attempts each; persistent: StoreError after {always.attempts} attempts, "
        f"retry stored {retried['stored']}, {len(messages)} messages for {len(texts)} texts"
    )


# --------------------------------------------------------------------------- crash between store and publish


def test_a_crash_between_storing_and_publishing_is_republished_later_and_analysed_once(
    analysis: StackResources, monkeypatch: pytest.MonkeyPatch, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler as analysis_handler
    from sentiment_ingestion.handler import build_handler
    from sentiment_ingestion.handler import handler as ingestion_handler
    from sentiment_local.esm import EventSourceMapping

    reliability.case(
        "faults: ingestion",
        "process dies after the conditional puts, before PublishBatch",
        "items stay pending (no run marker); the next run re-publishes them; each analyzed exactly once",
    )
    texts = [f"Crash test {n}: {REVIEWS[n % len(REVIEWS)]}" for n in range(25)]
    monkeypatch.setenv("REPUBLISH_AFTER_S", "0")
    reset_settings_cache()

    def die(_params: dict[str, Any]) -> Any:
        raise Crash

    # Given an ingestion run that dies as it starts publishing
    crash = FailingCalls("sns", "PublishBatch", die)
    with crash.installed(), pytest.raises(Crash):
        build_handler(publisher=SnsPublisher(analysis.topic_arn, client=crash.client))({"texts": texts}, lambda_context)
    pending = DynamoItemsTable(analysis.items_table).pending_items(_far_future(), 100)
    assert len(pending) == 25
    assert drain_topic_messages(analysis.queue_url) == []
    # When the next scheduled/direct run happens
    later = ingestion_handler({"texts": ["A later, unrelated text."]}, lambda_context)
    # Then the crashed run's items are re-published, and the analysis stores each exactly once
    assert later["republished"] == 25
    esm = EventSourceMapping(analysis.queue_url, analysis.queue_arn, analysis_handler, batch_size=10)
    stats = esm.drain(timeout_s=120)
    done = analyzed(analysis.items_table)
    assert len(done) == 26
    assert {str(v["text"]) for v in done.values()} == {*texts, "A later, unrelated text."}
    assert stats.record_failures == 0
    assert DynamoItemsTable(analysis.items_table).pending_items(_far_future(), 100) == []
    reliability.observed(
        f"25 pending after the crash, 0 messages; next run republished {later['republished']}; "
        f"{len(done)} analyzed, {stats.records_succeeded} deliveries, 0 pending left"
    )


def test_a_publish_batch_partial_failure_leaves_items_pending_until_a_later_run_delivers_them_once(
    analysis: StackResources, monkeypatch: pytest.MonkeyPatch, reliability: Recorder, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler as analysis_handler
    from sentiment_ingestion.handler import build_handler
    from sentiment_ingestion.handler import handler as ingestion_handler
    from sentiment_local.esm import EventSourceMapping

    reliability.case(
        "faults: ingestion",
        "SNS PublishBatch fails 3 of 12 entries on every attempt of one run (partial failure, end to end)",
        "the 9 others are delivered; the 3 stay pending (3 calls each, then reported failed); the next run "
        "re-publishes exactly those; each of the 12 is delivered and analyzed once",
    )
    texts = [f"Partial publish {n}: {REVIEWS[n % len(REVIEWS)]}" for n in range(12)]
    monkeypatch.setenv("REPUBLISH_AFTER_S", "0")
    reset_settings_cache()
    # Given a run whose PublishBatch keeps failing 3 entries
    sns = FailingEntries(lambda _call, entry: json.loads(entry["Message"])["text"] in texts[:3])
    first = build_handler(publisher=SnsPublisher(analysis.topic_arn, client=sns))({"texts": texts}, lambda_context)
    assert (first["stored"], first["published"], first["failed"]) == (12, 9, 3)
    pending = {i.item_id for i in DynamoItemsTable(analysis.items_table).pending_items(_far_future(), 100)}
    refused = {m["item_id"] for m in sns.refused}
    assert (len(refused), len(sns.refused)) == (3, 9), "3 entries, each refused in 3 calls"
    assert refused <= pending
    # When the next run happens and the queue is drained
    later = ingestion_handler({"texts": ["Something new after the outage."]}, lambda_context)
    esm = EventSourceMapping(analysis.queue_url, analysis.queue_arn, analysis_handler, batch_size=10)
    stats = esm.drain(timeout_s=120)
    # Then exactly the refused items were re-published, and all 13 items were delivered and analyzed once
    assert later["republished"] == 3
    assert stats.records_succeeded == 13
    assert stats.record_failures == 0
    assert len(analyzed(analysis.items_table)) == 13
    reliability.observed(
        f"run 1: stored 12, published 9, failed 3 (pending); run 2 republished {later['republished']}; "
        f"{stats.records_succeeded} deliveries for 13 items, 13 analyzed"
    )


def _far_future() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


# --------------------------------------------------------------------------- duplicate and concurrent delivery


def test_the_same_batch_delivered_twice_concurrently_is_idempotent(
    analysis: StackResources, reliability: Recorder, dynamodb_isolation: Any, lambda_context: LambdaContext
) -> None:
    from sentiment_analysis.handler import handler

    reliability.case(
        "faults: delivery",
        "the same SQS messages delivered twice, concurrently (two containers), then a third time",
        "no failures; each item has one result; the analyzed count equals the item count",
    )
    items = _reviews("c")
    records = stored_batch(analysis.items_table, items)
    handler({"Records": records[:1]}, lambda_context)  # warm: the load is not what races
    barrier = threading.Barrier(2)
    responses: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait(timeout=30)
        responses.append(handler({"Records": records}, lambda_context))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    first = analyzed(analysis.items_table)
    third = handler({"Records": list(reversed(records))}, lambda_context)
    after = analyzed(analysis.items_table)
    assert len(responses) == 2
    assert [failed_ids(r) for r in responses] == [[], []]
    assert failed_ids(third) == []
    assert set(first) == set(after) == set(items)
    assert {k: (v["sentiment"], v["label"]) for k, v in first.items()} == {
        k: (v["sentiment"], v["label"]) for k, v in after.items()
    }
    reliability.observed(
        f"both concurrent deliveries and the third: no failures; {len(after)} items analyzed for {len(items)} "
        "items, same results each time"
    )


# --------------------------------------------------------------------------- timeout mid-batch


def test_a_handler_timeout_mid_batch_redelivers_the_batch_and_counts_each_item_once(
    analysis: StackResources, reliability: Recorder
) -> None:
    from sentiment_analysis.handler import build_handler, models
    from sentiment_local.esm import EventSourceMapping
    from sentiment_shared.schemas import TopicMessage

    reliability.case(
        "faults: delivery",
        "function times out just after its batch's result write committed (before it could answer)",
        "the whole batch is redelivered; all 10 analyzed, each counted once",
    )
    items = _reviews("to", 10)
    put_items(analysis.items_table, items)
    report = SnsPublisher(analysis.topic_arn).publish([TopicMessage(item_id=k, text=t) for k, t in items.items()])
    assert report.failed == {}
    writes = {"n": 0, "timed_out": False, "committed": 0}

    def count(_params: dict[str, Any]) -> Any:
        writes["n"] += 1
        return None

    def time_out_after_commit(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not writes["timed_out"] and http_response.status_code == 200:
            writes["timed_out"] = True
            writes["committed"] = 1
            raise Crash  # the write landed; the runtime kills the invocation before it could answer

    fault = FailingCalls("dynamodb", "TransactWriteItems", count)
    fault.client.meta.events.register("after-call.dynamodb.TransactWriteItems", time_out_after_commit)
    handler = build_handler(models, table=DynamoItemsTable(analysis.items_table, client=fault.client))

    def function(event: dict[str, Any], context: Any) -> Any:
        try:
            return handler(event, context)
        except Crash:
            raise TimeoutError("Task timed out after 120.00 seconds") from None

    # When the queue is drained while the first invocation dies once its write has committed
    with fault.installed():
        stats = EventSourceMapping(analysis.queue_url, analysis.queue_arn, function, batch_size=10).drain(timeout_s=120)
    # Then the batch came back, every item is analyzed, and none counts twice
    done = analyzed(analysis.items_table)
    assert writes["timed_out"]
    assert stats.invocations_failed == 1
    assert set(done) == set(items)
    assert stats.records_succeeded == 10
    assert writes["committed"] > 0
    assert read_summary(analysis.items_table).analyzed == 10
    reliability.observed(
        f"1 timed-out invocation after its batch's write committed ({stats.record_failures} records "
        f"redelivered), {writes['n']} writes in all; {len(done)} of 10 analyzed, counted 10; "
        f"{stats.records_succeeded} successful deliveries"
    )


# --------------------------------------------------------------------------- model bundle at cold start


def test_a_corrupted_bundle_fails_the_cold_start_closed_and_the_next_invocation_recovers(
    *,
    stack: StackResources,
    monkeypatch: pytest.MonkeyPatch,
    bundle: model_bundle.BundleInfo,
    tmp_path: Path,
    reliability: Recorder,
    lambda_context: LambdaContext,
) -> None:
    from sentiment_analysis.handler import handler

    reliability.case(
        "faults: model bundle",
        "bundle in S3 corrupted (one byte flipped) at the analysis cold start",
        "the invocation fails (whole batch retried, nothing stored), nothing cached; "
        "the next invocation after the fix loads and analyzes",
    )
    cache = tmp_path / "cold-cache"
    configure_analysis(monkeypatch, stack, bundle, cache)
    data = bytearray(bundle.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    aws.client("s3").put_object(Bucket=stack.bucket, Key=os.environ["MODEL_KEY"], Body=bytes(data))
    event = {"Records": stored_batch(stack.items_table, {"cb-1": REVIEWS[0]})}
    # When a batch arrives / Then the cold start refuses the bundle and the invocation fails
    with pytest.raises(model_bundle.BundleError, match="sha256") as info:
        handler(event, lambda_context)
    assert model_bundle.cached_model_dir(cache, bundle.sha256) is None
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []
    assert analyzed(stack.items_table) == {}
    # When the object is fixed and the batch is redelivered / Then it loads and analyzes
    aws.client("s3").upload_file(str(bundle.path), stack.bucket, os.environ["MODEL_KEY"])
    response = handler(event, lambda_context)
    assert failed_ids(response) == []
    assert set(analyzed(stack.items_table)) == {"cb-1"}
    reliability.observed(f"raised {str(info.value)[:90]!r}; cache empty; redelivery analyzed 1/1")


FULL_DISK_SCRIPT = """
import resource, signal, sys
from pathlib import Path
from sentiment_shared import model_bundle
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
limit = int(sys.argv[5])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    model_bundle.fetch(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))
except model_bundle.BundleError as exc:
    print("BundleError:", exc)
    sys.exit(3)
print("fetched")
"""


def test_a_full_cache_disk_fails_the_fetch_cleanly_and_a_retry_with_space_succeeds(
    stack: StackResources, bundle: model_bundle.BundleInfo, tmp_path: Path, reliability: Recorder
) -> None:
    reliability.case(
        "faults: model bundle",
        "no space left in the model cache while the bundle streams in (file size limit, real process)",
        "a clear BundleError, no partial model or temp file left; the next fetch with space succeeds",
    )
    aws.client("s3").upload_file(str(bundle.path), stack.bucket, "full/model.tar")
    cache = tmp_path / "cache"
    args = [stack.bucket, "full/model.tar", bundle.sha256, str(cache), str(4 * 1024 * 1024)]
    # When a function process with only 4 MB of writable file size fetches the model
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ),
    )
    # Then it fails with a clear error, leaving nothing behind
    assert result.returncode == 3, result.stdout + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 0]
    assert leftovers == []
    assert model_bundle.cached_model_dir(cache, bundle.sha256) is None
    # When the fetch runs again with space / Then the model is there
    model_dir = model_bundle.fetch(stack.bucket, "full/model.tar", bundle.sha256, cache)
    assert (model_dir / "config.json").is_file()
    reliability.observed(f"{result.stdout.strip()[:120]!r}; nothing left; retry fetched the model")
