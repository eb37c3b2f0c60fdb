"""The two runtimes a model directory can run on, behind one interface: token-id lists in, logits out.

* :class:`PackedDistilBert`: this package's own DistilBERT forward (:mod:`sentiment_analysis.distilbert`:
  torch + ``tokenizers``, packed tokens, no transformers import), for a DistilBERT classifier with a
  ``tokenizer.json``;
* :class:`TransformersRuntime`: transformers' ``AutoModelForSequenceClassification`` on padded batches,
  for anything else (the reference, and the fallback).

:func:`load_runtime` picks one for a directory and loads it at the precision resolved for it; the classifier
sees only :class:`SequenceClassifierRuntime`.
Nothing here imports torch at module import: a cold start pays for it once, where it is measured.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from sentiment_analysis.batching import BATCH_OVERHEAD_TOKENS, PACKED_BATCH_OVERHEAD_TOKENS
from sentiment_analysis.int8 import quantize_int8
from sentiment_analysis.precision import PrecisionChoice, choose_precision, linear_shapes
from sentiment_shared.stack import Precision

if TYPE_CHECKING:
    import torch

    from sentiment_analysis.distilbert import DistilBertClassifier

log = logging.getLogger(__name__)

RuntimeName = Literal["auto", "transformers"]
"""``auto``: the own forward where it can run the directory, else transformers; ``transformers``: always it."""
RUNTIME_NAMES: tuple[RuntimeName, ...] = get_args(RuntimeName)


class SequenceClassifierRuntime(Protocol):
    """A loaded sequence-classification model, as the classifier runs it."""

    @property
    def model(self) -> torch.nn.Module:
        """The torch module whose linear layers a precision change converts (int8 <-> fp32, in place)."""
        ...

    @property
    def id2label(self) -> Mapping[int, str]:
        """The model's label of each class index (its config's ``id2label``)."""
        ...

    @property
    def max_positions(self) -> int:
        """Tokens the position embeddings allow per text (0: the config does not say)."""
        ...

    @property
    def batch_overhead_tokens(self) -> int:
        """What one more forward pass costs here, in padded tokens (micro-batch planning's ``overhead_tokens``)."""
        ...

    def logits(self, batch: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(len(batch), labels)`` logits for token-id lists (each already truncated, specials included)."""
        ...


class PackedDistilBert:
    """The own DistilBERT forward: every text's real tokens concatenated, so no GEMM sees padding."""

    batch_overhead_tokens = PACKED_BATCH_OVERHEAD_TOKENS

    def __init__(self, model: DistilBertClassifier) -> None:
        self.model = model
        self.id2label = model.config.id2label
        self.max_positions = model.config.max_position_embeddings

    def logits(self, batch: Sequence[Sequence[int]]) -> torch.Tensor:
        return self.model.logits(batch)


class TransformersRuntime:
    """A transformers sequence-classification model, fed padded ``input_ids`` and an ``attention_mask``."""

    batch_overhead_tokens = BATCH_OVERHEAD_TOKENS

    def __init__(self, model: Any, *, pad_token_id: int) -> None:
        self.model = model
        self.id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.pad_token_id = pad_token_id

    def logits(self, batch: Sequence[Sequence[int]]) -> torch.Tensor:
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        logits: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits


def import_runtime() -> None:
    """Import torch and what :func:`load_runtime` uses for a DistilBERT bundle.

    The cold start calls this on a thread while the model bundle downloads, so the ~2 s of imports
    overlap the network wait instead of following it. transformers is not among them: it is imported
    only for a bundle the own forward cannot run (then :func:`load_runtime` pays for it).
    """
    import safetensors.torch  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401

    import sentiment_analysis.distilbert  # noqa: F401


def load_runtime(
    path: Path, runtime: RuntimeName, precision: Precision
) -> tuple[SequenceClassifierRuntime, Any, PrecisionChoice]:
    """The runtime and tokenizer for the model directory ``path`` (see :data:`RuntimeName`), its linear layers at
    ``precision`` as :func:`~sentiment_analysis.precision.choose_precision` resolves it (the choice is returned).

    The own forward resolves it from the config's layer shapes before any weight is read and builds its layers
    at it (a compact bundle's int8 weights go straight into int8 layers); transformers' model is loaded in fp32
    first, then measured and quantised.
    """
    from sentiment_analysis import distilbert

    reason = distilbert.supports(path) if runtime == "auto" else "runtime='transformers' asked for"
    if reason is None:
        config = distilbert.Config.from_dir(path)
        choice = choose_precision(precision, distilbert.linear_shapes(config))
        model = distilbert.DistilBertClassifier(config, distilbert.load_weights(path), precision=choice.precision)
        return PackedDistilBert(model), distilbert.FastTokenizer(path), choice
    log.info("Loading the model with transformers", extra={"model_dir": str(path), "reason": reason})
    hf_model, tokenizer = _load_with_transformers(path)
    choice = choose_precision(precision, linear_shapes(hf_model))
    if choice.precision == "int8":
        quantize_int8(hf_model)
    return TransformersRuntime(hf_model, pad_token_id=int(tokenizer.pad_token_id or 0)), tokenizer, choice


def _load_with_transformers(path: Path) -> tuple[Any, Any]:
    """transformers' model and tokenizer for ``path``; compact (int8 weight-only) bundles are dequantised."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from sentiment_shared.model_compact import COMPACT_WEIGHTS_FILE, to_hf_state_dict

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a progress bar per cold start is noise in CloudWatch
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if (path / COMPACT_WEIGHTS_FILE).is_file():
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
        model.load_state_dict(to_hf_state_dict(path), strict=False)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    model.eval()
    return model, tokenizer
