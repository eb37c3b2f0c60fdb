"""Measure the model bundle's candidate formats on a full-size DistilBERT (plain tar, gzip, zstd).

Builds (once, cached under ``$BUNDLE_BENCH_DIR`` or the temp dir) a ``DistilBertForSequenceClassification``
from the default ``DistilBertConfig()`` with random weights (~255 MB of fp32 safetensors) and the tokenizer
of ``../shared/models/sst2-distilbert-minilm``, then packs it in each format and times pack and extract
(extract = read + decompress + the bundle's own checked member writer + digest verification).

    uv run python -m benchmarks.bundle_formats
    uv run --with zstandard python -m benchmarks.bundle_formats   # include zstd
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
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


def _best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


Row = tuple[str, int, float, float]


def _measure_tar(model_dir: Path, work: Path) -> tuple[Row, str]:
    tar_path = work / "model.tar"
    pack_s = _best(lambda: pack(model_dir, tar_path))
    tar_sha = _sha256(tar_path)

    def extract_tar() -> None:
        out = work / "x-tar"
        shutil.rmtree(out, ignore_errors=True)
        model_bundle.extract(tar_path, out, tar_sha)

    return ("tar", tar_path.stat().st_size, pack_s, _best(extract_tar)), tar_sha


def _measure_gzip(model_dir: Path, work: Path) -> Row:
    tar_path, gz_path = work / "model.tar", work / "model.tar.gz"

    def pack_gz() -> None:
        pack(model_dir, tar_path)
        with (
            tar_path.open("rb") as src,
            gz_path.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz,
        ):
            shutil.copyfileobj(src, gz, 1 << 20)

    pack_s = _best(pack_gz)
    gz_sha = _sha256(gz_path)

    def extract_gz() -> None:
        out = work / "x-gz"
        shutil.rmtree(out, ignore_errors=True)
        model_bundle.extract(gz_path, out, gz_sha)

    return ("tar.gz -6", gz_path.stat().st_size, pack_s, _best(extract_gz))


def _measure_zstd(model_dir: Path, work: Path, tar_sha: str) -> Row | None:
    try:
        zstandard = importlib.import_module("zstandard")  # optional: `uv run --with zstandard ...`
    except ImportError:
        return None
    tar_path, zst_path = work / "model.tar", work / "model.tar.zst"

    def pack_zst() -> None:
        pack(model_dir, tar_path)
        with tar_path.open("rb") as src, zst_path.open("wb") as dst:
            zstandard.ZstdCompressor(level=3, write_content_size=False).copy_stream(src, dst)

    pack_s = _best(pack_zst)

    def extract_zst() -> None:
        out = work / "x-zst"
        shutil.rmtree(out, ignore_errors=True)
        with zst_path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as tar_stream:
            # The decompressed stream is the plain tar: same checked writer, verified against the tar's digest.
            model_bundle._extract_stream(tar_stream, out, tar_sha, FetchStats())

    return ("tar.zst -3", zst_path.stat().st_size, pack_s, _best(extract_zst))


def main() -> None:
    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir = build_full_size_model(root / "distilbert-full")
    weights = (model_dir / "model.safetensors").stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bundle-formats-", dir=root))
    try:
        tar_row, tar_sha = _measure_tar(model_dir, work)
        rows = [tar_row, _measure_gzip(model_dir, work)]
        zstd_row = _measure_zstd(model_dir, work, tar_sha)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if zstd_row is not None:
        rows.append(zstd_row)

    print(f"model: {model_dir} (weights {weights / 1e6:.1f} MB), best of {REPEATS}, {os.cpu_count()} CPUs")
    print(f"{'format':<12}{'size (MB)':>11}{'vs tar':>9}{'pack (s)':>10}{'extract (s)':>13}")
    base = rows[0][1]
    for name, size, pack_s, extract_s in rows:
        print(f"{name:<12}{size / 1e6:>11.1f}{(size - base) / base:>+9.1%}{pack_s:>10.2f}{extract_s:>13.2f}")
    if zstd_row is None:
        print("(zstd skipped: run with `uv run --with zstandard python -m benchmarks.bundle_formats`)")


if __name__ == "__main__":
    main()
