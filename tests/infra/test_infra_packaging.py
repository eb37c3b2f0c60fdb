"""The ingestion ZIP builder and the image tag: reproducible bytes, self-contained imports, honest cache keys."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from infra_mocks import REPO_ROOT

from sentiment_infra.packaging import (
    ANALYSIS_IMAGE_INPUTS,
    INGESTION,
    LAMBDA_PLATFORM,
    ZIP_EPOCH,
    ZipBuild,
    analysis_image_tag,
    build_function_zip,
    source_digest,
    stage_image_context,
    write_reproducible_zip,
    zip_cache_key,
)

pytestmark = pytest.mark.infra

_IMPORT_CHECK = """
import importlib, json, sys, sysconfig
root = sys.argv[1]
sys.path.insert(0, root)
module_name, _, attr = sys.argv[2].rpartition(".")
handler = getattr(importlib.import_module(module_name), attr)
assert callable(handler)
stdlib = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})
outside = sorted(
    name for name, mod in list(sys.modules.items())
    if getattr(mod, "__file__", None)
    and not mod.__file__.startswith(root)
    and not (mod.__file__.startswith(stdlib) and "site-packages" not in mod.__file__)
)
print(json.dumps({"outside": outside, "loaded": len(sys.modules)}))
"""


@pytest.mark.slow
def test_building_twice_gives_identical_bytes(local_zips: tuple[ZipBuild, ZipBuild]) -> None:
    # Given two uncached builds of the same workspace into different directories
    first, second = local_zips
    # Then the archives are byte-for-byte the same
    assert first.path != second.path
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256


@pytest.mark.slow
def test_archive_imports_the_handler_with_only_its_own_dependencies(
    local_zips: tuple[ZipBuild, ZipBuild], tmp_path: Path
) -> None:
    # Given the archive unpacked on its own
    with zipfile.ZipFile(local_zips[0].path) as archive:
        archive.extractall(tmp_path)
    # When a fresh interpreter without site-packages (-I -S) imports the handler from it
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "LANG": "C.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _IMPORT_CHECK, str(tmp_path), INGESTION.handler],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    # Then it imports, and nothing came from outside the archive but the standard library
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outside"] == []
    assert report["loaded"] > 100


@pytest.mark.slow
def test_lambda_archive_is_normalized_and_built_for_the_lambda_runtime(lambda_zip: ZipBuild) -> None:
    with zipfile.ZipFile(lambda_zip.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    # Sorted entries, one fixed timestamp, Unix 0644/0755 modes, no caches or console-script shims
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {ZIP_EPOCH}
    assert {info.create_system for info in infos} == {3}
    assert {(info.external_attr >> 16) & 0o777 for info in infos} <= {0o644, 0o755}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("bin/", ".lock"))]
    # The function's own code and the shared library, without the dev tools or the analysis stack
    assert "sentiment_ingestion/handler.py" in names
    assert "sentiment_shared/settings.py" in names
    top = {n.split("/", 1)[0] for n in names}
    assert not top & {"pytest", "moto", "torch", "transformers", "pulumi", "sentiment_analysis", "sentiment_infra"}
    # Compiled dependencies are the CPython 3.12 manylinux x86_64 builds Lambda's python3.12 runs
    native = [n for n in names if n.endswith(".so")]
    assert native
    assert all(re.search(r"cpython-312-x86_64-linux-gnu\.so$|abi3\.so$", n) for n in native), native
    assert lambda_zip.path.stat().st_size < 50 * 1024 * 1024  # Lambda's direct-upload limit


@pytest.mark.slow
def test_a_second_build_with_unchanged_inputs_reuses_the_cached_archive(local_zips: tuple[ZipBuild, ZipBuild]) -> None:
    # Given a cached build of a workspace
    cached = local_zips[0]
    workspace = cached.path.parent.parent
    before = cached.path.stat().st_mtime_ns
    # When the same inputs are built again
    again = build_function_zip(INGESTION, workspace, cached.path.parent, python_version=cached.python_version)
    # Then the archive is reused, untouched
    assert again == cached
    assert again.path.stat().st_mtime_ns == before
    # And any change to a shipped source file gives a new cache key
    handler = workspace / "services" / "ingestion" / "src" / "sentiment_ingestion" / "handler.py"
    original = handler.read_bytes()
    try:
        handler.write_bytes(original + b"\n# edited\n")
        assert zip_cache_key(workspace, cached.python_version, LAMBDA_PLATFORM, INGESTION.members) != cached.cache_key
    finally:
        handler.write_bytes(original)


def _tree(root: Path, order: list[str]) -> None:
    for index, name in enumerate(order):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
        os.utime(path, (1_000_000 + index * 77, 1_000_000 + index * 77))
    (root / "pkg" / "__pycache__").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(os.urandom(16))


def test_zip_bytes_do_not_depend_on_file_times_creation_order_or_caches(tmp_path: Path) -> None:
    # Given the same files created in different orders with different times (and a random cache file)
    files = ["pkg/__init__.py", "pkg/mod.py", "pkg/data/x.json", "top.py"]
    _tree(tmp_path / "a", files)
    _tree(tmp_path / "b", list(reversed(files)))
    # When both trees are zipped
    write_reproducible_zip(tmp_path / "a", tmp_path / "a.zip")
    write_reproducible_zip(tmp_path / "b", tmp_path / "b.zip")
    # Then the archives are identical and hold no cache
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.namelist() == sorted(files)


def test_source_digest_follows_content_and_names_but_not_caches(tmp_path: Path) -> None:
    _tree(tmp_path, ["src/a.py", "src/b.py"])
    first = source_digest(tmp_path, ["src"])
    # A new cache file changes nothing
    (tmp_path / "src" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    assert source_digest(tmp_path, ["src"]) == first
    # An edit, a rename or a salt does
    (tmp_path / "src" / "a.py").write_text("changed\n")
    edited = source_digest(tmp_path, ["src"])
    assert edited != first
    (tmp_path / "src" / "b.py").rename(tmp_path / "src" / "c.py")
    assert source_digest(tmp_path, ["src"]) not in {first, edited}
    assert source_digest(tmp_path, ["src"], salt="3.12") != source_digest(tmp_path, ["src"])


def test_image_tag_is_stable_and_valid_for_ecr() -> None:
    tag = analysis_image_tag(REPO_ROOT)
    assert tag == analysis_image_tag(REPO_ROOT)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag)


def copied_sources(dockerfile_text: str) -> list[str]:
    """Build-context paths a Dockerfile COPYs/ADDs (copies between stages or from images excluded)."""
    sources: list[str] = []
    # One instruction per logical line (backslash continuations joined)
    for line in dockerfile_text.replace("\\\n", " ").splitlines():
        parts = line.split()
        if not parts or parts[0].upper() not in {"COPY", "ADD"}:
            continue
        if any(p.startswith("--from") for p in parts[1:]):
            continue
        args = [p for p in parts[1:] if not p.startswith("--")]
        if args and args[0].startswith("["):
            args = json.loads(" ".join(args))
        sources += args[:-1]
    return sources


def test_the_dockerfile_parser_finds_context_copies_only() -> None:
    text = """FROM python:3.12 AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /bin/uv
COPY uv.lock pyproject.toml ./
COPY --chown=1000 packages/shared \\
     packages/shared
COPY --from=build /opt /opt
ADD ["services/analysis/src", "/var/task/src"]
"""
    assert copied_sources(text) == ["uv.lock", "pyproject.toml", "packages/shared", "services/analysis/src"]


def test_the_image_tag_covers_everything_the_dockerfile_copies() -> None:
    # An input the tag ignores would give two different images one tag, and the tag would lie
    dockerfile = REPO_ROOT / "services" / "analysis" / "Dockerfile"
    if not dockerfile.is_file():
        pytest.skip("services/analysis/Dockerfile is not in this checkout")
    sources = copied_sources(dockerfile.read_text())
    assert sources, "the Dockerfile copies nothing from the context?"
    for source in sources:
        normalized = source.rstrip("/").removeprefix("./")
        covered = any(
            normalized == inp or normalized.startswith(f"{inp}/") or inp.startswith(f"{normalized}/")
            for inp in ANALYSIS_IMAGE_INPUTS
        )
        assert covered, f"{source} is copied into the image but not part of the tag's inputs"


def test_every_stage_that_runs_uv_gets_the_whole_workspace_manifest_set() -> None:
    # uv resolves `{ workspace = true }` sources through the root, and refuses a workspace whose member
    # manifests are missing: a new member must reach the Dockerfile, .dockerignore and the image inputs.
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    manifests = [
        "pyproject.toml",
        "uv.lock",
        *(f"{m}/pyproject.toml" for m in root["tool"]["uv"]["workspace"]["members"]),
    ]
    text = (REPO_ROOT / "services" / "analysis" / "Dockerfile").read_text()
    stages = re.split(r"(?m)^FROM ", text)[1:]
    # A stage has what it copies and what the stage it starts FROM has
    named = {stage.split()[2]: stage for stage in stages if stage.split()[1:2] == ["AS"]}

    def copied_into(stage: str) -> list[str]:
        parent = named.get(stage.split(maxsplit=1)[0])
        return copied_sources(stage) + (copied_into(parent) if parent else [])

    uv_stages = [stage for stage in stages if "/bin/uv" in stage and "RUN" in stage]
    assert len(uv_stages) >= 2, "expected the deps and members stages to run uv"
    allowed = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    for stage in uv_stages:
        copied = copied_into(stage)
        missing = [m for m in manifests if m not in copied and f"{m.rsplit('/', 1)[0]}/" not in copied]
        assert not missing, f"stage {stage.split()[2]} does not copy {missing}"
    for manifest in manifests:
        assert f"!{manifest}" in allowed, f".dockerignore keeps {manifest} out of the build context"
        assert any(manifest == i or manifest.startswith(f"{i}/") for i in ANALYSIS_IMAGE_INPUTS), manifest


def test_image_context_holds_exactly_the_image_inputs_and_nothing_stale(tmp_path: Path) -> None:
    # Given a repository with image inputs, unrelated files and a previous, stale staging
    repo = tmp_path / "repo"
    _tree(repo, ["services/analysis/Dockerfile", "packages/shared/src/x.py", "uv.lock", "tests/test_x.py", "docs/a.md"])
    dest = tmp_path / "context"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "stale.txt").write_text("left over")
    # When the context is staged
    stage_image_context(repo, dest)
    # Then it holds the inputs, laid out as in the repository, and nothing else
    staged = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert staged == ["packages/shared/src/x.py", "services/analysis/Dockerfile", "uv.lock"]
    assert analysis_image_tag(dest) == analysis_image_tag(repo)
