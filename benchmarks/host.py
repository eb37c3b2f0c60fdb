"""What a benchmark ran on: CPU model and the flags that decide int8 / fp32 kernels, and the load average.

Every benchmark table prints :func:`banner` so a number is never read without the CPU it came from
(int8 is 2x fp32 with VNNI / AVX-512 kernels and 40-60x slower without them).
"""

from __future__ import annotations

import os
from pathlib import Path

KERNEL_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
"""The /proc/cpuinfo flags that decide which GEMM kernels torch can use."""


def cpu_model_and_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """``("AMD EPYC ...", ["avx", "avx2", ...])``: the first CPU's model name and its kernel-relevant flags."""
    model, flags = "unknown CPU", set[str]()
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in KERNEL_FLAGS if f in flags]


def banner() -> str:
    """Two lines: CPU (model, usable CPUs, flags, no-VNNI warning) and the load average now."""
    model, flags = cpu_model_and_flags()
    vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    note = "" if vnni else " (no VNNI/AMX: torch's int8 GEMM has no fast kernel here)"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"CPU: {model}, {cpus} CPUs, flags {' '.join(flags) or '-'}{note}\nload average: {load}"
