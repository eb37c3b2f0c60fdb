"""Compact model weights, made once at publish time instead of paid on every cold start.

:func:`compact_model_dir` turns a Hugging Face model directory whose weights are one
``model.safetensors`` into a directory holding the same config and tokenizer files plus
``model.compact.safetensors``: every large 2-D float tensor (linear weights, embeddings) as int8 rows
with one fp32 scale per row (``<name>::scale``; per output channel for a linear layer, per token for
an embedding), everything else (biases, LayerNorms, small heads) as fp32. A full-size DistilBERT
goes from 268 MB to ~68 MB, which is what the cold start downloads, hashes and extracts. At fp32 the
runtime dequantises at load (``w = int8 * scale``, :func:`dequantised`), so this is weight-only
quantisation: on SST-2 dev the answers agree with the fp32 model's on >= 99.5 % of labels
(tests/functional). At int8 the rows become the runtime's int8 layers as they are (the same scheme).

Still loadable by plain ``transformers``: :func:`to_hf_state_dict` gives the fp32 state dict under
Hugging Face's names (``model.load_state_dict`` after ``from_config``), and ``sentiment-analysis``'s
classifier does exactly that when it cannot run a bundle itself. ``encoding="fp16"`` keeps every float
tensor as fp16 instead (134 MB for DistilBERT, lossless for inference in practice).

A directory that cannot be compacted (sharded weights, a weights file that is not safetensors, bf16
weights) is returned unchanged by :func:`compact_model_dir`: compaction is an optimisation, never a
reason to refuse a model. The output is a pure function of the input bytes (numpy rounding, safetensors'
sorted layout), so bundles stay reproducible. ``tokenizer.json`` is added when the source lacks one and
``transformers`` can write it (the runtime's ``tokenizers`` path needs it).
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
COMPACT_WEIGHTS_FILE = "model.compact.safetensors"
SCALE_SUFFIX = "::scale"
Encoding = Literal["int8", "fp16"]
ENCODINGS: tuple[Encoding, ...] = ("int8", "fp16")
MIN_QUANTISED_ELEMENTS = 4096
"""Smaller tensors (a classifier head) stay fp32: nothing to save, and they see every answer."""
INT8_QMAX = 127
"""Symmetric int8 range, here per row and in the analysis runtime's int8 layers (``sentiment_analysis.int8``:
weights per output channel, activations per token): one scheme, so compact weights convert exactly."""


def _safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file, or None if it is not one."""
    try:
        with path.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                return None
            (length,) = struct.unpack("<Q", raw_len)
            if not 2 <= length <= 100 * 1024 * 1024:
                return None
            header = json.loads(f.read(length))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def compactable(model_dir: Path) -> str | None:
    """None if :func:`compact_model_dir` can compact ``model_dir``; else why it will leave it as is."""
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as exc:  # declared by sentiment-shared[hub]: a bundle must not depend on the environment
        from sentiment_shared.model_bundle import BundleError

        raise BundleError(f"compacting model weights needs sentiment-shared[hub] ({exc.name} is missing)") from exc
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        return f"no single {WEIGHTS_FILE} (sharded or missing)"
    header = _safetensors_header(weights)
    if header is None:
        return f"{WEIGHTS_FILE} is not a safetensors file"
    dtypes = {v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    if not dtypes or not dtypes <= {"F32", "F16", "F64", "I64", "I32"}:
        return f"weights dtypes {sorted(map(str, dtypes))} are not all fp16/fp32"
    return None


def _quantise_rows(matrix: Any) -> tuple[Any, Any]:
    import numpy as np

    matrix = matrix.astype(np.float32)
    amax = np.abs(matrix).max(axis=1)
    scale = np.where(amax > 0, amax / INT8_QMAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(matrix / scale[:, None]), -INT8_QMAX, INT8_QMAX).astype(np.int8)
    return q, scale


WORDPIECE_MODEL_TYPES = frozenset({"bert", "distilbert"})
"""Models whose ``vocab.txt`` is a BERT WordPiece vocabulary: their ``tokenizer.json`` can be built from it."""


def _ensure_tokenizer_json(src: Path, dest: Path) -> None:
    """Give ``dest`` a ``tokenizer.json`` (what the runtime's own forward reads) if ``src`` lacks one.

    Built with the ``tokenizers`` library alone, never transformers, so the bundle's bytes do not depend on
    what else the publisher's environment happens to have (a laptop with the whole workspace and the
    deploy job's Pulumi-only environment must publish the same digest). Only BERT-style WordPiece models
    are built this way (their ``tokenizer_config.json`` settings, as transformers' converter reads them);
    any other model ships without one and the runtime falls back to transformers' tokenizer.
    """
    if (dest / "tokenizer.json").is_file() or not (src / "vocab.txt").is_file():
        return
    config = _read_json(src / "config.json")
    if config.get("model_type") not in WORDPIECE_MODEL_TYPES:
        return
    settings = _read_json(src / "tokenizer_config.json")
    from tokenizers import BertWordPieceTokenizer

    lowercase = bool(settings.get("do_lower_case", True))
    tokenizer = BertWordPieceTokenizer(
        str(src / "vocab.txt"),
        unk_token=str(settings.get("unk_token", "[UNK]")),
        sep_token=str(settings.get("sep_token", "[SEP]")),
        cls_token=str(settings.get("cls_token", "[CLS]")),
        pad_token=str(settings.get("pad_token", "[PAD]")),
        mask_token=str(settings.get("mask_token", "[MASK]")),
        clean_text=True,
        handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
        strip_accents=settings.get("strip_accents"),
        lowercase=lowercase,
    )
    tokenizer.save(str(dest / "tokenizer.json"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def compact_model_dir(model_dir: Path, dest_dir: Path, *, encoding: Encoding = "int8") -> Path:
    """``dest_dir`` holding ``model_dir``'s bundle files with compact weights; ``model_dir`` itself if it cannot be.

    ``dest_dir`` must not exist yet. Files other than the weights are copied as they are.
    """
    from sentiment_shared.model_bundle import model_files

    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}; got {encoding!r}")
    model_dir = Path(model_dir)
    files = model_files(model_dir)  # BundleError if it is not a model directory
    reason = compactable(model_dir)
    if reason is not None:
        log.info("Model weights kept as they are", extra={"model_dir": str(model_dir), "reason": reason})
        return model_dir
    import numpy as np
    from safetensors.numpy import load_file, save_file

    dest_dir.mkdir(parents=True)
    for path in files:
        if path.name.endswith(".safetensors") or path.name.endswith(".safetensors.index.json"):
            continue
        shutil.copyfile(path, dest_dir / path.name)
    _ensure_tokenizer_json(model_dir, dest_dir)
    tensors: dict[str, Any] = {}
    for name, array in load_file(model_dir / WEIGHTS_FILE).items():
        if array.dtype.kind != "f":
            tensors[name] = array
        elif encoding == "fp16":
            tensors[name] = array.astype(np.float16)
        elif array.ndim == 2 and array.size >= MIN_QUANTISED_ELEMENTS:
            tensors[name], tensors[name + SCALE_SUFFIX] = _quantise_rows(array)
        else:
            tensors[name] = array.astype(np.float32)
    target = COMPACT_WEIGHTS_FILE if encoding == "int8" else WEIGHTS_FILE
    # One metadata key only: safetensors writes the metadata map in hash order (random per process),
    # so a second key would make the bytes, and the bundle's sha256, differ from run to run.
    save_file(tensors, str(dest_dir / target), metadata={"format": "pt"})
    return dest_dir


def to_hf_state_dict(model_dir: Path) -> dict[str, Any]:
    """fp32 torch tensors under Hugging Face's names from ``model.compact.safetensors`` (dequantised)."""
    from safetensors.torch import load_file

    stored = load_file(Path(model_dir) / COMPACT_WEIGHTS_FILE)
    state: dict[str, Any] = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(name + SCALE_SUFFIX)
        state[name] = tensor.float() if scale is None else dequantised(tensor, scale)
    return state


def dequantised(rows: Any, scale: Any) -> Any:
    """The fp32 torch tensor ``rows * scale`` of int8 ``rows`` and their per-row ``scale`` (as stored)."""
    return rows.float().mul_(scale.float().unsqueeze(1))
