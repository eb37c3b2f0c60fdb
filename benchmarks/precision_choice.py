"""What ``precision="auto"`` chooses, and whether it is right: on this CPU and on an AVX2-only path.

Full-size DistilBERT (``benchmarks.bundle_formats``), one thread, SST-2 dev texts in chunks of 32 (one
Lambda batch = one ``classify`` call). For each path, one fresh process loads the model three times
(``auto``, ``fp32``, ``int8``) and times every chunk with the three back to back (best of ``--rounds`` per
chunk and variant), after one untimed chunk each. ``auto`` runs the code of the precision it chose, so
"default / faster" compares that precision's timing with the faster one's; auto's own timing is printed
too (their difference is the host's noise). The AVX2-only path is this CPU with its newer ISAs switched
off for every kernel library torch uses (what a CPU without AVX-512/VNNI would run):

* ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN, which runs ``torch._int_mm`` (int8) and some fp32 GEMMs;
* ``MKL_ENABLE_INSTRUCTIONS=AVX2``: MKL's sgemm (fp32 linear layers);
* ``ATEN_CPU_CAPABILITY=avx2``: ATen's own vectorised kernels (softmax, GELU, LayerNorm, quantisation).

The kernels that ran are printed (oneDNN's ISA line from ``ONEDNN_VERBOSE``, ATen's capability). A third
path keeps that but caps oneDNN at SSE4.1 (``ONEDNN_MAX_CPU_ISA=SSE41``): int8 without AVX kernels, slower
than fp32, so ``auto`` must choose fp32 there.

    uv run python -m benchmarks.precision_choice [--texts 128] [--rounds 3]

Done when (issue 23): the default is >= 0.8x the faster of int8 and fp32 at 32 texts on this CPU, and
still the right choice on the AVX2-only path (and on the third).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.host import banner

CHUNK = 32
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
NO_AVX_INT8 = {**AVX2_ONLY, "ONEDNN_MAX_CPU_ISA": "SSE41"}
"""fp32 as on an AVX2 CPU, int8 through oneDNN's SSE4.1 kernels: a CPU where int8 is the slower precision."""
PATHS = (("this CPU", {}), ("AVX2-only", AVX2_ONLY), ("int8 without AVX kernels", NO_AVX_INT8))
DONE_WHEN = 0.8

CHILD = r"""
import json, os, sys, time
from pathlib import Path
import torch
from benchmarks.analysis_throughput import sst2_texts
from sentiment_analysis.classifier import SentimentClassifier

torch.set_num_threads(1)
model_dir, n_texts, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
texts = sst2_texts(n_texts)
started = time.perf_counter()
auto = SentimentClassifier.from_pretrained(model_dir, threads=1)
auto_load_s = time.perf_counter() - started
variants = {
    "auto": auto,
    "fp32": SentimentClassifier.from_pretrained(model_dir, precision="fp32", threads=1),
    "int8": SentimentClassifier.from_pretrained(model_dir, precision="int8", threads=1),
}
chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]
best = {name: [float("inf")] * len(chunks) for name in variants}
for clf in variants.values():
    clf.classify(chunks[0])  # untimed: warm kernels
for _ in range(rounds):  # per chunk, the variants run back to back: load changes hit all of them alike
    for c, chunk in enumerate(chunks):
        for name, clf in variants.items():
            t0 = time.perf_counter()
            clf.classify(chunk)
            best[name][c] = min(best[name][c], time.perf_counter() - t0)
choice = auto.precision_choice
print(json.dumps({
    "texts_per_s": {name: len(texts) / sum(times) for name, times in best.items()},
    "chose": auto.precision,
    "int8_speedup": choice.int8_speedup,
    "calibration_ms": choice.calibration_ms,
    "auto_load_s": auto_load_s,
    "aten": torch.backends.cpu.get_cpu_capability(),
}))
"""

KERNELS = r"""
import torch
a = torch.randint(-8, 8, (64, 768), dtype=torch.int8)
b = torch.randint(-8, 8, (768, 768), dtype=torch.int8)
torch._int_mm(a, b)
"""


def _onednn_isa(env: dict[str, str]) -> str:
    """oneDNN's own report of the ISA it dispatches to, from one int8 GEMM under ONEDNN_VERBOSE."""
    out = subprocess.run(
        [sys.executable, "-c", KERNELS], env={**env, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True, check=True
    ).stdout
    isa = next((line.split("isa:", 1)[1].strip() for line in out.splitlines() if ",isa:" in line), "not reported")
    gemm = next((line for line in out.splitlines() if ",exec," in line and "s8" in line), "")
    kind = gemm.split(",")[5] if gemm.count(",") > 5 else "?"
    return f"{isa} (int8 GEMM primitive: {kind})"


def _path(name: str, extra: dict[str, str], model_dir: Path, args: argparse.Namespace) -> dict[str, object]:
    env = {**os.environ, **extra}
    for key in NO_AVX_INT8:
        if key not in extra:
            env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_dir), str(args.texts), str(args.rounds)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{name}: the measuring process failed:\n{out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["onednn"] = _onednn_isa(env)
    result["env"] = " ".join(f"{k}={v}" for k, v in extra.items()) or "(none)"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from benchmarks.bundle_formats import build_full_size_model

    root = Path(os.environ.get("BUNDLE_BENCH_DIR", Path(tempfile.gettempdir()) / "sentiment-bundle-bench"))
    model_dir = build_full_size_model(root / "distilbert-full")
    started = time.perf_counter()
    paths = {name: _path(name, extra, model_dir, args) for name, extra in PATHS}

    print(f"\n{banner()}")
    print(f"\nprecision=auto, full-size DistilBERT, 1 thread, {args.texts} SST-2 dev texts in chunks of {CHUNK},")
    took = time.perf_counter() - started
    print(f"best of {args.rounds} rounds (variants alternate), texts/s; measured in {took:.0f} s")
    verdicts = []
    for name, r in paths.items():
        rates: dict[str, float] = r["texts_per_s"]  # type: ignore[assignment]
        faster = max(("fp32", "int8"), key=lambda p: rates[p])
        chose = str(r["chose"])
        ratio = rates[chose] / rates[faster]  # auto runs the code of what it chose: compare that code's timing
        right = chose == faster or ratio >= DONE_WHEN
        print(f"\n{name}: {r['env']}")
        print(f"  kernels: oneDNN {r['onednn']}; ATen {r['aten']}")
        print(
            f"  auto chose {r['chose']} (int8 linear layers measured {r['int8_speedup']:.2f}x fp32's; "
            f"calibration {r['calibration_ms']:.0f} ms of a {r['auto_load_s']:.2f} s load)"
        )
        print(f"  texts/s: auto {rates['auto']:.1f}, fp32 {rates['fp32']:.1f}, int8 {rates['int8']:.1f}")
        print(
            f"  default ({chose}) / faster ({faster}) = {ratio:.2f}x (done when >= {DONE_WHEN}x)  "
            f"{'PASS' if right else 'FAIL'}; auto's own timing / faster = {rates['auto'] / rates[faster]:.2f}x"
        )
        verdicts.append(right)
    print(f"\n{banner()}")
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
