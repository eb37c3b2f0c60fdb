"""The analysis image, checked without a Docker engine: its dependency set, Dockerfile contract and build
context (hadolint runs in ``make security-lint``).

The dependency set is produced by running the very script the Dockerfile runs
(``services/analysis/docker/image_requirements.py``) and compared with uv.lock.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "services" / "analysis" / "Dockerfile"
SCRIPT = REPO / "services" / "analysis" / "docker" / "image_requirements.py"
GPU_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def image_requirements(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    out = tmp_path_factory.mktemp("image-reqs")
    subprocess.run([sys.executable, str(SCRIPT), "--uv", uv, "--out", str(out)], cwd=REPO, check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def locked_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    versions: dict[str, set[str]] = defaultdict(set)
    for package in lock["package"]:
        if "version" in package:
            versions[_norm(package["name"])].add(package["version"])
    return versions


def _requirements(path: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """name -> [(version, hashes)] from a hashed requirements file (one entry per marker variant)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        assert match, f"unexpected requirement line: {line!r}"
        found[_norm(match.group(1))].append((match.group(2), re.findall(r"--hash=sha256:[0-9a-f]{64}", line)))
    return found


def test_dependency_set_has_no_gpu_packages_and_matches_the_lock(
    image_requirements: Path, locked_versions: dict[str, set[str]]
) -> None:
    # Given the dependency set the Dockerfile installs
    requirements = _requirements(image_requirements / "requirements.txt")
    torch_pin = (image_requirements / "torch.txt").read_text(encoding="utf-8").strip()
    # Then no CUDA / triton package is in it, and torch is pinned to the CPU build of the locked version
    assert not [name for name in requirements if GPU_ONLY.match(name)]
    assert "torch" not in requirements
    assert torch_pin == f"torch=={next(iter(locked_versions['torch']))}+cpu"
    # And every other requirement is hashed at exactly its uv.lock version
    for name, entries in requirements.items():
        for version, hashes in entries:
            assert version in locked_versions[name], f"{name}=={version} is not the locked version"
            assert hashes, f"{name} has no hashes"
    # And what the function imports is there
    for needed in ("transformers", "tokenizers", "safetensors", "aws-lambda-powertools", "boto3", "pydantic"):
        assert needed in requirements


def test_dockerfile_follows_the_lambda_image_contract() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    # The Lambda base image, the handler contract, a non-root user, precompiled bytecode
    assert "ARG LAMBDA_BASE=public.ecr.aws/lambda/python:3.12" in text
    assert text.rstrip().endswith('CMD ["sentiment_analysis.handler.handler"]')
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    # (set once, in the stage both uv stages start from)
    assert text.count("UV_COMPILE_BYTECODE=1") == 1
    assert text.count("FROM workspace AS ") == 2
    # The same script the dependency test runs, and CPU-only torch
    assert "python3 /build/image_requirements.py" in text
    assert "https://download.pytorch.org/whl/cpu" in text
    # Third-party dependencies are installed before the workspace members' code is copied in
    assert text.index("/opt/deps --require-hashes") < text.index("COPY services/analysis/src")


def test_build_context_allows_exactly_what_the_dockerfile_copies() -> None:
    # Given the .dockerignore allow-list
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    # Then every local COPY source is allowed, and exists
    sources = [
        part
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for part in line.split()[1:-1]
    ]
    assert sources
    for source in sources:
        assert any(source == a or source.startswith(a + "/") for a in allowed), f"{source} is ignored"
        assert (REPO / source).exists(), source
    # And nothing secret or bulky is let in
    assert not [a for a in allowed if a in (".venv", ".git", "tests", ".env")]
