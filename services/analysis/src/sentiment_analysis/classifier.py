"""Batched sentiment classification with a Hugging Face sequence-classification model on CPU.

This is the analysis service's core: no AWS, Lambda or Powertools imports. ``torch`` (and, for a model the
own forward cannot run, ``transformers``) is imported inside :meth:`SentimentClassifier.from_pretrained`,
so importing this module is cheap and a cold start pays for them once, where it is measured.

Why it is faster than one ``pipeline()`` call per text (numbers in the README's Performance section), and
where each part lives:

* texts are tokenised once, sorted by length and cut into micro-batches under a token budget
  (:mod:`sentiment_analysis.batching`), so each forward pass pads only to its own longest text;
* a DistilBERT bundle runs on the own packed-token forward, anything else on transformers, behind one
  interface (:mod:`sentiment_analysis.runtime`);
* inference runs under ``torch.inference_mode`` with the thread count sized from the CPU quota the
  process really has (:mod:`sentiment_analysis.cpu`), never ``os.cpu_count()``;
* ``precision="auto"`` (the default) takes int8 (:mod:`sentiment_analysis.int8`) only where it is measured
  faster than fp32 on the CPU it runs on (:mod:`sentiment_analysis.precision`).

Labels map to sentiments by their wording (:mod:`sentiment_analysis.labels`). Empty or whitespace-only
text is not sent to the model: it gets ``Prediction(sentiment="neutral", score=0.0, label="")``
(:data:`~sentiment_analysis.labels.EMPTY_TEXT_PREDICTION`), i.e. "nothing to classify", never an exception.
A text is called ``neutral`` when the top label's probability is below ``neutral_threshold``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sentiment_analysis.batching import DEFAULT_MICRO_BATCH_TEXTS, DEFAULT_TOKEN_BUDGET, plan_micro_batches
from sentiment_analysis.cpu import available_cpus
from sentiment_analysis.int8 import dequantize_int8, quantize_int8
from sentiment_analysis.labels import EMPTY_TEXT_PREDICTION, Prediction, label_sentiments
from sentiment_analysis.precision import (
    DEFAULT_PRECISION,
    PrecisionChoice,
    checked_precision,
    choose_precision_again,
    linear_shapes,
    measure_int8_speedup,
)
from sentiment_analysis.runtime import RUNTIME_NAMES, RuntimeName, SequenceClassifierRuntime, load_runtime
from sentiment_shared.schemas import Sentiment
from sentiment_shared.stack import DEFAULT_NEUTRAL_THRESHOLD, Precision, ResolvedPrecision


class SentimentClassifier:
    """A loaded runtime + tokenizer that classifies many texts in few, tightly padded forward passes."""

    def __init__(
        self,
        runtime: SequenceClassifierRuntime,
        tokenizer: Any,
        *,
        neutral_threshold: float = DEFAULT_NEUTRAL_THRESHOLD,
        precision: ResolvedPrecision = "fp32",
        max_length: int,
        label_map: Mapping[str, Sentiment] | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MICRO_BATCH_TEXTS,
    ) -> None:
        if not 0.0 <= neutral_threshold <= 1.0:
            raise ValueError(f"neutral_threshold must be within 0..1, got {neutral_threshold}")
        self.runtime = runtime
        self.tokenizer = tokenizer
        self.neutral_threshold = neutral_threshold
        self.precision: ResolvedPrecision = precision
        """What the model's linear layers run as (``auto`` already resolved)."""
        self.precision_choice: PrecisionChoice | None = None
        self.threads: int | None = None
        """Intra-op threads asked for at load (None: sized from the CPUs available)."""
        self.max_length = max_length
        self.token_budget = token_budget
        self.max_batch = max_batch
        id2label = runtime.id2label
        self.labels = [id2label[i] for i in range(len(id2label))]
        self.sentiments = label_sentiments(id2label, label_map)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike[str],
        *,
        neutral_threshold: float = DEFAULT_NEUTRAL_THRESHOLD,
        precision: Precision = DEFAULT_PRECISION,
        threads: int | None = None,
        label_map: Mapping[str, Sentiment] | None = None,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        max_batch: int = DEFAULT_MICRO_BATCH_TEXTS,
        runtime: RuntimeName = "auto",
    ) -> SentimentClassifier:
        """Load a local Hugging Face model directory (config, tokenizer, safetensors) for CPU inference.

        ``runtime``: ``auto`` runs a DistilBERT classifier with ``tokenizer.json`` on this package's own
        packed-token forward (:mod:`sentiment_analysis.distilbert`, no transformers import) and anything
        else with transformers; ``transformers`` forces the latter (the reference, and the fallback); see
        :mod:`sentiment_analysis.runtime`.
        ``threads``: intra-op threads; None derives them from :func:`~sentiment_analysis.cpu.available_cpus`.
        ``precision``: ``fp32``, ``int8``, or ``auto`` (int8 only where measured faster here, see
        :func:`~sentiment_analysis.precision.choose_precision`); the result is in ``.precision`` and
        ``.precision_choice``.
        """
        requested = checked_precision(precision)
        if runtime not in RUNTIME_NAMES:
            raise ValueError(f"runtime must be 'auto' or 'transformers', got {runtime!r}")
        import torch

        torch.set_num_threads(threads or available_cpus())
        loaded, tokenizer, choice = load_runtime(Path(model_dir), runtime, requested)
        # Truncate at what both the position embeddings and the tokenizer allow (tokenizers without a
        # limit report a huge sentinel).
        limits = [loaded.max_positions, int(tokenizer.model_max_length)]
        max_length = min((x for x in limits if 0 < x < 1_000_000), default=512)
        classifier = cls(
            loaded,
            tokenizer,
            neutral_threshold=neutral_threshold,
            precision=choice.precision,
            max_length=max_length,
            label_map=label_map,
            token_budget=token_budget,
            max_batch=max_batch,
        )
        classifier.precision_choice = choice
        classifier.threads = threads
        return classifier

    def remeasure_precision(
        self, *, measure: Callable[[Mapping[tuple[int, int], int]], float] = measure_int8_speedup
    ) -> PrecisionChoice:
        """Resolve the requested precision again on the CPU this process runs on NOW, and switch to it.

        For a SnapStart restore: the snapshot's ``auto`` choice was measured on the host that ran INIT, and
        the restored copy may run on a CPU with (or without) fast int8. Also re-sizes the thread pool to the
        CPUs available now. ``fp32`` / ``int8`` asked for explicitly stay as they are (no measurement).
        Switching is a weight conversion (int8 <-> fp32 per output channel; 0.05-0.3 s), not a reload, and
        happens only when the measurement is clearly on the other side
        (:func:`~sentiment_analysis.precision.choose_precision_again`).
        """
        import torch

        torch.set_num_threads(self.threads or available_cpus())
        requested = self.precision_choice.requested if self.precision_choice else self.precision
        shapes = linear_shapes(self.runtime.model)
        choice = choose_precision_again(self.precision, requested, shapes, measure=measure)
        self.set_precision(choice.precision)
        self.precision_choice = choice
        return choice

    def set_precision(self, precision: ResolvedPrecision) -> None:
        """Run the linear layers as ``precision`` from now on (quantise or dequantise them in place)."""
        if precision == self.precision:
            return
        if precision == "int8":
            quantize_int8(self.runtime.model)
        else:
            dequantize_int8(self.runtime.model)
        self.precision = precision

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order; all texts go through as few forward passes as fit."""
        import torch

        results = [EMPTY_TEXT_PREDICTION] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if todo:
            encoded: list[list[int]] = self.tokenizer(
                [texts[i] for i in todo], truncation=True, max_length=self.max_length, padding=False
            )["input_ids"]
            lengths = [len(ids) for ids in encoded]
            plan = plan_micro_batches(
                lengths,
                token_budget=self.token_budget,
                max_batch=self.max_batch,
                overhead_tokens=self.runtime.batch_overhead_tokens,
            )
            with torch.inference_mode():
                for batch in plan:
                    logits = self.runtime.logits([encoded[j] for j in batch])
                    top_p, top_i = torch.softmax(logits.float(), dim=-1).max(dim=-1)
                    for j, p, k in zip(batch, top_p.tolist(), top_i.tolist(), strict=True):
                        results[todo[j]] = self._prediction(float(p), int(k))
        return results

    def _prediction(self, probability: float, index: int) -> Prediction:
        probability = min(max(probability, 0.0), 1.0)
        sentiment = self.sentiments[index] if probability >= self.neutral_threshold else "neutral"
        return Prediction(sentiment=sentiment, score=probability, label=self.labels[index])
