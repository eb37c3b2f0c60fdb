"""Write the analysis image's dependency set from uv.lock: CPU-only torch, no CUDA wheels.

Run from the repository root (the Dockerfile does, and so does the test that checks the result):

    python3 services/analysis/docker/image_requirements.py --out DIR [--uv uv]

It runs ``uv export --frozen --no-dev --no-emit-workspace --package sentiment-analysis`` (the locked,
hashed third-party dependencies of the function) and writes

* ``DIR/requirements.txt``: every locked requirement with its hashes, except torch and the CUDA
  stack torch's PyPI wheel pulls in on Linux (``nvidia-*``, ``cuda-*``, ``triton``);
* ``DIR/torch.txt``: ``torch==<locked version>+cpu``, installed with ``--no-deps`` from the PyTorch
  CPU index (its own dependencies are in requirements.txt, locked and hashed).

Standard library only: it runs on the Lambda base image's Python before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = "sentiment-analysis"
GPU_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def export(uv: str) -> str:
    return subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-workspace", "--package", PACKAGE, "--no-header"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def split_blocks(exported: str) -> list[str]:
    """One block per requirement: its ``name==version ; marker`` line plus its ``--hash`` lines."""
    blocks: list[list[str]] = []
    for line in exported.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return ["\n".join(block) for block in blocks]


def select(exported: str) -> tuple[list[str], str, list[str]]:
    """(kept requirement blocks, torch's locked version, dropped GPU-only package names)."""
    kept: list[str] = []
    dropped: list[str] = []
    torch_version = ""
    for block in split_blocks(exported):
        match = _NAME.match(block)
        if match is None:
            raise SystemExit(f"unexpected line in uv export output: {block.splitlines()[0]!r}")
        name, version = normalize(match.group(1)), match.group(2)
        if name == "torch":
            torch_version = version.split("+", 1)[0]
        elif GPU_ONLY.match(name):
            dropped.append(name)
        else:
            kept.append(block)
    if not torch_version:
        raise SystemExit(f"torch is not among the locked dependencies of {PACKAGE}")
    return kept, torch_version, dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for requirements.txt and torch.txt")
    parser.add_argument("--uv", default="uv", help="the uv executable")
    args = parser.parse_args(argv)
    kept, torch_version, dropped = select(export(args.uv))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "requirements.txt").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (args.out / "torch.txt").write_text(f"torch=={torch_version}+cpu\n", encoding="utf-8")
    sys.stderr.write(f"{len(kept)} requirements + torch=={torch_version}+cpu; dropped {len(dropped)} GPU-only\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
