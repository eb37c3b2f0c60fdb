"""The preview and deploy workflows: pinned actions, minimal permissions, the gates the issue asks for."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_mocks import REPO_ROOT

pytestmark = pytest.mark.infra

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[str, Any]:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1)
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_every_action_is_pinned_by_full_commit_sha(name: str) -> None:
    uses = [step["uses"] for step in steps(load(name)) if "uses" in step]
    assert uses
    assert [u for u in uses if not PINNED.match(u)] == []
    # and each pin carries its version as a comment, for humans and update bots
    text = (WORKFLOWS / name).read_text()
    for use in uses:
        assert re.search(rf"{re.escape(use)} # v\d", text), use


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_permissions_default_to_none_and_jobs_ask_for_what_they_use(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}
    for job_name, job in workflow["jobs"].items():
        permissions = job["permissions"]
        assert permissions.get("contents") == "read", job_name
        assert set(permissions) <= {"contents", "id-token", "pull-requests"}, job_name
        uses = " ".join(step.get("uses", "") for step in job["steps"])
        assert ("id-token" in permissions) == ("configure-aws-credentials" in uses), job_name
        for step in job["steps"]:
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False, job_name


def test_preview_runs_per_stack_with_a_pr_comment_and_builds_the_image() -> None:
    workflow = load("preview.yml")
    assert set(workflow["on"]) == {"pull_request"}
    preview = workflow["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    (pulumi,) = [s for s in preview["steps"] if "pulumi/actions" in s.get("uses", "")]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert "${{ matrix.stack }}" in pulumi["with"]["stack-name"]
    build = "\n".join(s.get("run", "") for s in workflow["jobs"]["analysis-image"]["steps"])
    assert "--file services/analysis/Dockerfile" in build
    assert "--platform linux/amd64" in build
    assert "--provenance=false" in build
    assert "--sbom=false" in build
    assert "bash services/analysis/smoke_test.sh" in build


def test_deploy_smoke_tests_the_image_before_pulumi_up_pushes_it() -> None:
    dev = load("deploy.yml")["jobs"]["dev"]["steps"]
    names = [step.get("name", step.get("uses", "")) for step in dev]
    smoke = names.index("Build and smoke-test the analysis image")
    up = next(i for i, step in enumerate(dev) if str(step.get("uses", "")).startswith("pulumi/actions@"))
    assert smoke < up
    assert "bash services/analysis/smoke_test.sh" in dev[smoke]["run"]
    assert "--provenance=false" in dev[smoke]["run"]


def test_deploy_goes_to_dev_then_to_prod_behind_the_prod_environment() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    dev, prod = workflow["jobs"]["dev"], workflow["jobs"]["prod"]
    assert prod["needs"] == "dev"
    assert prod["environment"] == "prod"
    for job, stack in ((dev, "dev"), (prod, "prod")):
        (pulumi,) = [s for s in job["steps"] if "pulumi/actions" in s.get("uses", "")]
        assert pulumi["with"]["command"] == "up"
        assert pulumi["with"]["stack-name"].endswith(f"/{stack}")


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_no_expression_is_expanded_inside_a_shell_script(name: str) -> None:
    # Template injection: values reach scripts through env, never through ${{ }} in run:
    for step in steps(load(name)):
        assert "${{" not in step.get("run", ""), step.get("name")


def test_zizmor_finds_nothing() -> None:
    zizmor = shutil.which("zizmor")
    assert zizmor is not None, "zizmor is in the dev group"
    result = subprocess.run(
        [zizmor, "--offline", "--persona=auditor", "--no-progress", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=Path(REPO_ROOT),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploys_never_produce_attestation_indexes() -> None:
    for job in load("deploy.yml")["jobs"].values():
        (pulumi,) = [s for s in job["steps"] if "pulumi/actions" in s.get("uses", "")]
        assert pulumi["env"]["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"
