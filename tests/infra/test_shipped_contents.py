"""The functions ship only what they run: no client SDK, no local tooling, no test or deploy tools.

The ingestion ZIP is built for real (the session's cached build) and its top-level entries checked;
every function's locked third-party set comes from the same ``uv export`` the builds use; the analysis
image installs exactly the shared library and its own member.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from sentiment_infra.packaging import ANALYSIS_IMAGE_INPUTS, DASHBOARD, INGESTION, ZipBuild

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_IN_A_FUNCTION = ("moto", "pulumi", "pulumi-aws", "pulumi-docker", "vadersentiment", "pytest", "mypy", "ruff")
"""Distributions that belong to tests, deployment or outside callers, never to a function."""
OTHER_MEMBERS = ("sentiment_client", "sentiment_local", "sentiment_infra", "sentiment_model")


def _exported(package: str) -> set[str]:
    out = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes", "--package", package],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.group(1).lower() for m in re.finditer(r"(?m)^([A-Za-z0-9_.-]+)==", out)}


@pytest.mark.parametrize("package", ["sentiment-ingestion", "sentiment-dashboard", "sentiment-analysis"])
def test_no_function_locks_test_deploy_or_client_dependencies(package: str) -> None:
    exported = _exported(package)
    assert exported, f"uv export listed nothing for {package}"
    assert not exported & set(NOT_IN_A_FUNCTION), f"{package} would ship {sorted(exported & set(NOT_IN_A_FUNCTION))}"


def _member_with_script(script: str) -> str:
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for member in root["tool"]["uv"]["workspace"]["members"]:
        project = tomllib.loads((REPO_ROOT / member / "pyproject.toml").read_text())["project"]
        if script in project.get("scripts", {}):
            return str(project["name"])
    raise AssertionError(f"no workspace member installs the {script} console script")


def test_the_sentiment_model_command_installs_without_pulumi() -> None:
    # It publishes a bundle with sentiment_shared alone: whoever installs it should not get the Pulumi SDKs
    member = _member_with_script("sentiment-model")
    exported = _exported(member)
    assert {"huggingface-hub", "tqdm"} <= exported, f"{member} lacks what the command imports: {sorted(exported)}"
    pulumi = sorted(d for d in exported if d.startswith("pulumi"))
    assert not pulumi, f"installing {member} (for sentiment-model) pulls {pulumi}"


def test_zip_members_are_the_shared_library_and_the_function_only() -> None:
    assert INGESTION.members == ("packages/shared", "services/ingestion")
    assert DASHBOARD.members == ("packages/shared", "services/dashboard")


@pytest.mark.slow
def test_ingestion_zip_ships_only_what_the_handler_runs(local_zips: tuple[ZipBuild, ZipBuild]) -> None:
    with zipfile.ZipFile(local_zips[0].path) as archive:
        names = archive.namelist()
        ours_code = ("sentiment_ingestion/", "sentiment_shared/settings.py")
        ingestion_code = "".join(
            archive.read(n).decode() for n in names if n.startswith(ours_code) and n.endswith(".py")
        )
    top = {name.split("/", 1)[0] for name in names}
    ours = {t for t in top if t.startswith("sentiment_") and not t.endswith((".dist-info", ".egg-info"))}
    assert ours == {"sentiment_shared", "sentiment_ingestion"}
    assert not top & set(OTHER_MEMBERS)
    assert not {t for t in top if t.split("-", 1)[0].lower() in ("moto", "pulumi", "pulumi_aws", "vadersentiment")}
    assert "sentiment_shared/provision.py" not in names
    assert "sentiment_shared/client.py" not in names
    assert "sentiment_shared/fakes.py" not in names, "the port fakes belong to the tests"
    assert not [n for n in names if "/samples/" in n], "the sample feed belongs to the local pipeline"
    assert not re.search(r"allow_file|read_bytes|\.open\(", ingestion_code), "file feeds belong to the local pipeline"


def test_the_image_installs_the_shared_library_and_the_analysis_member_only() -> None:
    text = (REPO_ROOT / "services" / "analysis" / "Dockerfile").read_text()
    installs = re.findall(r"--target /opt/members --no-deps ([^\n\\]+)", text)
    assert len(installs) == 1, installs
    assert installs[0].split() == ["./packages/shared", "./services/analysis"]
    code_inputs = {i for i in ANALYSIS_IMAGE_INPUTS if not i.endswith((".toml", ".lock", ".dockerignore"))}
    assert code_inputs == {"packages/shared", "services/analysis"}


def test_the_release_check_zip_ships_its_module_alone_and_imports_with_the_standard_library_only(
    tmp_path: Path,
) -> None:
    import sys

    from sentiment_infra.packaging import RELEASE_CHECK_FILES, RELEASE_CHECK_HANDLER, build_release_check_zip

    # Given the hook's ZIP built twice, in two places
    first = build_release_check_zip(REPO_ROOT, tmp_path / "a")
    second = build_release_check_zip(REPO_ROOT, tmp_path / "b")
    # Then it holds exactly the hook's module (no torch, no sentiment_shared), byte for byte the same
    with zipfile.ZipFile(first.path) as archive:
        assert sorted(archive.namelist()) == sorted(RELEASE_CHECK_FILES)
    assert first.path.read_bytes() == second.path.read_bytes()
    # And its handler imports in an isolated interpreter with nothing but the ZIP on the path (boto3, which
    # the Lambda runtime provides, is imported only when the handler runs)
    module, _, function = RELEASE_CHECK_HANDLER.rpartition(".")
    probe = (
        f"import sys; sys.path.insert(0, {str(first.path)!r}); import {module} as m; "
        f"assert callable(m.{function}); assert 'boto3' not in sys.modules and 'torch' not in sys.modules; "
        'print(m.check_answer(b\'{"statusCode": 200, "results": []}\', None))'
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)
    assert "expected 4 results" in out.stdout
