"""Loading the compact bundle: int8 weights straight into the int8 layers vs the fp32 round trip they replaced.

``SentimentClassifier.from_pretrained`` on the full-size DistilBERT compacted as ``publish`` does (int8 rows
+ per-row scales), 1 thread as on a 2,048 MB function, in one process, the two ways alternating, warm
(imports done, the file in the page cache; the medians are what a cold start pays for the load itself):

* direct (now): the precision is measured on the config's layer shapes before any weight is read, then the
  stored int8 weights become the int8 layers as they are (only the fp32-stored classifier head is quantised);
* round trip (before): every weight dequantised to fp32, the fp32 model built, measured, then every linear
  layer quantised again (``quantize_int8``), which reproduces the stored int8 weights.

Both answer with bit-identical logits (checked here). Then peak RSS of each way, one fresh process each
(its VmHWM reset after the imports, so the imports' own peak does not hide the load's; malloc set as in the
image).

    uv run python -m benchmarks.analysis_load [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bundle_formats import compact_full_size_model
from benchmarks.host import banner

PRECISIONS = ("int8", "auto", "fp32")
WAYS = ("round trip (before)", "direct (now)")
TEXTS = ["What a wonderful film.", "Dull, lifeless and far too long.", "The plot meanders, yet the score is haunting."]


def load(way: str, model_dir: Path, precision: str) -> Any:
    """A classifier for ``model_dir`` at ``precision``, loaded ``way`` (one of :data:`WAYS`)."""
    from sentiment_analysis.classifier import SentimentClassifier

    if way == "direct (now)":
        return SentimentClassifier.from_pretrained(model_dir, precision=precision, threads=1)  # type: ignore[arg-type]
    from sentiment_analysis.precision import choose_precision, linear_shapes

    # The fp32 load is the round trip's first half (weights dequantised, fp32 layers); then, as before,
    # the precision measured on the built model and its layers quantised.
    classifier = SentimentClassifier.from_pretrained(model_dir, precision="fp32", threads=1)
    choice = choose_precision(precision, linear_shapes(classifier.runtime.model))  # type: ignore[arg-type]
    classifier.set_precision(choice.precision)
    classifier.precision_choice = choice
    return classifier


def _logits(classifier: Any) -> Any:
    import torch

    ids = classifier.tokenizer(TEXTS, truncation=True, max_length=classifier.max_length)["input_ids"]
    with torch.inference_mode():
        return classifier.runtime.logits(ids)


CHILD = r"""
import json, sys
from pathlib import Path
from benchmarks.analysis_load import load
import sentiment_analysis.classifier, sentiment_analysis.runtime
from sentiment_analysis import distilbert  # imports torch, safetensors, tokenizers
way, model_dir, precision = sys.argv[1:]
def status_mb(key):
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return int(fields[key].split()[0]) / 1024
imported = status_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM: the imports' own peak is not the load's
    f.write("5")
classifier = load(way, Path(model_dir), precision)
print(json.dumps({"imports_mb": imported, "peak_mb": status_mb("VmHWM"), "after_mb": status_mb("VmRSS")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import torch

    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    compact = compact_full_size_model(root)
    load_avg = [os.getloadavg()[0]]

    times: dict[tuple[str, str], list[float]] = {(p, w): [] for p in PRECISIONS for w in WAYS}
    chosen: dict[tuple[str, str], set[str]] = {key: set() for key in times}
    logits: dict[tuple[str, str], Any] = {}
    for way in WAYS:  # untimed: imports, int8 kernels JIT-compiled, the weights file in the page cache
        load(way, compact, "int8")
    for _ in range(args.repeats):
        for precision in PRECISIONS:
            for way in WAYS:
                started = time.perf_counter()
                classifier = load(way, compact, precision)
                times[precision, way].append(time.perf_counter() - started)
                chosen[precision, way].add(classifier.precision)
                logits[precision, way] = _logits(classifier)
                del classifier
        load_avg.append(os.getloadavg()[0])

    rss: dict[str, dict[str, float]] = {}
    for way in WAYS:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, way, str(compact), "int8"],
            capture_output=True,
            text=True,
            check=True,
            env={
                **os.environ,
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                "MALLOC_MMAP_THRESHOLD_": "16777216",  # as the image's Dockerfile sets it
            },
        )
        rss[way] = json.loads(out.stdout.strip().splitlines()[-1])

    print(f"\n{banner()}")
    title = "from_pretrained, full-size DistilBERT compact bundle, 1 thread, warm"
    print(f"\n{title}, median of {args.repeats} (min-max), s, and the precision it ran at")
    print(f"  {'precision asked':18s}" + "".join(f"{w:>28s}" for w in WAYS) + f"{'saved':>10s}  same logits")
    for precision in PRECISIONS:
        cells, medians = [], []
        for way in WAYS:
            runs = times[precision, way]
            medians.append(statistics.median(runs))
            ran = "/".join(sorted(chosen[precision, way]))
            cells.append(f"{medians[-1]:.3f} ({min(runs):.3f}-{max(runs):.3f}) {ran}")
        same = bool(torch.equal(logits[precision, WAYS[0]], logits[precision, WAYS[1]]))
        row = f"  {precision:18s}" + "".join(f"{c:>28s}" for c in cells)
        print(f"{row}{medians[0] - medians[1]:>9.3f}s  {'bit-identical' if same else 'DIFFERENT'}")
    print(f"  load average (1 min) during the runs: {min(load_avg):.2f}-{max(load_avg):.2f}")
    print("  (fp32: the same path both ways, a control for the noise)")
    print("\nRSS of a fresh process loading it at int8 (this venv's torch), MB")
    for way in WAYS:
        r = rss[way]
        cells = f"peak during the load {r['peak_mb']:6.0f}   after it {r['after_mb']:6.0f}"
        print(f"  {way:22s} after imports {r['imports_mb']:6.0f}   {cells}")
    print(f"  peak saved: {rss[WAYS[0]]['peak_mb'] - rss[WAYS[1]]['peak_mb']:.0f} MB")
    print(f"\n{banner()}")


if __name__ == "__main__":
    main()
