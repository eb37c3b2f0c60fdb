"""Run every benchmark in turn: ``uv run python -m benchmarks [NAME ...]`` (``make bench``).

Each benchmark is its own module printing its own table (``uv run python -m benchmarks.<name>``); this
runs them one after another in fresh processes, so one's imports and caches never flatter another.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    "analysis_throughput",
    "precision_choice",
    "analysis_cold_start",
    "analysis_load",
    "analysis_restore",
    "analysis_memory",
    "image_size",
    "bundle_formats",
    "bundle_fetch",
    "ingestion_api_calls",
    "soak",
    "dashboard_get",
)


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"])
        print(f"----- {name}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
