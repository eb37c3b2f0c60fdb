"""pytest plugin behind ``docs/RELIABILITY.md``: every reliability case a test runs, with what it observed.

A test asks for the ``reliability`` fixture, names its case (``area``, the input or fault, the expected
outcome) and records what actually happened (``observed``): a status code and error, the record
failures, the counts after a soak. Tests written before this table, in other files, are listed in
:data:`EXISTING_CASES` by node id; their observed outcome is their own pass or failure.

Every such test is marked ``reliability`` (so ``-m reliability`` selects them all). With
``--reliability-md PATH`` the session writes the table to ``PATH``; ``make reliability`` runs exactly that,
so the document always comes from a real run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

MARKER = "reliability"


@dataclass
class Row:
    area: str
    case: str
    expected: str
    observed: list[str] = field(default_factory=list)
    outcome: str = "not run"
    nodeid: str = ""


@dataclass(frozen=True)
class ExistingCase:
    nodeid: str
    """A node id, or the prefix of a parametrised test's ids (all of its parameters make one row)."""
    area: str
    case: str
    expected: str


EXISTING_CASES: tuple[ExistingCase, ...] = (
    ExistingCase(
        "tests/functional/test_model_bundle_s3.py::test_a_stream_cut_midway_leaves_nothing_and_a_retry_works",
        "model fetch",
        "S3 download cut mid-stream",
        "fetch raises, no model directory or temp file left, the next fetch downloads cleanly",
    ),
    ExistingCase(
        "tests/functional/test_model_bundle_s3.py::test_corrupted_object_is_refused_then_a_clean_retry_works",
        "model fetch",
        "corrupted bundle in S3 (sha256 mismatch), stream and ranged downloads",
        "fail closed: digest error, nothing cached; after the object is fixed the next fetch succeeds",
    ),
    ExistingCase(
        "tests/functional/test_model_bundle_s3.py::test_a_killed_fetch_leaves_nothing_that_outlives_the_next_one",
        "model fetch",
        "process killed in the middle of a fetch",
        "leftovers are ignored and swept by the next fetch",
    ),
    ExistingCase(
        "tests/unit/test_model_bundle.py::test_extract_reports_a_full_disk_cleanly",
        "model fetch",
        "no space left in the cache directory while extracting (ENOSPC)",
        "a clear error, no partial model left behind",
    ),
    ExistingCase(
        "tests/unit/test_model_bundle.py::test_extract_refuses_hostile_archives",
        "model fetch",
        "hostile archive members (absolute paths, `..`, links, devices, fifos)",
        "refused before anything is written outside the destination",
    ),
    ExistingCase(
        "tests/unit/test_model_bundle.py::test_property_no_archive_escapes_the_destination",
        "model fetch",
        "property: arbitrary archives (hypothesis)",
        "no extracted path ever lands outside the destination",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_decode_message_returns_a_valid_message_or_raises_its_own_error",
        "property-based (hypothesis)",
        "any JSON value or near-message object as a queue body, raw or SNS-wrapped (lone surrogates included)",
        "a valid, UTF-8-encodable message or InvalidMessageError; nothing else",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_decode_message_survives_any_raw_body",
        "property-based (hypothesis)",
        "any string (or null) as a queue body",
        "a message or InvalidMessageError",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_every_valid_message_round_trips_raw_or_wrapped",
        "property-based (hypothesis)",
        "any valid topic message, raw or SNS-wrapped",
        "decodes to the same item_id and text",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_parse_direct_returns_a_request_or_a_payload_error",
        "property-based (hypothesis)",
        "any JSON object as an analysis direct invoke",
        "a request of 1..4096 encodable texts or PayloadError (a 400)",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_parse_event_returns_a_request_or_an_invalid_event_error",
        "property-based (hypothesis)",
        "any JSON value as an ingestion event",
        "a request with one encodable entry per input, or InvalidEventError (a 400)",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_normalized_text_is_clean_bounded_and_encodable",
        "property-based (hypothesis)",
        "any text through ingestion's normalizer",
        "None, or text without controls/format characters, single-spaced, within the cap",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_every_record_of_a_batch_is_analysed_or_failed_never_dropped",
        "property-based (hypothesis)",
        "any batch of record bodies (valid, JSON, arbitrary strings, null)",
        "each record id ends in exactly one of results / errors",
    ),
    ExistingCase(
        "tests/functional/test_reliability_properties.py::test_ingestion_counts_every_entry_once_and_publishes_every_new_item_once",
        "property-based (hypothesis)",
        "any list of entries (duplicates, HTML, blanks, repeated keys), ingested twice",
        "received = stored + duplicates + skipped; each new item published once; the rerun stores nothing",
    ),
    ExistingCase(
        "tests/functional/test_adapters.py::test_publish_batch_partial_failure_is_retried_and_delivered",
        "ingestion publish",
        "SNS PublishBatch partial failure (some entries failed, retryable)",
        "only the failed entries are retried; every message delivered once",
    ),
    ExistingCase(
        "tests/functional/test_adapters.py::test_publish_reports_entries_that_keep_failing",
        "ingestion publish",
        "SNS PublishBatch entries that keep failing",
        "reported failed after the retries, never dropped silently",
    ),
    ExistingCase(
        "tests/functional/test_ingestion_handler.py::test_publish_failure_is_recovered_by_a_later_run",
        "ingestion publish",
        "publish failure in one run (moto)",
        "item stays pending, a later run re-publishes it",
    ),
    ExistingCase(
        "tests/functional/test_ingestion_handler.py::test_concurrent_invocations_are_deduplicated",
        "faults: ingestion",
        "the same payload ingested by concurrent invocations",
        "each item stored and published once",
    ),
    ExistingCase(
        "tests/functional/test_ingestion_handler.py::test_table_failure_fails_the_invocation_so_it_is_retried",
        "faults: ingestion",
        "items table unavailable during a direct invoke",
        "the invocation raises (Lambda retries it); nothing is reported stored",
    ),
    ExistingCase(
        "tests/unit/test_ingestion_feeds.py::test_declared_oversized_body_is_refused_before_reading",
        "ingestion feeds (HTTP)",
        "feed declaring a body over the byte cap",
        "refused before reading (a feed error)",
    ),
    ExistingCase(
        "tests/unit/test_ingestion_feeds.py::test_undeclared_oversized_body_is_cut_while_streaming",
        "ingestion feeds (HTTP)",
        "feed streaming past the byte cap without Content-Length",
        "cut while streaming (a feed error)",
    ),
    ExistingCase(
        "tests/unit/test_ingestion_feeds.py::test_compressed_body_is_limited_by_its_decoded_size",
        "ingestion feeds (HTTP)",
        "gzip bomb",
        "limited by its decoded size",
    ),
    ExistingCase(
        "tests/unit/test_ingestion_feeds.py::test_timeouts_and_connection_errors_are_feed_errors",
        "ingestion feeds (HTTP)",
        "slow server, refused connection",
        "feed errors naming the cause, other feeds unaffected",
    ),
    ExistingCase(
        "tests/unit/test_ingestion_feeds.py::test_redirects_are_followed_but_not_forever",
        "ingestion feeds (HTTP)",
        "redirect loop",
        "stops after 5 redirects with a feed error",
    ),
    ExistingCase(
        "tests/unit/test_analysis_image.py::test_dockerfile_is_hadolint_clean",
        "security: lint",
        "hadolint on the analysis Dockerfile",
        "clean",
    ),
    ExistingCase(
        "tests/infra/test_infra_workflows.py::test_zizmor_finds_nothing",
        "security: lint",
        "zizmor on .github/workflows",
        "no finding",
    ),
    ExistingCase(
        "tests/infra/test_infra_workflows.py::test_every_action_is_pinned_by_full_commit_sha",
        "security: lint",
        "third-party actions in the workflows",
        "every one pinned by a full commit SHA",
    ),
    ExistingCase(
        "tests/infra/test_infra_iam.py::test_identity_policies_have_no_wildcard_action_or_resource_beyond_the_allow_list",
        "security: IAM least privilege (Pulumi mocks)",
        "every identity policy of both stacks",
        "no wildcard action; no wildcard resource beyond the AWS-required allow-list",
    ),
    ExistingCase(
        "tests/infra/test_infra_iam.py::test_resource_policies_never_allow_anyone_and_pin_every_service_principal",
        "security: IAM least privilege (Pulumi mocks)",
        "every resource policy (bucket, queue, topic, key, repository)",
        "no Allow for anyone; every service principal pinned to this stack's source",
    ),
    ExistingCase(
        "tests/infra/test_infra_iam.py::test_roles_trust_only_lambda_for_this_account",
        "security: IAM least privilege (Pulumi mocks)",
        "role trust policies",
        "only lambda.amazonaws.com, for this account",
    ),
    ExistingCase(
        "tests/infra/test_infra_iam.py::test_analysis_may_read_the_model_object_update_items_and_drain_its_queue_only",
        "security: IAM least privilege (Pulumi mocks)",
        "the analysis function's grants",
        "read the model object, update items, drain its queue: nothing else",
    ),
    ExistingCase(
        "tests/infra/test_infra_iam.py::test_ingestion_may_store_items_query_the_pending_index_and_publish_only",
        "security: IAM least privilege (Pulumi mocks)",
        "the ingestion function's grants",
        "store/read items, query the pending index, publish: nothing else",
    ),
    ExistingCase(
        "tests/e2e/test_local_pipeline.py::test_injected_handler_faults_are_retried_then_parked_in_the_dlq",
        "local pipeline",
        "analysis fails every delivery of ~1/4 of the records",
        "those records are received maxReceiveCount times, then parked in the DLQ; the rest analyzed",
    ),
)

AREA_ORDER = (
    "ingestion handler (direct invoke)",
    "ingestion handler (scheduled feeds)",
    "ingestion feeds (HTTP)",
    "analysis handler (SQS batch)",
    "analysis handler (direct invoke)",
    "CLI sentiment-model",
    "CLI sentiment-local",
    "property-based (hypothesis)",
    "faults: DynamoDB",
    "ingestion publish",
    "faults: ingestion",
    "faults: delivery",
    "faults: model bundle",
    "model fetch",
    "local pipeline",
    "soak (local pipeline)",
    "security: image",
    "security: secrets",
    "security: IAM least privilege (Pulumi mocks)",
    "security: checkov families (dev stack, Pulumi mocks)",
    "security: checkov families (prod stack, Pulumi mocks)",
    "security: lint",
)
"""Sections of the document, in reading order (inputs, faults, soak, security); others follow."""

_rows: dict[str, Row] = {}


class CaseRow:
    """One case of a table-driven test: ``with reliability.row(...) as row: ...; row.observed(...)``."""

    def __init__(self, row: Row, failures: list[str]) -> None:
        self._row = row
        self._failures = failures

    def observed(self, text: str) -> None:
        self._row.observed.append(text)

    def __enter__(self) -> CaseRow:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            self._row.outcome = "passed"
            return False
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, pytest's own exits: let them through
        # Record this case's failure and go on with the next case; the test fails at its end.
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        self._row.outcome = "failed"
        self._row.observed.append(f"FAILED: {message}")
        self._failures.append(f"{self._row.case}: {message}")
        return True


class Recorder:
    """What a test hands the table: its case, then what it observed (may be called several times).

    A test covering many cases in one setup uses :meth:`row` once per case instead.
    """

    def __init__(self, nodeid: str) -> None:
        self._nodeid = nodeid
        self.failures: list[str] = []

    def case(self, area: str, case: str, expected: str) -> None:
        _rows[self._nodeid] = Row(area=area, case=case, expected=expected, nodeid=self._nodeid)

    def observed(self, text: str) -> None:
        row = _rows.get(self._nodeid)
        if row is None:
            raise RuntimeError("call reliability.case(...) before reliability.observed(...)")
        row.observed.append(text)

    def row(self, area: str, case: str, expected: str) -> CaseRow:
        key = f"{self._nodeid}::{case}"
        row = Row(area=area, case=case, expected=expected, nodeid=key, outcome="failed")
        _rows[key] = row
        return CaseRow(row, self.failures)


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Record this test's reliability cases and their observed outcomes for ``docs/RELIABILITY.md``.

    A case run with :meth:`Recorder.row` that failed fails the test here, after every case had its turn.
    """
    recorder = Recorder(request.node.nodeid)
    yield recorder
    if recorder.failures:
        pytest.fail(f"{len(recorder.failures)} case(s) failed:\n" + "\n".join(recorder.failures), pytrace=False)


def _existing(nodeid: str) -> ExistingCase | None:
    return next((c for c in EXISTING_CASES if nodeid == c.nodeid or nodeid.startswith(c.nodeid + "[")), None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-soak",
        default=None,
        metavar="PATH",
        help="append this output of `python -m benchmarks.soak` (the full-size soak) to the reliability table",
    )
    parser.addoption(
        "--reliability-md",
        default=None,
        metavar="PATH",
        help="write the reliability table (input or fault -> expected -> observed) of this run to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a case of the reliability table (docs/RELIABILITY.md)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "reliability" in getattr(item, "fixturenames", ()) or _existing(item.nodeid) is not None:
            item.add_marker(MARKER)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "setup" and report.skipped:
        status = "skipped"
    elif report.when == "call":
        status = report.outcome
    elif report.failed:
        status = "failed"
    else:
        return
    existing = _existing(item.nodeid)
    if existing is not None:
        row = _rows.setdefault(
            existing.nodeid, Row(existing.area, existing.case, existing.expected, nodeid=existing.nodeid)
        )
        # A parametrised test is one row: it passes only if every parameter passed.
        if row.outcome in ("not run", "passed") or status == "failed":
            row.outcome = status
        return
    row = _rows.get(item.nodeid)
    if row is not None:
        row.outcome = status
        if report.failed:
            message = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "failed"
            row.observed.append(f"FAILED: {message}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], soak_table: str | None = None) -> str:
    verdict = {"passed": "✅", "failed": "❌", "skipped": "⏭️ skipped", "not run": "—"}
    by_area: dict[str, list[Row]] = {}
    for row in rows:
        by_area.setdefault(row.area, []).append(row)
    passed = sum(r.outcome == "passed" for r in rows)
    lines = [
        "# Reliability: hostile inputs, injected faults, nothing lost",
        "",
        textwrap.dedent(
            f"""\
            Generated by `make reliability` (`pytest tests -m reliability --reliability-md docs/RELIABILITY.md`)
            on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: **{passed} of {len(rows)} cases passed**. Each row is a
            case a test ran; *observed* is what that run recorded (status codes, errors, counts), or, for
            tests written before this table, their own verdict. The standard: every record ends analyzed or
            reported failed and parked in the DLQ, nothing hostile gets in, nothing is lost or counted twice.

            Not pytest, so not rows here: `.ci/lint-security.sh` runs hadolint and checkov on the Dockerfile and
            zizmor, checkov and actionlint on the workflows in CI (clean; the Dockerfile's two checkov
            suppressions carry their reasons in place), and `uv run python -m benchmarks.soak` runs the soak
            at 1,000 items (the row below is its CI-sized run)."""
        ).strip(),
    ]
    for area, area_rows in by_area.items():
        lines += ["", f"## {area}", "", "| input or fault | expected | observed | |", "|---|---|---|---|"]
        for row in area_rows:
            observed = "; ".join(row.observed) if row.observed else f"test `{row.nodeid.split('::')[-1]}` {row.outcome}"
            lines.append(f"| {_cell(row.case)} | {_cell(row.expected)} | {_cell(observed)} | {verdict[row.outcome]} |")
    if soak_table:
        lines += ["", "## Soak at full size (`uv run python -m benchmarks.soak`)", "", "```", soak_table.strip(), "```"]
    return "\n".join(lines) + "\n"


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption("--reliability-md")
    if not target or not _rows:
        return
    rank = {area: i for i, area in enumerate(AREA_ORDER)}
    rows = sorted(_rows.values(), key=lambda r: (rank.get(r.area, len(rank)), r.area))  # stable: run order within
    soak = session.config.getoption("--reliability-soak")
    soak_table = Path(soak).read_text(encoding="utf-8") if soak and Path(soak).is_file() else None
    Path(target).write_text(render(rows, soak_table), encoding="utf-8")
