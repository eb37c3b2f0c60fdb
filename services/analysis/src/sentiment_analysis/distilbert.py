"""DistilBERT sequence classification in plain torch, on packed (unpadded) tokens, without transformers.

Why not ``transformers``: importing its modelling stack costs 1.6-4 s of a cold start on a 2-core
machine, while DistilBERT's forward is ~60 lines of torch. This module reads the same files
(``config.json``, ``model.safetensors`` with Hugging Face's parameter names, or the publisher's compact
``model.compact.safetensors``, see :mod:`sentiment_shared.model_compact`) and a ``tokenizer.json`` via the
``tokenizers`` library. Anything it does not recognise (another architecture, an unknown activation,
a bundle without ``tokenizer.json``) is reported by :func:`supports` and
:func:`sentiment_analysis.runtime.load_runtime` falls back to ``transformers``, which loads the same
directory (compact weights are dequantised for it).

The linear layers are built at the precision chosen before any weight is read (:func:`linear_shapes`
is all the measurement needs): at int8, a compact bundle's int8 weights go straight into the int8
layers (``Int8Linear.from_int8_rows``, :mod:`sentiment_analysis.int8`), with no fp32 copy made
and quantised again.

Why packed tokens: every linear layer (90 % of the FLOPs) runs on the real tokens of all texts of a
micro-batch concatenated, ``(tokens, dim)``, so padding costs nothing there; only attention sees a
padded ``(batch, heads, longest, head_dim)`` view, through ``scaled_dot_product_attention`` with a key
mask. Q, K and V are one fused GEMM. Answers match ``transformers``' DistilBERT to ~1e-6.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from sentiment_analysis.int8 import frozen_linear, int8_linear_class
from sentiment_shared.model_compact import COMPACT_WEIGHTS_FILE, SCALE_SUFFIX, WEIGHTS_FILE, dequantised
from sentiment_shared.stack import ResolvedPrecision

PREFIX = "distilbert."
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": functional.gelu, "relu": functional.relu}
LAYER_NORM_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Config:
    """The part of a DistilBERT ``config.json`` the forward needs (``id2label`` for the classifier)."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    vocab_size: int
    max_position_embeddings: int
    activation: str
    id2label: dict[int, str]
    pad_token_id: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Config:
        id2label = {int(k): str(v) for k, v in (raw.get("id2label") or {0: "LABEL_0", 1: "LABEL_1"}).items()}
        return cls(
            dim=int(raw["dim"]),
            hidden_dim=int(raw["hidden_dim"]),
            n_layers=int(raw["n_layers"]),
            n_heads=int(raw["n_heads"]),
            vocab_size=int(raw["vocab_size"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            activation=str(raw.get("activation", "gelu")),
            id2label=id2label,
            pad_token_id=int(raw.get("pad_token_id") or 0),
        )

    @classmethod
    def from_dir(cls, model_dir: Path) -> Config:
        return cls.from_json(json.loads((model_dir / "config.json").read_text(encoding="utf-8")))


def linear_shapes(config: Config) -> dict[tuple[int, int], int]:
    """``(in_features, out_features)`` -> how many of :class:`DistilBertClassifier`'s linear layers have it, from
    the config alone (what :func:`~sentiment_analysis.precision.choose_precision` measures, before the weights
    are read; a test pins it to :func:`sentiment_analysis.precision.linear_shapes` of the built model)."""
    d, hidden = config.dim, config.hidden_dim
    per_block = [(d, 3 * d), (d, d), (d, hidden), (hidden, d)]  # fused Q/K/V, out_lin, lin1, lin2
    head = [(d, d), (d, len(config.id2label))]  # pre_classifier, classifier
    return dict(Counter(per_block * config.n_layers + head))


def supports(model_dir: Path) -> str | None:
    """None if this module can run ``model_dir``; else why not (the caller falls back to transformers)."""
    try:
        raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"config.json unreadable: {exc}"
    problems = []
    try:
        Config.from_json(raw)
    except KeyError as exc:
        problems.append(f"config.json lacks {exc}")
    except (TypeError, ValueError, AttributeError) as exc:
        problems.append(f"config.json unusable: {exc}")
    if raw.get("model_type") != "distilbert":
        problems.append(f"model_type {raw.get('model_type')!r} is not distilbert")
    if "DistilBertForSequenceClassification" not in (raw.get("architectures") or []):
        problems.append(f"architectures {raw.get('architectures')!r} lack DistilBertForSequenceClassification")
    if raw.get("activation", "gelu") not in _ACTIVATIONS:
        problems.append(f"activation {raw.get('activation')!r} is not supported")
    if not (model_dir / "tokenizer.json").is_file():
        problems.append("no tokenizer.json")
    if not ((model_dir / COMPACT_WEIGHTS_FILE).is_file() or (model_dir / WEIGHTS_FILE).is_file()):
        problems.append(f"neither {COMPACT_WEIGHTS_FILE} nor {WEIGHTS_FILE}")
    return "; ".join(problems) or None


def load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """Hugging Face-named tensors as stored: ``model.compact.safetensors``' (int8 rows with their ``::scale``,
    dequantised by :class:`DistilBertClassifier` where it runs them in fp32), else ``model.safetensors``' as fp32."""
    from safetensors.torch import load_file

    if (model_dir / COMPACT_WEIGHTS_FILE).is_file():
        return load_file(model_dir / COMPACT_WEIGHTS_FILE)
    return {name: t.float() for name, t in load_file(model_dir / WEIGHTS_FILE).items()}


class _Block(nn.Module):
    """One transformer layer's parameters (fused Q/K/V); the forward lives in :meth:`DistilBertClassifier.logits`."""

    def __init__(self, linears: Sequence[nn.Module], norms: Sequence[nn.LayerNorm]) -> None:
        super().__init__()
        self.qkv, self.out_lin, self.lin1, self.lin2 = linears
        self.sa_layer_norm, self.output_layer_norm = norms


class DistilBertClassifier(nn.Module):
    """``DistilBertForSequenceClassification``'s inference forward on token-id lists (no padding in GEMMs).

    ``weights``: Hugging Face-named tensors, fp32 or as a compact bundle stores them (:func:`load_weights`);
    ``precision``: what the linear layers run as (``int8``: ``Int8Linear``; a compact bundle's int8 weights are
    taken as they are, everything else is quantised as :func:`~sentiment_analysis.int8.quantize_int8` does).
    """

    def __init__(
        self, config: Config, weights: Mapping[str, torch.Tensor], *, precision: ResolvedPrecision = "fp32"
    ) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        if d % config.n_heads:
            raise ValueError(f"dim {d} is not a multiple of n_heads {config.n_heads}")
        self.head_dim = d // config.n_heads

        int8_linear: Any = int8_linear_class()

        def stored(name: str) -> torch.Tensor:
            try:
                return weights[name]
            except KeyError:
                raise ValueError(f"weights lack {name}") from None

        def take(name: str) -> torch.Tensor:
            """fp32 (compact int8 rows dequantised)."""
            tensor, scale = stored(name), weights.get(name + SCALE_SUFFIX)
            return (tensor.float() if scale is None else dequantised(tensor, scale)).contiguous()

        def fused(tensors: list[torch.Tensor]) -> torch.Tensor:
            # One part: the loaded tensor itself (no copy: peak RSS); Q/K/V: one fused copy.
            return tensors[0] if len(tensors) == 1 else torch.cat(tensors)

        def linear(prefix: str, *parts: str) -> nn.Module:
            names = [f"{prefix}{p}.weight" for p in parts]
            bias = fused([take(f"{prefix}{p}.bias") for p in parts])
            if precision == "int8" and all(name + SCALE_SUFFIX in weights for name in names):
                rows, scales = fused([stored(n) for n in names]), fused([stored(n + SCALE_SUFFIX) for n in names])
                direct: nn.Module = int8_linear.from_int8_rows(rows, scales, bias)
                return direct
            layer = frozen_linear(fused([take(name) for name in names]), bias)
            return int8_linear.from_linear(layer) if precision == "int8" else layer

        def norm(prefix: str) -> nn.LayerNorm:
            layer = nn.LayerNorm(d, eps=LAYER_NORM_EPS, device="meta")
            layer.weight = nn.Parameter(take(prefix + ".weight"), requires_grad=False)
            layer.bias = nn.Parameter(take(prefix + ".bias"), requires_grad=False)
            return layer

        emb = PREFIX + "embeddings."
        self.word_embeddings = nn.Parameter(take(emb + "word_embeddings.weight"), requires_grad=False)
        self.position_embeddings = nn.Parameter(take(emb + "position_embeddings.weight"), requires_grad=False)
        self.embeddings_norm = norm(emb + "LayerNorm")
        self.layers: list[_Block] = nn.ModuleList()  # type: ignore[assignment]
        for i in range(config.n_layers):
            p = f"{PREFIX}transformer.layer.{i}."
            attention, ffn = p + "attention.", p + "ffn."
            linears = [linear(attention, "q_lin", "k_lin", "v_lin"), linear(attention, "out_lin")]
            linears += [linear(ffn, "lin1"), linear(ffn, "lin2")]
            self.layers.append(_Block(linears, [norm(p + "sa_layer_norm"), norm(p + "output_layer_norm")]))
        self.pre_classifier = linear("", "pre_classifier")
        self.classifier = linear("", "classifier")
        self.act: Callable[[torch.Tensor], torch.Tensor] = _ACTIVATIONS[config.activation]
        self.eval()

    @classmethod
    def from_dir(cls, model_dir: Path) -> DistilBertClassifier:
        """The fp32 model of a bundle directory (the runtime's load chooses the precision first: ``load_runtime``)."""
        return cls(Config.from_dir(model_dir), load_weights(model_dir))

    def logits(self, batch: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(len(batch), labels)`` logits for token-id lists (each already truncated, specials included)."""
        lengths = [len(ids) for ids in batch]
        n, width, d = len(batch), max(lengths), self.config.dim
        ids = torch.tensor([t for seq in batch for t in seq], dtype=torch.long)
        positions = torch.cat([torch.arange(length) for length in lengths])
        # where each packed token sits in the padded (n * width) view, and the key mask of that view
        lengths_t = torch.tensor(lengths)
        valid = torch.arange(width).unsqueeze(0) < lengths_t.unsqueeze(1)  # (n, width)
        flat = valid.reshape(-1).nonzero().squeeze(1)
        mask = valid[:, None, None, :]  # (n, 1, 1, width): keys only; padded queries are dropped
        starts = torch.cumsum(lengths_t, 0) - lengths_t  # each text's first ([CLS]) token

        x = functional.embedding(ids, self.word_embeddings) + functional.embedding(positions, self.position_embeddings)
        x = self.embeddings_norm(x)
        heads, hd = self.config.n_heads, self.head_dim
        for block in self.layers:
            qkv = block.qkv(x)  # (tokens, 3d)
            if len(flat) == n * width:  # no padding at all: a free view
                padded = qkv.view(n, width, 3, heads, hd)
            else:
                padded = qkv.new_zeros(n * width, 3 * d)
                padded.index_copy_(0, flat, qkv)
                padded = padded.view(n, width, 3, heads, hd)
            q, k, v = padded.permute(2, 0, 3, 1, 4).unbind(0)  # each (n, heads, width, hd)
            attn = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            attn = attn.transpose(1, 2).reshape(n * width, d)
            if len(flat) != n * width:
                attn = attn.index_select(0, flat)
            x = block.sa_layer_norm(block.out_lin(attn) + x)
            x = block.output_layer_norm(block.lin2(self.act(block.lin1(x))) + x)
        pooled = functional.relu(self.pre_classifier(x.index_select(0, starts)))
        logits: torch.Tensor = self.classifier(pooled)
        return logits


class FastTokenizer:
    """The ``tokenizers`` library's tokenizer behind the small interface the classifier uses."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        settings: dict[str, Any] = {}
        path = model_dir / "tokenizer_config.json"
        if path.is_file():
            settings = json.loads(path.read_text(encoding="utf-8"))
        limit = settings.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, int | float) and math.isfinite(limit) else 10**30
        pad = settings.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        pad_id = self._tokenizer.token_to_id(pad) if isinstance(pad, str) else None
        self.pad_token_id = 0 if pad_id is None else int(pad_id)
        self._truncation: int | None = None

    def __call__(
        self, texts: Sequence[str], *, truncation: bool = True, max_length: int | None = None, padding: bool = False
    ) -> dict[str, list[list[int]]]:
        if padding:
            raise ValueError("FastTokenizer does not pad: the classifier packs tokens instead")
        limit = min(max_length or self.model_max_length, self.model_max_length) if truncation else None
        if limit != self._truncation:
            if limit is None:
                self._tokenizer.no_truncation()
            else:
                self._tokenizer.enable_truncation(limit)
            self._truncation = limit
        return {"input_ids": [e.ids for e in self._tokenizer.encode_batch(list(texts))]}
