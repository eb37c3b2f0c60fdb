"""Measure the model bundle's candidate formats on a full-size DistilBERT (plain tar, gzip, zstd).

Builds (once, cached under ``$BUNDLE_BENCH_DIR`` or the temp dir) a ``DistilBertForSequenceClassification``
from the default ``DistilBertConfig()`` with random weights (~255 MB of fp32 safetensors) and the tokenizer
of ``../shared/models/sst2-distilbert-minilm``, then packs it in each format and times pack and extract
(extract = read + decompress + the bundle's own checked member writer + digest verification).

    uv run python -m benchmarks.bundle_formats
    uv run --with zstandard python -m benchmarks.bundle_formats   # include zstd
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sentiment_shared import model_bundle
from sentiment_shared.model_bundle import FetchStats, pack

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MODEL = (
    Path(os.environ.get("SENTIMENT_SHARED_DIR", REPO_ROOT.parent / "shared")) / "models" / "sst2-distilbert-minilm"
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
REPEATS = 5


def build_full_size_model(dest: Path) -> Path:
    """A full-size DistilBERT classifier with random weights and the shared model's tokenizer."""
    if (dest / "model.safetensors").is_file():
        return dest
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig()  # the default is the full-size DistilBERT (dim 768, 6 layers)
    config.id2label = {0: "NEGATIVE", 1: "POSITIVE"}
    config.label2id = {"NEGATIVE": 0, "POSITIVE": 1}
    model = DistilBertForSequenceClassification(config)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(SHARED_MODEL / name, tmp / name)
    tmp.rename(dest)
    return dest


def compact_full_size_model(root: Path) -> Path:
    """:func:`build_full_size_model` (under ``root``) compacted as ``publish`` compacts what it ships (int8 rows +
    per-row scales, ``sentiment_shared.model_compact.compact_model_dir``), built once into ``root``."""
    from sentiment_shared.model_compact import compact_model_dir

    compact = root / "distilbert-full-compact"
    if not (compact / "model.compact.safetensors").is_file():
        root.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix="compact-", dir=root)) / "compact"
        compact_model_dir(build_full_size_model(root / "distilbert-full"), partial)
        partial.rename(compact)
        partial.parent.rmdir()  # the now empty mkdtemp folder
    return compact


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Format:
    """One candidate: how to pack it (from the packed tar) and how to read it back."""

    name: str
    path: Path
    compress: Callable[[Path, Path], None] | None
    read: Callable[[Path, Path, str], None]
    pack_s: list[float] = field(default_factory=list)
    extract_s: list[float] = field(default_factory=list)


def _gzip(src: Path, dest: Path) -> None:
    with (
        src.open("rb") as raw_in,
        dest.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz,
    ):
        shutil.copyfileobj(raw_in, gz, 1 << 20)


def _formats(work: Path) -> list[Format]:
    formats = [
        Format("tar", work / "model.tar", None, _extract),
        Format("tar.gz -6", work / "model.tar.gz", _gzip, _extract),
    ]
    try:
        zstandard = importlib.import_module("zstandard")  # optional: `uv run --with zstandard ...`
    except ImportError:
        return formats

    def compress(src: Path, dest: Path) -> None:
        with src.open("rb") as raw_in, dest.open("wb") as raw:
            zstandard.ZstdCompressor(level=3, write_content_size=False).copy_stream(raw_in, raw)

    def read(path: Path, out: Path, tar_sha: str) -> None:
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as tar_stream:
            # The decompressed stream is the plain tar: same checked writer, verified against the tar's digest.
            model_bundle._extract_stream(tar_stream, out, tar_sha, FetchStats())

    formats.append(Format("tar.zst -3", work / "model.tar.zst", compress, read))
    return formats


def _extract(path: Path, out: Path, sha: str) -> None:
    model_bundle.extract(path, out, sha)


def main() -> None:
    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir = build_full_size_model(root / "distilbert-full")
    weights = (model_dir / "model.safetensors").stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bundle-formats-", dir=root))
    tar_path = work / "model.tar"
    formats = _formats(work)
    try:
        # Rounds interleave the formats, so load from other processes hits each of them alike.
        for _ in range(REPEATS):
            tar_s = _timed(lambda: pack(model_dir, tar_path))
            for fmt in formats:
                extra = _timed(functools.partial(fmt.compress, tar_path, fmt.path)) if fmt.compress else 0.0
                fmt.pack_s.append(tar_s + extra)
        tar_sha = _sha256(tar_path)
        digests = {fmt.name: tar_sha if fmt.name.startswith("tar.zst") else _sha256(fmt.path) for fmt in formats}
        for _ in range(REPEATS):
            for fmt in formats:
                out = work / "extracted"
                shutil.rmtree(out, ignore_errors=True)
                fmt.extract_s.append(_timed(functools.partial(fmt.read, fmt.path, out, digests[fmt.name])))
        sizes = {fmt.name: fmt.path.stat().st_size for fmt in formats}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"model: {model_dir} (weights {weights / 1e6:.1f} MB), "
        f"best of {REPEATS} interleaved rounds, {os.cpu_count()} CPUs"
    )
    print(f"{'format':<12}{'size (MB)':>11}{'vs tar':>9}{'pack (s)':>10}{'extract (s)':>13}")
    base = sizes["tar"]
    for fmt in formats:
        size = sizes[fmt.name]
        print(
            f"{fmt.name:<12}{size / 1e6:>11.1f}{(size - base) / base:>+9.1%}"
            f"{min(fmt.pack_s):>10.2f}{min(fmt.extract_s):>13.2f}"
        )
    if len(formats) < 3:
        print("(zstd skipped: run with `uv run --with zstandard python -m benchmarks.bundle_formats`)")


if __name__ == "__main__":
    main()
