"""Offline lexicon fallback of the backend client: VADER, from the ``fallback`` extra of sentiment-client.

``vaderSentiment`` ships its lexicon in the wheel, needs no network and classifies a short text in
tens of microseconds; it is far less accurate than the model, which is why the client uses it only
when the function stays unavailable and marks every such result ``source="fallback"``. It is imported
when a :class:`VaderFallback` is constructed, never by the services (which don't install the extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentiment_client.client import ClientResult
from sentiment_shared.schemas import Sentiment

VADER_POSITIVE_THRESHOLD = 0.05
"""VADER's documented cut-offs: compound ≥ 0.05 is positive, ≤ -0.05 negative, neutral in between."""
VADER_NEGATIVE_THRESHOLD = -0.05


def sentiment_from_compound(compound: float) -> tuple[Sentiment, float]:
    """VADER's compound score (-1..1) → (sentiment, score in 0..1).

    The score is ``|compound|`` (VADER's normalized intensity) for positive and negative, and
    ``1 - |compound|`` for neutral (how close to no sentiment at all). It is not a probability.
    """
    if compound >= VADER_POSITIVE_THRESHOLD:
        return "positive", min(compound, 1.0)
    if compound <= VADER_NEGATIVE_THRESHOLD:
        return "negative", min(-compound, 1.0)
    return "neutral", 1.0 - abs(compound)


class VaderFallback:
    """:class:`sentiment_client.client.Fallback` backed by ``vaderSentiment``'s ``SentimentIntensityAnalyzer``.

    Constructing it imports the package and loads the lexicon (~10 ms), so a missing extra fails when
    the client is configured rather than in the middle of an outage.
    """

    name = "vader"

    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # optional extra: lazy
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "the VADER fallback needs the optional extra: install 'sentiment-client[fallback]'"
            ) from exc
        self._analyzer: Any = SentimentIntensityAnalyzer()

    def classify(self, texts: Sequence[str]) -> list[ClientResult]:
        results: list[ClientResult] = []
        for text in texts:
            compound = float(self._analyzer.polarity_scores(text)["compound"])
            sentiment, score = sentiment_from_compound(compound)
            results.append(ClientResult(sentiment, score, f"VADER_{sentiment.upper()}", source="fallback"))
        return results
