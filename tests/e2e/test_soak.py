"""The soak, CI-sized: the local pipeline over 150 feed items with ~5 % injected faults loses and duplicates nothing.

``benchmarks/soak.py`` is the harness (1,000 items by default, printed as a table); this test runs it on
150 items so it fits the CI budget, and asserts every invariant the table reports.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from reliability_table import Recorder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
ITEMS = 150


def _soak_module() -> ModuleType:
    """``benchmarks/soak.py`` (the repo root is not on the test path: benchmarks are not a package to install)."""
    name = "benchmarks_soak"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / "soak.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_soak_with_injected_faults_loses_nothing_and_duplicates_nothing(
    shared_model_dir: Path, tmp_path: Path, reliability: Recorder
) -> None:
    soak = _soak_module()
    reliability.case(
        "soak (local pipeline)",
        f"{ITEMS} feed items, 5 % of them with injected faults (permanent write refusals, throttles, "
        "failed first deliveries, invocation timeouts)",
        "analyzed + in DLQ == ingested; DLQ == exactly the permanent-fault items; 0 lost; 0 duplicated; "
        "the dashboard's counters equal the accounting",
    )
    # Given a generated feed and a fault plan over 5 % of its items
    # When the whole local pipeline runs over it
    result = soak.soak(ITEMS, fault_rate=0.05, seed=7, model_dir=shared_model_dir, work_dir=tmp_path)
    print(result.table())
    # Then every item is accounted for exactly once
    assert result.ingested == ITEMS
    assert result.analyzed + result.in_dlq == result.ingested
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.dlq_matches_permanent
    assert result.in_dlq == result.faults["permanent"] >= 1
    assert not result.drain_timed_out
    # And the dashboard's counters say exactly what the items say (the DLQ's items are still pending)
    assert result.dashboard == result.accounting
    assert result.dashboard["pending"] == result.in_dlq
    # And every kind of fault really happened
    assert all(result.injected.get(kind, 0) >= 1 for kind in soak.KINDS), result.injected
    assert result.failed_invocations >= result.faults["timeout"]
    assert result.ok
    reliability.observed(
        f"ingested {result.ingested}, analyzed {result.analyzed}, in DLQ {result.in_dlq}, lost {result.lost}, "
        f"duplicated {result.duplicated}; dashboard {result.dashboard}; "
        f"faults {result.faults}, injected {result.injected}; "
        f"{result.failed_invocations} killed invocations, {result.record_failures} record failures; "
        f"{result.seconds:.0f} s"
    )
