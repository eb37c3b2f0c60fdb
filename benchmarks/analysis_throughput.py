"""Texts/second of the analysis classifier against the seeds' one-``pipeline()``-call-per-text loop.

Full-size DistilBERT (``DistilBertConfig()``, random weights, the shared model's tokenizer; built once by
``benchmarks.bundle_formats``), SST-2 dev texts, one thread, chunks of 1 / 10 / 32 texts (a chunk is one
Lambda batch: one ``classify`` call). All variants run side by side in this one process.

    uv run python -m benchmarks.analysis_throughput [--texts 128] [--int8]

Targets (issue 15): the default precision (``auto``: int8 only where measured faster than fp32 on this
CPU) >= 1.5x the seeds' loop at 32 and >= 1.3x at 10; fp32 >= 1.5x at 32. ``--int8`` adds forced int8
(40-60x slower than fp32 on a CPU without VNNI: give it few ``--texts`` there).
The roofline line is the fp32 ceiling: measured fp32 GEMM GFLOP/s / model FLOPs per text.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.bundle_formats import SHARED_MODEL, build_full_size_model
from benchmarks.host import banner

CHUNKS = (1, 10, 32)
DEFAULT = "auto (default)"
TARGETS = {(DEFAULT, 32): 1.5, (DEFAULT, 10): 1.3, ("fp32", 32): 1.5}


def sst2_texts(n: int) -> list[str]:
    path = SHARED_MODEL.parent.parent / "data" / "sst2-dev.tsv"
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.rpartition("\t")[0].strip() for line in rows][:n]


def texts_per_second(run_chunk: Callable[[Sequence[str]], object], texts: list[str], chunk: int) -> float:
    run_chunk(texts[:chunk])  # warm-up (allocator, kernels)
    started = time.perf_counter()
    for i in range(0, len(texts), chunk):
        run_chunk(texts[i : i + chunk])
    return len(texts) / (time.perf_counter() - started)


def fp32_gemm_gflops() -> float:
    import torch

    a, b = torch.randn(1024, 768), torch.randn(768, 3072)
    a @ b
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        runs.append(time.perf_counter() - started)
    return 2 * 1024 * 768 * 3072 / min(runs) / 1e9


def flops_per_text(config: Any, tokens: float) -> float:
    d, h, layers = int(config.dim), int(config.hidden_dim), int(config.n_layers)
    linear = 2 * layers * (4 * d * d + 2 * d * h)  # per token
    attention = 2 * layers * 2 * tokens * d  # QK^T and AV, per token
    return (linear + attention) * tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--int8", action="store_true", help="also time forced int8")
    args = parser.parse_args()

    import torch
    from transformers import pipeline

    from sentiment_analysis.classifier import SentimentClassifier

    torch.set_num_threads(1)
    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    model_dir = build_full_size_model(root / "distilbert-full")
    texts = sst2_texts(args.texts)

    seeds = pipeline("text-classification", model=str(model_dir), device=-1)  # = "sentiment-analysis"

    def seeds_chunk(chunk: Sequence[str]) -> None:
        for text in chunk:  # seed 002: one call per text, text cut at 2,000 characters
            seeds(text[:2000], truncation=True, max_length=512)

    variants: dict[str, Callable[[Sequence[str]], object]] = {"seeds: pipeline() per text": seeds_chunk}
    auto = SentimentClassifier.from_pretrained(model_dir, threads=1)
    variants[DEFAULT] = auto.classify
    for precision in ("fp32", "int8") if args.int8 else ("fp32",):
        variants[precision] = SentimentClassifier.from_pretrained(model_dir, precision=precision, threads=1).classify

    tokenizer: Any = seeds.tokenizer
    tokens = statistics.mean(len(ids) for ids in tokenizer(texts)["input_ids"])
    results: dict[tuple[str, int], float] = {}
    for chunk in CHUNKS:
        for name, run in variants.items():
            results[(name, chunk)] = texts_per_second(run, texts, chunk)

    base = "seeds: pipeline() per text"
    print(f"\n{banner()}")
    choice = auto.precision_choice
    speedup = f"{choice.int8_speedup:.3f}" if choice and choice.int8_speedup is not None else "-"
    print(f"auto chose {auto.precision} (int8 linear layers measured {speedup}x fp32's at load)")
    print(f"\nThroughput, texts/s ({len(texts)} SST-2 dev texts, mean {tokens:.1f} tokens, 1 thread, full-size model)")
    print(f"{'variant':28s}" + "".join(f"{'chunk ' + str(c):>18s}" for c in CHUNKS))
    for name in variants:
        cells = []
        for chunk in CHUNKS:
            rate = results[(name, chunk)]
            ratio = rate / results[(base, chunk)]
            cells.append(f"{rate:8.1f} ({ratio:4.2f}x)")
        print(f"{name:28s}" + "".join(f"{c:>18s}" for c in cells))

    gflops = fp32_gemm_gflops()
    config = seeds.model.config
    ceiling = gflops * 1e9 / flops_per_text(config, tokens)
    per_token = flops_per_text(config, tokens) / tokens / 1e6
    print(f"\nfp32 roofline: {per_token:.0f} MFLOP/token x {tokens:.1f} tokens/text at {gflops:.0f} GFLOP/s (GEMM)")
    print(f"  = {ceiling:.1f} texts/s ceiling; fp32 at chunk 32 reaches {results[('fp32', 32)] / ceiling:.0%} of it")
    print("\nTargets")
    for (precision, chunk), target in TARGETS.items():
        ratio = results[(precision, chunk)] / results[(base, chunk)]
        verdict = "PASS" if ratio >= target else "FAIL"
        print(f"  {precision} at chunk {chunk:>2}: {ratio:4.2f}x (target >= {target}x)  {verdict}")
    print(f"\n{banner()}")


if __name__ == "__main__":
    main()
