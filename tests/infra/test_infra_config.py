"""Stack configuration: defaults from the shared source of truth, and a clear error for every bad value."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest
from infra_mocks import PROJECT, REPO_ROOT, STACKS, run_program, stack_config

from sentiment_infra.config import KEYS, RESERVATION_RULE, ConfigError, StackConfig, parse_stack_config
from sentiment_shared import stack as shared

pytestmark = pytest.mark.infra


def test_an_empty_config_takes_the_shared_defaults() -> None:
    # Given no project config at all
    config = parse_stack_config({})
    # Then every default comes from sentiment_shared.stack, the source the local pipeline uses too
    assert (config.model_source_id, config.model_source_revision) == (
        shared.DEFAULT_MODEL_ID,
        shared.DEFAULT_MODEL_REVISION,
    )
    assert (config.model_prefix, config.model_version) == (shared.DEFAULT_MODEL_PREFIX, shared.DEFAULT_MODEL_VERSION)
    assert config.neutral_threshold == shared.DEFAULT_NEUTRAL_THRESHOLD
    assert config.analysis_memory_mb == shared.DEFAULT_ANALYSIS_FUNCTION.memory_mb == 2048
    assert config.analysis_ephemeral_storage_mb == shared.DEFAULT_ANALYSIS_FUNCTION.ephemeral_storage_mb == 512
    assert config.analysis_timeout_s == shared.DEFAULT_ANALYSIS_FUNCTION.timeout_s
    assert config.batch_size == shared.DEFAULT_QUEUE.batch_size
    assert config.batching_window_s == shared.DEFAULT_QUEUE.batching_window_s
    assert config.max_receive_count == shared.DEFAULT_QUEUE.max_receive_count
    assert config.analysis_maximum_concurrency == shared.DEFAULT_QUEUE.maximum_concurrency
    assert config.queue_visibility_timeout_s == shared.DEFAULT_QUEUE.visibility_timeout_s(config.analysis_timeout_s)
    assert config.deletion_protection is True  # safe unless a stack opts out


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_configs_are_valid_and_use_only_known_keys(stack: str) -> None:
    values = stack_config(stack)
    own = {k.removeprefix(f"{PROJECT}:"): v for k, v in values.items() if k.startswith(f"{PROJECT}:")}
    assert set(own) <= set(KEYS)
    assert isinstance(parse_stack_config(own), StackConfig)


def test_string_values_from_pulumi_are_coerced() -> None:
    # Pulumi hands every value over as a string (structured values as JSON)
    config = parse_stack_config(
        {
            "analysisMemoryMb": "3008",
            "tracing": "false",
            "neutralThreshold": "0.6",
            "feeds": '["https://example.com/a.xml", "https://example.com/b.xml"]',
        }
    )
    assert config.analysis_memory_mb == 3008
    assert config.tracing is False
    assert config.neutral_threshold == 0.6
    assert config.feeds == ("https://example.com/a.xml", "https://example.com/b.xml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"analysisMemoryMb": "512"}, "analysisMemoryMb"),
        ({"analysisTimeoutS": "901"}, "analysisTimeoutS"),
        ({"analysisEphemeralStorageMb": "20000"}, "analysisEphemeralStorageMb"),
        ({"neutralThreshold": "1.5"}, "neutralThreshold"),
        ({"modelId": "someone/model"}, "modelRevision (a 40-hex commit) must pin"),
        ({"modelId": "someone/model", "modelRevision": "main"}, "modelRevision"),
        ({"modelDir": "/models/x", "modelId": "someone/model"}, "either modelDir or modelId"),
        ({"modelVersion": "../v1"}, "modelVersion"),
        ({"queueRetentionS": "1209600", "dlqRetentionS": "1209600"}, "must exceed queueRetentionS"),
        ({"batchSize": "50", "batchingWindowS": "0"}, "batchingWindowS >= 1"),
        ({"analysisReservedConcurrency": "2", "analysisMaximumConcurrency": "5"}, "throttles"),
        ({"feeds": '["ftp://example.com/feed"]'}, "http(s)"),
        ({"feeds": "not json"}, "list of feed URLs"),
        ({"ingestionSchedule": "every 5 minutes"}, "not an EventBridge schedule"),
        ({"ingestionSchedule": "rate(1 minutes)"}, "not an EventBridge schedule"),
        ({"alarmEmail": "nobody"}, "not an e-mail address"),
        ({"logRetentionDays": "10"}, "CloudWatch Logs accepts only"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"analysisMemoryMB": "2048"}, "analysisMemoryMB: Extra inputs are not permitted"),
    ],
)
def test_invalid_values_fail_with_a_message_naming_the_key(values: dict[str, Any], message: str) -> None:
    # When the config is validated
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(values)
    # Then the error is one readable message naming what is wrong
    text = str(caught.value)
    assert text.startswith("invalid stack configuration:")
    assert message in text
    assert "Traceback" not in text


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"analysisMemoryMb": "1", "logLevel": "LOUD"})
    assert "analysisMemoryMb" in str(caught.value)
    assert "logLevel" in str(caught.value)


@pytest.mark.parametrize("stack", STACKS)
def test_preview_of_a_stack_with_bad_config_stops_before_creating_anything(stack: str) -> None:
    # Given a committed stack config with a typo'd value
    config = stack_config(stack) | {f"{PROJECT}:analysisTimeoutS": "ninety"}
    # When the program runs as in `pulumi preview`
    with pytest.raises(ConfigError, match="analysisTimeoutS"):
        run_program(stack, config, preview=True)


def test_every_key_is_documented_in_the_deploy_guide() -> None:
    guide = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", guide, flags=re.MULTILINE))
    assert set(KEYS) <= documented, sorted(set(KEYS) - documented)
    assert documented - set(KEYS) == set()


SECRET_LOOKING = re.compile(
    r"(AKIA|ASIA)[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|pul-[0-9a-f]{20,}|-----BEGIN|(password|secret|token)\s*:",
    re.IGNORECASE,
)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_config_files_hold_no_secret(stack: str) -> None:
    # Credentials come from the environment (or `pulumi config set --secret`, stored encrypted as `secure:`)
    text = (REPO_ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert SECRET_LOOKING.search(text) is None
    assert "secure:" not in text  # and none is needed: the program reads no secret config


def test_reservations_are_unset_by_default_and_a_configured_one_is_explained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the defaults, no function reserves concurrency
    assert parse_stack_config({}).reserved_concurrency == {}

    # When a stack asks for reservations, Then the preview warns why Lambda may refuse them (the program
    # cannot read the account's quota) and how to check
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_args, **_kwargs: warnings.append(message))
    run_program("dev", {**stack_config("dev"), f"{PROJECT}:dashboardReservedConcurrency": "5"})
    (warning,) = [w for w in warnings if "dashboardReservedConcurrency 5" in w]
    assert "fewer than 100" in warning
    assert "aws lambda get-account-settings" in warning
    assert RESERVATION_RULE in warning
