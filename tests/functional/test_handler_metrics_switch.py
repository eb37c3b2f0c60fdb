"""POWERTOOLS_METRICS_DISABLED silences every EMF blob of both handlers, the cold-start one included.

Powertools' ``single_metric`` (which writes the ColdStart blob) prints whether or not metrics are disabled;
``sentiment-local run`` disables metrics and printed that blob anyway."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("module", ["sentiment_analysis.handler", "sentiment_ingestion.handler"])
@pytest.mark.parametrize("disabled", [True, False])
def test_a_cold_start_prints_emf_only_when_metrics_are_enabled(
    module: str,
    disabled: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lambda_context: Any,
) -> None:
    # Given a new container (a fresh handler) with metrics switched off or on
    import importlib

    from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

    reset_cold_start_flag()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true" if disabled else "false")
    handler = importlib.import_module(module).build_handler()
    # When it answers its first (cold) invoke, here a rejected direct request that touches no adapter
    response = handler({"texts": 5} if "analysis" in module else {"items": 5}, lambda_context)
    assert response["statusCode"] == 400
    # Then an EMF blob reaches stdout only when metrics are on
    emf = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert (emf == []) is disabled, emf
