"""Peak RSS of a function process after one batch of 32 long texts (512 tokens each), full-size DistilBERT.

Each variant runs in a fresh process (peak RSS is per process). What ships first: the compact bundle
``publish`` makes (int8 rows + per-row scales, ``sentiment_shared.model_compact``) at the default precision
(``auto``; the precision it chose is printed: int8 goes straight into int8 layers, fp32 dequantises) and
at fp32 (what ``auto`` runs on a CPU where int8 is not faster); then the fp32 ``model.safetensors`` bundle
at ``auto`` and fp32; forced int8 on both with ``--int8`` (minutes on a CPU without VNNI); and the seeds'
``pipeline()`` per text on the fp32 bundle, the baseline. Ours is one ``classify`` call (length-sorted
micro-batches under the token budget). Threads are sized as on a 2,048 MB function (1 thread).
The processes run on the image's dependency set (CPU-only torch from pip's find-links wheelhouse, as the
image rehearsal serves it, installed by ``benchmarks.image_size.install_dependency_set`` and cached), not on
this venv: the venv's CUDA build of torch maps ~250 MB more of shared libraries (libtriton, cuBLAS, NVRTC ...).

    uv run python -m benchmarks.analysis_memory [--int8] [--repeats N]

Target (issue 3, seed 000 NFR-003): <= 1,024 MB, i.e. 50 % headroom under 2,048 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bundle_formats import build_full_size_model, compact_full_size_model
from benchmarks.host import banner
from benchmarks.image_size import install_dependency_set, install_members

TARGET_MB = 1024


@dataclass(frozen=True)
class Variant:
    label: str
    bundle: str
    """``compact`` (what ``publish`` ships) or ``fp32`` (the source's ``model.safetensors``)."""
    kind: str
    """The precision asked of ``SentimentClassifier.from_pretrained``, or ``seeds`` (``pipeline()`` per text)."""


VARIANTS = (
    Variant("shipped: compact, auto", "compact", "auto"),
    Variant("compact, fp32", "compact", "fp32"),
    Variant("fp32 bundle, auto", "fp32", "auto"),
    Variant("fp32 bundle, fp32", "fp32", "fp32"),
)
INT8_VARIANTS = (Variant("compact, int8", "compact", "int8"), Variant("fp32 bundle, int8", "fp32", "int8"))
SEEDS = Variant("seeds: pipeline() per text", "fp32", "seeds")

CHILD = r"""
import json, resource, sys, time
kind, model_dir = sys.argv[1], sys.argv[2]
review = "The plot meanders, yet the acting is superb and the score is haunting. " * 60
texts = [review[: 3000 + i] for i in range(32)]
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
if kind == "seeds":
    import torch
    torch.set_num_threads(1)
    from transformers import pipeline
    clf = pipeline("sentiment-analysis", model=model_dir, device=-1)
    loaded = rss_mb()
    for text in texts:
        clf(text[:2000], truncation=True, max_length=512)
    precision = "fp32"
else:
    import torch
    from sentiment_analysis.classifier import SentimentClassifier
    clf = SentimentClassifier.from_pretrained(model_dir, precision=kind, threads=1)
    loaded = rss_mb()
    tokens = [len(ids) for ids in clf.tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    assert min(tokens) == 512, tokens
    clf.classify(texts)
    precision = clf.precision
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
anon, file = (int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile"))
print(json.dumps({"after_load_mb": loaded, "peak_mb": rss_mb(), "seconds": time.perf_counter() - started,
                  "anon_mb": anon, "file_mb": file, "precision": precision, "torch": torch.__version__}))
"""


def _cell(values: list[float], width: int) -> str:
    """The median, and the range when there is more than one run."""
    text = f"{statistics.median(values):.0f}"
    if len(values) > 1:
        text += f" ({min(values):.0f}-{max(values):.0f})"
    return f"{text:>{width}s}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--int8", action="store_true", help="also measure forced int8 (both bundles)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over every variant (fresh process each)")
    args = parser.parse_args()
    variants = (*VARIANTS, *(INT8_VARIANTS if args.int8 else ()), SEEDS)
    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    bundles = {"fp32": build_full_size_model(root / "distilbert-full"), "compact": compact_full_size_model(root)}
    deps = root / "image-deps"
    if not (deps / "torch").is_dir():
        install_dependency_set(deps)
    else:
        install_members(deps)  # this checkout's code, not the cached copy's
    env = {
        **os.environ,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONPATH": str(deps),
        "MALLOC_MMAP_THRESHOLD_": "16777216",  # as the image's Dockerfile sets it
    }
    runs: dict[Variant, list[dict[str, Any]]] = {v: [] for v in variants}
    load_avg = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for variant in variants:
            out = subprocess.run(  # -S: no site-packages, only the image's dependency set on PYTHONPATH
                [sys.executable, "-S", "-c", CHILD, variant.kind, str(bundles[variant.bundle])],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            load_avg.append(os.getloadavg()[0])

    def values(variant: Variant, key: str) -> list[float]:
        return [float(run[key]) for run in runs[variant]]

    torch_version = runs[SEEDS][0]["torch"]
    print(f"\n{banner()}")
    print(f"load average (1 min) during the runs: {min(load_avg):.2f}-{max(load_avg):.2f}")
    print(
        f"\nPeak RSS, 32 texts of 512 tokens, full-size DistilBERT, fresh process each (torch {torch_version},"
        f" 1 thread), MB" + (f", median (min-max) of {args.repeats}" if args.repeats > 1 else "")
    )
    width = 16 if args.repeats > 1 else 10
    print(
        f"{'variant':28s}{'ran at':>8s}{'after load':>{width + 2}s}{'peak':>{width}s}"
        f"{'anon at end':>{width + 2}s}{'file at end':>{width + 2}s}{'wall s':>8s}"
    )
    for variant in variants:
        ran = "/".join(sorted({str(run["precision"]) for run in runs[variant]}))
        print(
            f"{variant.label:28s}{ran:>8s}{_cell(values(variant, 'after_load_mb'), width + 2)}"
            f"{_cell(values(variant, 'peak_mb'), width)}{_cell(values(variant, 'anon_mb'), width + 2)}"
            f"{_cell(values(variant, 'file_mb'), width + 2)}{statistics.median(values(variant, 'seconds')):8.1f}"
        )
    print("\nTarget")
    for variant in variants:
        if variant is SEEDS:
            continue
        peak = max(values(variant, "peak_mb"))  # the largest of the runs
        verdict = "PASS" if peak <= TARGET_MB else "FAIL"
        print(f"  {variant.label}: peak {peak:.0f} MB <= {TARGET_MB} MB  {verdict}")
    print(f"\n{banner()}")


if __name__ == "__main__":
    main()
