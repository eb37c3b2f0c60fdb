"""Installed size of the analysis image's dependency set, installed the way the Dockerfile installs it.

Runs the Dockerfile's own ``services/analysis/docker/image_requirements.py`` (locked, hashed, no CUDA
packages), installs ``requirements.txt`` with ``uv pip install --target --require-hashes --no-deps`` and
bytecode compiled (``UV_COMPILE_BYTECODE=1``), then the CPU-only torch wheel, and the two workspace
members; then measures the tree and the largest packages. Here (no Docker engine, no network access to
the PyTorch index) the CPU wheel is the one in this machine's pip find-links wheelhouse, found as
``.ci/image-rehearsal.sh`` finds the one it serves in the index's place (:func:`find_links_torch_wheel`):

    uv run python -m benchmarks.image_size [--torch-wheel PATH]   # default: the newest torch-*+cpu wheel there

For the same reason it installs for this interpreter (3.11) rather than the image's 3.12; the
difference is a few MB of bytecode. The Lambda base image itself is not counted.

Target (issue 3): <= 1.5 GB (seed 001: < 3 GB).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_BYTES = 1.5e9


def find_links_torch_wheel() -> Path:
    """The newest CPU torch wheel for this interpreter in pip's ``global.find-links`` wheelhouse: what
    ``.ci/image-rehearsal.sh`` serves on loopback in place of the PyTorch CPU index (its version may differ
    from uv.lock's)."""
    # The rehearsal's `python3 -m pip config get global.find-links`: the python3 on PATH outside this venv
    # (whose interpreter has no pip).
    venv_bin = Path(sys.prefix) / "bin"
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin)
    out = subprocess.run(
        [shutil.which("python3", path=path) or "python3", "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
        check=False,
    )
    find_links = out.stdout.strip() if out.returncode == 0 else ""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = list(Path(find_links).glob(f"torch-*+cpu-{tag}-{tag}-*x86_64.whl")) if find_links else []
    if not wheels:
        raise SystemExit(f"no CPU torch wheel for {tag} x86_64 in pip's find-links ({find_links or 'unset'})")
    # sort -V on the version, as the rehearsal does
    return max(wheels, key=lambda w: [int(n) for n in re.findall(r"\d+", w.name.split("-")[1].split("+")[0])])


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install_dependency_set(target: Path, torch_wheel: Path | None = None) -> Path:
    """Install what the Dockerfile installs (locked + hashed deps, CPU torch, the two members) into ``target``.

    ``torch_wheel``: None takes :func:`find_links_torch_wheel`."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is not on PATH")
    torch_wheel = torch_wheel or find_links_torch_wheel()
    if not torch_wheel.is_file():
        raise SystemExit(f"CPU torch wheel not found: {torch_wheel}")
    reqs = target.parent / (target.name + "-reqs")
    script = REPO / "services/analysis/docker/image_requirements.py"
    subprocess.run([sys.executable, str(script), "--uv", uv, "--out", str(reqs)], cwd=REPO, check=True)
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1", "UV_NO_INSTALLER_METADATA": "1", "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    install = [uv, "pip", "install", "--quiet", "--python", sys.executable, "--target", str(target), "--no-deps"]
    subprocess.run([*install, "--require-hashes", "-r", str(reqs / "requirements.txt")], env=env, check=True)
    subprocess.run([*install, str(torch_wheel)], env=env, check=True)
    return install_members(target)


def install_members(target: Path) -> Path:
    """(Re)install the two workspace members into ``target``: a cached dependency set must not run stale code."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is not on PATH")
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1", "UV_NO_INSTALLER_METADATA": "1", "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    install = [uv, "pip", "install", "--quiet", "--python", sys.executable, "--target", str(target), "--no-deps"]
    install += ["--reinstall-package", "sentiment-shared", "--reinstall-package", "sentiment-analysis", "--upgrade"]
    subprocess.run([*install, str(REPO / "packages/shared"), str(REPO / "services/analysis")], env=env, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-wheel", type=Path, help="default: the newest CPU torch wheel in pip's find-links")
    args = parser.parse_args()
    torch_wheel = args.torch_wheel or find_links_torch_wheel()
    work = Path(tempfile.mkdtemp(prefix="image-size-"))
    try:
        target = install_dependency_set(work / "task", torch_wheel)
        gpu = [p.name for p in target.iterdir() if p.name.lower().startswith(("nvidia", "triton", "cuda"))]
        sizes: dict[str, int] = defaultdict(int)
        for entry in target.iterdir():
            name = entry.name.split("-")[0] if entry.name.endswith((".dist-info", ".data")) else entry.name
            sizes[name.lower()] += tree_bytes(entry) if entry.is_dir() else entry.stat().st_size
        total = sum(sizes.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    pinned = (REPO / "uv.lock").read_text(encoding="utf-8")
    locked_torch = pinned.split('name = "torch"\nversion = "', 1)[1].split('"', 1)[0]
    print(f"\nInstalled size of the image's dependency set (torch: {torch_wheel.name}; locked: {locked_torch})")
    print(f"{'package':32s}{'MB':>10s}")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:12]:
        print(f"{name:32s}{size / 1e6:10.1f}")
    print(f"{'total (' + str(len(sizes)) + ' top-level entries)':32s}{total / 1e6:10.1f}")
    print(f"\nGPU-only packages installed: {gpu or 'none'}")
    print(f"Target <= {TARGET_BYTES / 1e9:.1f} GB: {total / 1e9:.2f} GB  {'PASS' if total <= TARGET_BYTES else 'FAIL'}")


if __name__ == "__main__":
    main()
