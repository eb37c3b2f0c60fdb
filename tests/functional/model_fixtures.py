"""Small synthetic model directories and hub repos for the publishing tests (fast, no real weights)."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = {"model_type": "distilbert", "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def model_files(weights: bytes = b"\x00\x01" * 2048) -> dict[str, bytes]:
    return {
        "config.json": json.dumps(CONFIG).encode(),
        "tokenizer.json": b'{"version": "1.0"}',
        "tokenizer_config.json": b'{"do_lower_case": true}',
        "special_tokens_map.json": b"{}",
        "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood\nbad\n",
        "model.safetensors": weights,
    }


def hub_repo_files(weights: bytes = b"\x00\x01" * 2048) -> dict[str, bytes]:
    """A hub repo as the real one looks: model files plus other frameworks' weights and docs."""
    return {
        **model_files(weights),
        "pytorch_model.bin": b"\x80\x02pickle",
        "tf_model.h5": b"HDF5",
        "flax_model.msgpack": b"msgpack",
        "onnx/model.onnx": b"onnx",
        "README.md": b"# card",
        ".gitattributes": b"*.bin filter=lfs",
    }


def make_model_dir(root: Path, weights: bytes = b"\x00\x01" * 2048) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in model_files(weights).items():
        (root / name).write_bytes(data)
    (root / "README.md").write_text("not part of the bundle\n")
    return root
