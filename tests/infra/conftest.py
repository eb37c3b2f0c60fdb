"""Fixtures of the infra layer: the program run once per stack under the mocks, and the built ingestion ZIPs."""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from infra_mocks import REPO_ROOT, STACKS, ProgramRun, run_program

from sentiment_infra.packaging import INGESTION, ZipBuild, build_function_zip, iter_files


@pytest.fixture(scope="session")
def programs() -> dict[str, ProgramRun]:
    """``infra/__main__.py`` run under the mocks with each committed stack config."""
    return {stack: run_program(stack) for stack in STACKS}


@pytest.fixture(scope="session", params=STACKS)
def program(request: pytest.FixtureRequest, programs: dict[str, ProgramRun]) -> ProgramRun:
    return programs[request.param]


@pytest.fixture(scope="session")
def lambda_zip() -> ZipBuild:
    """The deployable ZIP (Python 3.12, manylinux x86_64), from the same cache the program uses."""
    return build_function_zip(INGESTION, REPO_ROOT, REPO_ROOT / "build" / "lambda")


def _workspace_snapshot(dest: Path) -> Path:
    """Copy what the ZIP is built from (lock, every member's pyproject, the shipped members) to ``dest``."""
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    paths = ["uv.lock", "pyproject.toml", *(f"{m}/pyproject.toml" for m in root["tool"]["uv"]["workspace"]["members"])]
    paths += [f"{m}/src" for m in INGESTION.members]
    for source in iter_files(REPO_ROOT, paths):
        target = dest / source.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="session")
def local_zips(tmp_path_factory: pytest.TempPathFactory) -> tuple[ZipBuild, ZipBuild]:
    """Builds for this machine's Python from two copies of the workspace at different paths.

    Copies, because the checkout may change while the suite runs; two paths, so equal bytes also prove
    that no absolute path leaks into the archive. The first build goes through the cache.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    snapshot = _workspace_snapshot(tmp_path_factory.mktemp("workspace-a"))
    copy = shutil.copytree(snapshot, tmp_path_factory.mktemp("workspace-b") / "elsewhere")
    first = build_function_zip(INGESTION, snapshot, snapshot / "build", python_version=version)
    second = build_function_zip(
        INGESTION, copy, tmp_path_factory.mktemp("zip-b"), python_version=version, use_cache=False
    )
    return first, second
