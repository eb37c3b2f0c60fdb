"""Micro-batches of one classifier call's texts under a token budget: each forward pass pads only to its own
longest text.

Texts are tokenised once, **sorted by length** and cut into micro-batches under a token budget, so
dynamic padding pads each batch only to its own longest text (random order wastes 70-80 % of the tokens
on padding). The client SDK's split of texts into invocations is another thing
(``sentiment_client.client.plan_invocations``: request bytes, not tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_TOKEN_BUDGET = 4096
"""Padded tokens per micro-batch: bounds the attention activations (batch x heads x len^2), so 32 texts
of 512 tokens run 8 at a time (peak RSS ~926 MB at int8, README "Performance"), while a batch of short
texts (SST-2: 25 tokens) goes through in one forward pass."""

DEFAULT_MICRO_BATCH_TEXTS = 64
"""Texts per micro-batch (forward pass) at most, however short they are."""

BATCH_OVERHEAD_TOKENS = 32
"""What one more padded forward pass (the transformers runtime's) costs, in padded tokens' worth of compute
(Python + dispatch + small GEMMs)."""

PACKED_BATCH_OVERHEAD_TOKENS = 1024
"""The same for the packed-token forward (:mod:`sentiment_analysis.distilbert`): its linear layers never
see padding (only attention does, ~5 % of the FLOPs), while a GEMM over 200 tokens runs ~15 % slower per
token than one over 800 on this CPU, so it should split a batch only when the budget forces it."""


def plan_micro_batches(
    lengths: Sequence[int], *, token_budget: int, max_batch: int, overhead_tokens: int = BATCH_OVERHEAD_TOKENS
) -> list[list[int]]:
    """Indices grouped into micro-batches of similar length, each ``len(batch) * longest <= token_budget``.

    Texts are sorted longest first and the sorted run is cut where it minimises the padded tokens
    plus ``overhead_tokens`` per batch (an exact dynamic programme, O(n x max_batch)), so a batch pads
    only to its own longest text and short texts never ride along in a long text's batch. A single
    text longer than the budget still gets a batch of its own.
    """
    if token_budget < 1 or max_batch < 1:
        raise ValueError("token_budget and max_batch must be positive")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    sorted_lengths = [lengths[i] for i in order]
    n = len(order)
    best = [0.0] + [math.inf] * n  # best[i]: cheapest way to batch the i longest texts
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end - 1, max(end - max_batch, 0) - 1, -1):
            size = end - start
            padded = size * sorted_lengths[start]  # the batch pads to its first (longest) text
            if size > 1 and padded > token_budget:
                break  # earlier starts only make the batch larger and longer
            cost = best[start] + padded + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    batches: list[list[int]] = []
    end = n
    while end > 0:
        batches.append(order[cut[end] : end])
        end = cut[end]
    batches.reverse()
    return batches
