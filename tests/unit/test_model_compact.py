"""Compact weights made at publish time: int8 rows with per-row scales, fp16, or the model as it is."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from sentiment_shared.model_compact import (
    COMPACT_WEIGHTS_FILE,
    SCALE_SUFFIX,
    compact_model_dir,
    compactable,
    to_hf_state_dict,
)

pytestmark = pytest.mark.unit


def _model(root: Path) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "distilbert"}))
    (root / "tokenizer.json").write_text('{"version": "1.0"}')
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    rng = np.random.default_rng(0)
    tensors = {
        "lin.weight": rng.normal(size=(256, 64)).astype(np.float32),
        "lin.bias": rng.normal(size=(256,)).astype(np.float32),
        "head.weight": rng.normal(size=(2, 64)).astype(np.float32),
        "zero.weight": np.zeros((128, 64), dtype=np.float32),
        "position_ids": np.arange(512, dtype=np.int64),
    }
    save_file(tensors, str(root / "model.safetensors"))
    return root


def test_int8_rows_dequantise_within_half_a_step_and_small_tensors_stay_fp32(tmp_path: Path) -> None:
    # Given a model with one large linear layer, a small head, an all-zero matrix and an int tensor
    src = _model(tmp_path / "src")
    # When compacted
    out = compact_model_dir(src, tmp_path / "out")
    stored = load_file(out / COMPACT_WEIGHTS_FILE)
    # Then the large matrices are int8 with a scale per row, the rest as it was
    assert stored["lin.weight"].dtype == np.int8
    assert stored["lin.weight" + SCALE_SUFFIX].shape == (256,)
    assert stored["head.weight"].dtype == np.float32
    assert stored["lin.bias"].dtype == np.float32
    assert stored["position_ids"].dtype == np.int64
    assert not (out / "model.safetensors").exists()
    # And dequantised, each weight is within half a quantisation step of the original; zeros stay zeros
    original = load_file(src / "model.safetensors")
    state = to_hf_state_dict(out)
    step = np.abs(original["lin.weight"]).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(state["lin.weight"].numpy() - original["lin.weight"]) <= step / 2 + 1e-7)
    assert not state["zero.weight"].numpy().any()
    assert np.array_equal(state["head.weight"].numpy(), original["head.weight"])
    # And config and tokenizer files are copied as they are
    assert {p.name for p in out.iterdir()} == {"config.json", "tokenizer.json", "vocab.txt", COMPACT_WEIGHTS_FILE}


def test_compaction_is_reproducible_across_processes_and_fp16_stays_a_plain_safetensors_file(tmp_path: Path) -> None:
    src = _model(tmp_path / "src")
    # Given the same model compacted in this process and in three fresh ones (hash-order randomisation
    # differs per process: a metadata map with two keys came out in either order)
    code = "import sys; from pathlib import Path; from sentiment_shared.model_compact import compact_model_dir as c; "
    code += "c(Path(sys.argv[1]), Path(sys.argv[2]))"
    for name in ("p1", "p2", "p3"):
        subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / name)], check=True, timeout=120)
    one = compact_model_dir(src, tmp_path / "one")
    digest = lambda d: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}  # noqa: E731
    # Then every copy has the same bytes
    assert all(digest(tmp_path / name) == digest(one) for name in ("p1", "p2", "p3"))
    half = compact_model_dir(src, tmp_path / "half", encoding="fp16")
    assert load_file(half / "model.safetensors")["lin.weight"].dtype == np.float16


def test_a_model_that_cannot_be_compacted_is_published_as_it_is(tmp_path: Path) -> None:
    # Given weights that are not a safetensors file
    src = _model(tmp_path / "src")
    (src / "model.safetensors").write_bytes(b"\x00\x01" * 100)
    # Then compaction says why and hands back the source directory untouched
    assert compactable(src) == "model.safetensors is not a safetensors file"
    assert compact_model_dir(src, tmp_path / "out") == src
    assert not (tmp_path / "out").exists()
