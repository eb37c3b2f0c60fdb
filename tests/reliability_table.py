"""pytest plugin behind ``docs/RELIABILITY.md``: every reliability case a test runs, with what it observed.

A test asks for the ``reliability`` fixture, names its case (``area``, the input or fault, the expected
outcome) and records what actually happened (``observed``): a status code and error, the record
failures, the counts after a soak. A test that records nothing itself carries its case on its marker
instead, ``@pytest.mark.reliability(area=..., case=..., expected=...)``; its observed outcome is its own
pass or failure (all parameters of a parametrised test make one row, unless a parameter carries a case
marker of its own). The case travels with the test, so a renamed test keeps its row; a marker missing
one of the three, or a ``reliability`` test that never names its case, fails loudly rather than leaving
a silent gap in the table.

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


CASE_FIELDS = ("area", "case", "expected")


@dataclass(frozen=True)
class MarkedCase:
    """A case named on a test's ``reliability`` marker (one row for all of its parameters)."""

    key: str
    area: str
    case: str
    expected: str


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
_CALL_FAILED = pytest.StashKey[bool]()


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
        self.named = False

    def case(self, area: str, case: str, expected: str) -> None:
        self.named = True
        _rows[self._nodeid] = Row(area=area, case=case, expected=expected, nodeid=self._nodeid)

    def observed(self, text: str) -> None:
        row = _rows.get(self._nodeid)
        if row is None:
            raise RuntimeError("call reliability.case(...) before reliability.observed(...)")
        row.observed.append(text)

    def row(self, area: str, case: str, expected: str) -> CaseRow:
        self.named = True
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
    if not recorder.named and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail("the reliability fixture was used but no case named: call reliability.case(...) or .row(...)")
    if recorder.failures:
        pytest.fail(f"{len(recorder.failures)} case(s) failed:\n" + "\n".join(recorder.failures), pytrace=False)


def _marked(item: pytest.Item) -> MarkedCase | None:
    marker = item.get_closest_marker(MARKER)
    if marker is None or not marker.kwargs:
        return None
    # One row per test and case: a parametrised test's parameters share its marker's row, and parameters
    # marked with cases of their own (``pytest.param(..., marks=...)``) get a row each.
    key = f"{item.nodeid.split('[', 1)[0]}::{marker.kwargs['case']}"
    return MarkedCase(key, *(str(marker.kwargs[f]) for f in CASE_FIELDS))


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
    problems = []
    for item in items:
        marker = item.get_closest_marker(MARKER)
        uses_fixture = "reliability" in getattr(item, "fixturenames", ())
        if marker is not None and (marker.args or set(marker.kwargs) != (set(CASE_FIELDS) if marker.kwargs else set())):
            problems.append(f"{item.nodeid}: reliability marker needs exactly area=, case=, expected=")
        elif marker is not None and not marker.kwargs and not uses_fixture:
            problems.append(f"{item.nodeid}: marked reliability without a case (name it on the marker)")
        if uses_fixture and marker is None:
            item.add_marker(MARKER)
    if problems:
        raise pytest.UsageError("reliability table:\n" + "\n".join(problems))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call" and not report.passed:
        item.stash[_CALL_FAILED] = True
    if report.when == "setup" and report.skipped:
        status = "skipped"
    elif report.when == "call":
        status = report.outcome
    elif report.failed:
        status = "failed"
    else:
        return
    marked = _marked(item)
    if marked is not None:
        test = item.nodeid.split("[", 1)[0]
        row = _rows.setdefault(marked.key, Row(marked.area, marked.case, marked.expected, nodeid=test))
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
