"""Time a cold ``model_bundle.fetch`` of the full-size bundle from a local moto S3 server, per strategy.

Uses the full-size DistilBERT that ``benchmarks.bundle_formats`` builds (and caches), packs it, uploads it
to a ``ThreadedMotoServer`` on 127.0.0.1 and fetches it cold with ``strategy="stream"`` (one streamed GET,
hashed and extracted on the fly) and ``strategy="ranged"`` (boto3's parallel ranged download to a file,
then verify and extract), printing the :class:`~sentiment_shared.model_bundle.FetchStats` breakdown.
moto is not S3: absolute numbers say little about AWS, the breakdown and the disk need do.

    uv run python -m benchmarks.bundle_fetch
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.bundle_formats import build_full_size_model
from sentiment_shared import aws
from sentiment_shared.model_bundle import FetchStats, fetch, pack

BUCKET = "bench-models"
KEY = "distilbert/v1.0.0/model.tar"
REPEATS = 3


def main() -> None:
    from sentiment_local.emulator import aws_environment, embedded_moto

    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    model_dir = build_full_size_model(root / "distilbert-full")
    with embedded_moto() as endpoint, aws_environment(endpoint), tempfile.TemporaryDirectory(dir=root) as tmp:
        work = Path(tmp)
        info = pack(model_dir, work / "model.tar")
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(info.path), BUCKET, KEY)
        print(f"bundle {info.size / 1e6:.1f} MB from moto at 127.0.0.1, best of {REPEATS} cold fetches")
        print(f"{'strategy':<10}{'total (s)':>10}{'download':>10}{'verify':>8}{'extract':>9}  archive on disk")
        for strategy in ("stream", "ranged"):
            best: tuple[float, FetchStats] | None = None
            for _ in range(REPEATS):
                cache = work / f"cache-{strategy}"
                shutil.rmtree(cache, ignore_errors=True)
                stats = FetchStats()
                started = time.perf_counter()
                fetch(BUCKET, KEY, info.sha256, cache, strategy=strategy, stats=stats)
                total = time.perf_counter() - started
                if best is None or total < best[0]:
                    best = (total, stats)
            assert best is not None
            total, stats = best
            disk = "no (streamed)" if strategy == "stream" else f"yes, {info.size / 1e6:.0f} MB while extracting"
            timings = f"{total:>10.2f}{stats.download_s:>10.2f}{stats.verify_s:>8.2f}{stats.extract_s:>9.2f}"
            print(f"{strategy:<10}{timings}  {disk}")


if __name__ == "__main__":
    main()
