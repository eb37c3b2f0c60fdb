"""``sentiment-local run`` at a real feed's size: end-to-end items/s and the process tree's peak RSS.

Generates two feeds of ``--items`` items each (:mod:`benchmarks.local_feed`: one in ten 3,000-6,000
characters; markup, emoji, right-to-left text), then runs the README's main job as a user does (a
subprocess, the small model with ``--model-dir``) twice on one state directory: feed A on a fresh
table, then feed B on the table already holding A's items. Prints per run: items ingested and
analysed, wall time, items/s end to end, time per new item, the peak RSS of the process tree (sampled
every 0.2 s from /proc) and the run's own timings.

Targets (issue 21): every item analysed; peak RSS <= 1.5 GB; >= 10 items/s end to end; the second run
no slower per new item than the first (within 20 %).

    uv run python -m benchmarks.local_pipeline [--items 2000] [--model-dir ../shared/models/sst2-distilbert-minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.host import banner
from benchmarks.local_feed import write_feed

SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "sst2-distilbert-minilm"
TARGET_RSS_GB = 1.5
TARGET_ITEMS_PER_S = 10.0
TARGET_SECOND_RUN_SLOWDOWN = 1.2


def _tree_rss(root: int) -> int:
    """Bytes of resident memory of ``root`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = int(statm[1]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_once(feed: Path, state_dir: Path, model_dir: Path, *, fresh: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "sentiment_local.cli", "run", "--feed", str(feed), "--model-dir", str(model_dir)]
    command += ["--state-dir", str(state_dir), "--json"] + (["--fresh"] if fresh else [])
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"sentiment-local run failed (exit {proc.returncode})")
    report = json.loads(out)
    ingested = int(report["ingested"])
    return {
        "ingested": ingested,
        "analyzed": int(report["analyzed"]),
        "failed": int(report["failed"]),
        "wall_s": round(wall, 1),
        "items_per_s": round(ingested / wall, 2) if wall else 0.0,
        "s_per_new_item": round(wall / max(ingested, 1), 4),
        "peak_rss_gb": round(peak / 1e9, 3),
        "timings": report["timings"],
        "cost": report.get("cost_per_1000_items"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--model-dir", type=Path, default=SHARED_MODEL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(banner(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        feed_a = write_feed(Path(tmp) / "feed-a.xml", args.items, seed=1, prefix="a")
        feed_b = write_feed(Path(tmp) / "feed-b.xml", args.items, seed=2, prefix="b")
        state = Path(tmp) / "state"
        first = run_once(feed_a, state, args.model_dir, fresh=True)
        print(f"first run:  {json.dumps(first)}", flush=True)
        second = run_once(feed_b, state, args.model_dir, fresh=False)
        print(f"second run: {json.dumps(second)}", flush=True)
    print(banner())
    ratio = second["s_per_new_item"] / max(first["s_per_new_item"], 1e-9)
    print(f"{'run':<7} {'ingested':>8} {'analyzed':>8} {'wall s':>7} {'items/s':>8} {'peak RSS GB':>11}  timings (s)")
    for name, r in (("first", first), ("second", second)):
        timings = " ".join(f"{k}={v:.1f}" for k, v in r["timings"].items())
        print(
            f"{name:<7} {r['ingested']:>8} {r['analyzed']:>8} {r['wall_s']:>7.1f} {r['items_per_s']:>8.2f} "
            f"{r['peak_rss_gb']:>11.3f}  {timings}"
        )
    print(
        f"second run per new item / first: {ratio:.2f} (target <= {TARGET_SECOND_RUN_SLOWDOWN}); "
        f"targets: RSS <= {TARGET_RSS_GB} GB, >= {TARGET_ITEMS_PER_S} items/s, every item analysed"
    )


if __name__ == "__main__":
    main()
