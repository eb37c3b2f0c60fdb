"""POWERTOOLS_METRICS_DISABLED silences every EMF blob of both handlers, the cold-start one included.

Powertools' ``single_metric`` (which writes the ColdStart blob) prints whether or not metrics are disabled, and
a disabled flush keeps the metric set, printed once a metric holds 100 values (and carried into the next
test's assertions: an ordering dependence of the handler tests). ``sentiment-local run`` disables metrics."""

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


@pytest.mark.parametrize("module", ["sentiment_analysis.handler", "sentiment_ingestion.handler"])
def test_with_metrics_disabled_a_long_lived_container_prints_no_emf_and_keeps_no_metrics(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lambda_context: Any
) -> None:
    # Given metrics switched off, as sentiment-local and the soak run the handlers
    import importlib

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    handler_module = importlib.import_module(module)
    handler = handler_module.build_handler()
    # When one container answers more invokes than Powertools keeps values of one metric (100)
    for _ in range(120):
        assert handler({"texts": 5} if "analysis" in module else {"items": 5}, lambda_context)["statusCode"] == 400
    # Then nothing reaches stdout, and no metric piles up for a later invocation to carry
    emf = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf == []
    assert handler_module.metrics.metric_set == {}


def test_with_metrics_disabled_an_invocation_that_raises_before_any_metric_is_not_a_warning(
    monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    # Given metrics switched off and a handler that dies before it adds a metric (the crash fault test's case)
    from sentiment_ingestion.handler import metrics
    from sentiment_shared.lambda_metrics import log_metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    @log_metrics(metrics)
    def dies(event: Any, context: Any) -> Any:
        raise RuntimeError("crash")

    # When it is invoked, then only its own error comes out (pytest turns a Powertools warning into an error)
    with pytest.raises(RuntimeError, match="crash"):
        dies({}, lambda_context)
