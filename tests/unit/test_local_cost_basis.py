"""The local run's cost estimate: the cold start is separated from the warm per-item time it measured."""

from __future__ import annotations

import pytest

from sentiment_local.esm import DrainStats
from sentiment_local.pipeline import RunReport
from sentiment_shared.model_publish import PublishResult

pytestmark = pytest.mark.unit

MODEL = PublishResult("b", "k", "s3://b/k", "0" * 64, 1, None, True, "dir:/m", None)
COLD = {"imports_s": 2.0, "download_s": 1.4, "verify_s": 0.2, "extract_s": 0.3, "load_s": 20.0, "cached": False}


def _report(drain: DrainStats, cold_start: dict[str, object]) -> RunReport:
    return RunReport(ingestion={}, model=MODEL, results=[], drain=drain, dlq_depth=0, cold_start=cold_start)


def test_the_first_invocation_minus_its_records_at_the_warm_rate_is_the_cold_start() -> None:
    # 5 batches of 10: the first took 24 s, the 4 others 2 s each (0.2 s per record)
    drain = DrainStats(batches=5, records_succeeded=50, handler_seconds=32.0)
    drain.first_batch_seconds, drain.first_batch_records = 24.0, 10
    assert _report(drain, COLD).cold_start_seconds() == pytest.approx(22.0)


def test_one_invocation_only_the_model_providers_breakdown_is_subtracted() -> None:
    drain = DrainStats(batches=1, records_succeeded=6, handler_seconds=25.0)
    drain.first_batch_seconds, drain.first_batch_records = 25.0, 6
    assert _report(drain, COLD).cold_start_seconds() == pytest.approx(23.9)


def test_a_cached_bundle_still_loads_and_no_function_start_means_no_cold_start() -> None:
    drain = DrainStats(batches=1, records_succeeded=6, handler_seconds=25.0)
    drain.first_batch_seconds, drain.first_batch_records = 25.0, 6
    cached = {**COLD, "download_s": 0.0, "verify_s": 0.0, "extract_s": 0.0, "cached": True}
    assert _report(drain, cached).cold_start_seconds() == pytest.approx(22.0)
    assert _report(drain, {}).cold_start_seconds() == 0.0
