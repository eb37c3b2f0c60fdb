"""The one jittered backoff (``sentiment_shared.aws.backoff_delay``) both hand-rolled retry loops use."""

from __future__ import annotations

import random

import pytest

from sentiment_shared.aws import backoff_delay

pytestmark = pytest.mark.unit


def test_the_ceiling_doubles_per_retry_up_to_the_cap_and_every_delay_is_jittered_below_it() -> None:
    # Given a seeded generator and the SNS entries' settings (0.1 s, capped at 2 s)
    rng = random.Random(7)
    # When each retry's delay is drawn many times
    drawn = {retry: [backoff_delay(retry, base_s=0.1, cap_s=2.0, rng=rng) for _ in range(400)] for retry in range(1, 8)}
    # Then every delay lies in [0, min(cap, base * 2^(retry-1))] and spreads over that range (full jitter)
    for retry, delays in drawn.items():
        ceiling = min(2.0, 0.1 * 2 ** (retry - 1))
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.9 * ceiling
        assert min(delays) < 0.1 * ceiling


def test_a_seeded_generator_gives_the_same_delays() -> None:
    first = [backoff_delay(3, base_s=0.02, cap_s=1.0, rng=random.Random(1)) for _ in range(3)]
    assert first == [backoff_delay(3, base_s=0.02, cap_s=1.0, rng=random.Random(1)) for _ in range(3)]
