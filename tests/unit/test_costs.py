"""Cost per 1,000 items: arithmetic from measured durations and configured memory against the price table."""

from __future__ import annotations

import pytest

from sentiment_shared.costs import PRICES, Measured, cost_per_1000, snap_start_cache_usd, snap_start_restore_usd

pytestmark = pytest.mark.unit


def test_cost_scales_measured_gb_seconds_and_requests_to_1000_items() -> None:
    # 100 items took 10 s of a 2048 MB function in 10 invocations, ingestion 1 s at 512 MB in 1 invocation
    cost = cost_per_1000(
        Measured(
            items=100,
            analysis_seconds=10.0,
            analysis_invocations=10,
            analysis_memory_mb=2048,
            ingestion_seconds=1.0,
            ingestion_invocations=1,
            ingestion_memory_mb=512,
        )
    )
    assert cost is not None
    gb_s = (10.0 * 2 + 1.0 * 0.5) * 10  # scaled by 1000 / 100
    assert cost.lambda_compute == pytest.approx(gb_s * PRICES["lambda_gb_second"])
    assert cost.lambda_requests == pytest.approx(110 * PRICES["lambda_request"])
    # batches of 10 (100 items, 10 invocations): 1 put + 2 x (10 items + 3 counters) / 10 + 3 index writes
    assert cost.dynamodb == pytest.approx(1000 * 6.6 * PRICES["dynamodb_write_unit"])
    assert cost.total == pytest.approx(cost.lambda_compute + cost.lambda_requests + cost.sqs + cost.sns + cost.dynamodb)
    assert cost.as_dict()["analysis_ms_per_item"] == 100.0


def test_no_items_no_cost() -> None:
    assert cost_per_1000(Measured(items=0, analysis_seconds=1, analysis_invocations=1, analysis_memory_mb=2048)) is None


def test_a_cold_start_is_priced_apart_not_spread_over_the_few_items_measured() -> None:
    # 6 items in one invocation: 13.7 s, of which 12.5 s were the cold start (download, verify, load)
    measured = Measured(
        items=6,
        analysis_seconds=13.7,
        analysis_invocations=1,
        analysis_memory_mb=2048,
        analysis_cold_start_seconds=12.5,
        analysis_cold_starts=1,
    )
    cost = cost_per_1000(measured)
    assert cost is not None
    assert cost.as_dict()["analysis_ms_per_item"] == 200.0  # (13.7 - 12.5) / 6, not 2,283 ms
    assert cost.lambda_compute == pytest.approx(1.2 * 2 * PRICES["lambda_gb_second"] * 1000 / 6)
    assert cost.cold_start_usd == pytest.approx(12.5 * 2 * PRICES["lambda_gb_second"])
    assert "cold starts excluded: 1 x 12.5 s" in cost.as_dict()["basis"]


def test_snap_start_charges_follow_lambdas_published_prices() -> None:
    # AWS Lambda pricing, SnapStart (Python), us-east-1: cache per GB-second (3-hour minimum), restore per GB
    assert PRICES["snapstart_cache_gb_second"] == 0.0000015046
    assert PRICES["snapstart_restore_gb"] == 0.0001397998
    # A 2 GB version kept 30 days: 2 x 2,592,000 GB-s x price ~ $7.80 a month
    assert snap_start_cache_usd(2048, 30 * 24 * 3600) == pytest.approx(7.80, abs=0.01)
    # A version deleted after 10 minutes still pays 3 hours
    assert snap_start_cache_usd(2048, 600) == snap_start_cache_usd(2048, 3 * 3600)
    # 1,000 cold starts (restores) of a 2 GB function ~ $0.28
    assert snap_start_restore_usd(2048, 1000) == pytest.approx(0.2796, abs=0.0001)


def test_write_units_per_item_come_from_the_write_path_and_shrink_with_the_batch() -> None:
    from sentiment_shared.costs import WRITE_UNITS_PER_ITEM, write_units_per_item

    assert pytest.approx(6.6) == WRITE_UNITS_PER_ITEM
    assert write_units_per_item(1) == pytest.approx(1 + 2 * 4 + 3)  # a batch of one: the old per-record shape
    assert write_units_per_item(5) < write_units_per_item(2) < write_units_per_item(1)


def test_the_warm_time_is_split_into_compute_and_table_round_trips() -> None:
    measured = Measured(
        items=100, analysis_seconds=6.0, analysis_invocations=10, analysis_memory_mb=2048, analysis_store_seconds=1.5
    )
    cost = cost_per_1000(measured)
    assert cost is not None
    data = cost.as_dict()
    assert (data["analysis_compute_ms_per_item"], data["analysis_store_ms_per_item"]) == (45.0, 15.0)
    assert data["analysis_dominated_by"] == "compute (inference)"
    assert "45 ms compute, 15 ms table round trips: compute (inference) dominates" in data["basis"]
