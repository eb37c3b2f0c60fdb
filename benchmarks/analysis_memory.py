"""Peak RSS of a function process after one batch of 32 long texts (512 tokens each), full-size DistilBERT.

Each variant runs in a fresh process (peak RSS is per process): ours at the default precision (``auto``)
and fp32 (one ``classify`` call, length-sorted micro-batches under the token budget), forced int8 with
``--int8`` (minutes on a CPU without VNNI), and the seeds' ``pipeline()`` per text.
Threads are sized as on a 2,048 MB function (1 thread). The processes run on the image's dependency set
(CPU-only torch, installed by ``benchmarks.image_size.install_dependency_set`` and cached), not on this
venv: the venv's CUDA build of torch maps ~250 MB more of shared libraries (libtriton, cuBLAS, NVRTC ...).

    uv run python -m benchmarks.analysis_memory [--int8]

Target (issue 3, seed 000 NFR-003): <= 1,024 MB, i.e. 50 % headroom under 2,048 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.bundle_formats import build_full_size_model
from benchmarks.host import banner
from benchmarks.image_size import install_dependency_set, install_members

TARGET_MB = 1024

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
else:
    from sentiment_analysis.classifier import SentimentClassifier
    clf = SentimentClassifier.from_pretrained(model_dir, precision=kind, threads=1)
    loaded = rss_mb()
    tokens = [len(ids) for ids in clf.tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    assert min(tokens) == 512, tokens
    clf.classify(texts)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
anon, file = (int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile"))
print(json.dumps({"after_load_mb": loaded, "peak_mb": rss_mb(), "seconds": time.perf_counter() - started,
                  "anon_mb": anon, "file_mb": file}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--int8", action="store_true", help="also measure forced int8")
    args = parser.parse_args()
    kinds = ("auto", "fp32", "int8") if args.int8 else ("auto", "fp32")
    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    model_dir = build_full_size_model(root / "distilbert-full")
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
    rows = {}
    for kind in (*kinds, "seeds"):
        out = subprocess.run(  # -S: no site-packages, only the image's dependency set on PYTHONPATH
            [sys.executable, "-S", "-c", CHILD, kind, str(model_dir)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        rows[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{banner()}")
    print("\nPeak RSS, 32 texts of 512 tokens, full-size DistilBERT, fresh process each, MB")
    print(f"{'variant':28s}{'after load':>12s}{'peak':>10s}{'anon at end':>13s}{'file at end':>13s}{'wall s':>9s}")
    names = {
        "auto": "ours auto (default)",
        "fp32": "ours fp32",
        "int8": "ours int8",
        "seeds": "seeds: pipeline() per text",
    }
    for kind, row in rows.items():
        print(
            f"{names[kind]:28s}{row['after_load_mb']:12.0f}{row['peak_mb']:10.0f}"
            f"{row['anon_mb']:13.0f}{row['file_mb']:13.0f}{row['seconds']:9.1f}"
        )
    print("\nTarget")
    for kind in kinds:
        peak = rows[kind]["peak_mb"]
        print(f"  ours {kind} peak <= {TARGET_MB} MB: {peak:.0f} MB  {'PASS' if peak <= TARGET_MB else 'FAIL'}")
    print(f"\n{banner()}")


if __name__ == "__main__":
    main()
