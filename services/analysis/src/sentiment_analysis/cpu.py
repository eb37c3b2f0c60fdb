"""How many CPUs this process may really use: the thread count inference runs with.

Never ``os.cpu_count()``: a cgroup quota, the affinity mask and, on Lambda, the memory size each cap it
(on a 2,048 MB function two threads on ~1.16 vCPU of quota are several times slower than one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

LAMBDA_MB_PER_VCPU = 1769
"""AWS: a function gets one vCPU of quota per 1,769 MB of memory."""


def _cgroup_cpu_quota(root: Path) -> float | None:
    """vCPUs allowed by the cgroup (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def available_cpus(
    *,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    environ: Mapping[str, str] | None = None,
    affinity: Callable[[], set[int]] | None = None,
) -> int:
    """Whole CPUs this process may really use: min of affinity, cgroup quota and Lambda's memory share.

    Lambda shows 2 vCPUs up to 3,008 MB while the quota is memory / 1,769 MB, so the memory size
    (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``) is part of the answer; a fractional quota rounds down
    (at least 1) because an oversubscribed thread stalls the whole GEMM.
    """
    env = os.environ if environ is None else environ
    get_affinity = affinity or (lambda: os.sched_getaffinity(0))
    try:
        limits: list[float] = [len(get_affinity())]
    except (AttributeError, OSError):  # not Linux
        limits = [float(os.cpu_count() or 1)]
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        limits.append(quota)
    memory_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory_mb.isdigit():
        limits.append(int(memory_mb) / LAMBDA_MB_PER_VCPU)
    return max(1, math.floor(min(limits)))
