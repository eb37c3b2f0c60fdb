"""A classifier's answer for one text, and the sentiment each of a model's labels stands for.

Labels come from the model's ``config.id2label``; each is mapped to ``positive`` / ``negative`` /
``neutral`` by its wording (``POSITIVE``, ``pos``, ``Negative`` ...), so no per-model strings are
hard-coded. A model whose labels say nothing (``LABEL_0``) needs an explicit ``label_map``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_shared.schemas import Sentiment


@dataclass(frozen=True, slots=True)
class Prediction:
    """One text's answer; ``score`` is the probability of the model's top label ``label``."""

    sentiment: Sentiment
    score: float
    label: str


EMPTY_TEXT_PREDICTION = Prediction(sentiment="neutral", score=0.0, label="")
"""The documented answer for empty or whitespace-only text: nothing to classify."""

_WORD = re.compile(r"[a-z]+")
_LABEL_WORDS: dict[str, Sentiment] = {
    "positive": "positive",
    "pos": "positive",
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}


def sentiment_of_label(label: str) -> Sentiment | None:
    """``positive`` / ``negative`` / ``neutral`` from a label's wording, or None when it says nothing."""
    found = {_LABEL_WORDS[w] for w in _WORD.findall(label.lower()) if w in _LABEL_WORDS}
    return found.pop() if len(found) == 1 else None


def label_sentiments(id2label: Mapping[int, str], label_map: Mapping[str, Sentiment] | None = None) -> list[Sentiment]:
    """The sentiment of each class index, from ``label_map`` or else from each label's wording."""
    if not id2label:
        raise ValueError("the model config has no id2label")
    n = len(id2label)
    if sorted(id2label) != list(range(n)):
        raise ValueError(f"id2label keys must be 0..{n - 1}, got {sorted(id2label)}")
    sentiments: list[Sentiment] = []
    for index in range(n):
        label = id2label[index]
        sentiment = label_map[label] if label_map and label in label_map else sentiment_of_label(label)
        if sentiment is None:
            raise ValueError(
                f"cannot tell the sentiment of label {label!r} (id2label={dict(id2label)}); pass label_map"
            )
        sentiments.append(sentiment)
    if "positive" not in sentiments or "negative" not in sentiments:
        raise ValueError(f"the model needs a positive and a negative label, got {dict(id2label)}")
    return sentiments
