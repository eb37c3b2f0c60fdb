"""The preview and deploy workflows: pinned actions, minimal permissions, the gates the issue asks for."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_mocks import PROJECT, REPO_ROOT, STACKS, ProgramRun

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


@pytest.mark.reliability(
    area="security: lint", case="third-party actions in the workflows", expected="every one pinned by a full commit SHA"
)
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


def _step_index(steps: list[dict[str, Any]], predicate: Any) -> int:
    (index,) = [i for i, step in enumerate(steps) if predicate(step)]
    return index


def _pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]


def image_urns(program: ProgramRun, stack: str) -> list[str]:
    """URNs of the AnalysisImage component and its children, as the engine names them in ``stack``."""
    component = "sentiment:analysis_image:AnalysisImage"
    prefix = f"urn:pulumi:{stack}::{PROJECT}::{component}"
    (image,) = [r for r in program.resources if r.type == component]
    children = [r for r in program.resources if r.parent_type == component]
    return [f"{prefix}::{image.name}", *(f"{prefix}${r.type}::{r.name}" for r in children)]


@pytest.mark.parametrize("stack", STACKS)
def test_deploy_smoke_tests_the_pushed_digest_then_requires_the_function_to_run_it(
    stack: str, programs: dict[str, ProgramRun]
) -> None:
    job = load("deploy.yml")["jobs"][stack]
    steps = job["steps"]
    targeted, full = _pulumi_steps(job)
    up_image = steps.index(targeted)
    smoke = _step_index(steps, lambda s: "smoke_test.sh" in s.get("run", ""))
    up_all = steps.index(full)
    check = _step_index(steps, lambda s: "stack_digests.py function" in s.get("run", ""))
    manifest = _step_index(steps, lambda s: "image_manifest.py ecr" in s.get("run", ""))
    # Build and push the image only, check it is one image manifest and smoke-test that pushed digest, then the
    # full up (which updates the function), then compare
    assert up_image < manifest < up_all
    assert up_image < smoke < up_all < check
    # The manifest check reads what ECR stored for the pushed digest, accepting indexes so that it sees one
    assert "stack_digests.py image" in steps[manifest]["run"]
    assert "aws ecr batch-get-image" in steps[manifest]["run"]
    assert "--accepted-media-types $(python3 .ci/image_manifest.py accept)" in steps[manifest]["run"]
    assert targeted["with"]["command"] == full["with"]["command"] == "up"
    assert sorted(targeted["with"]["target"].split()) == sorted(image_urns(programs[stack], stack))
    assert "target" not in full["with"]
    # The hand-off: the digest read from the state is what is pulled, smoke-tested and compared
    assert "stack_digests.py image" in steps[smoke]["run"]
    assert 'smoke_test.sh "$digest"' in steps[smoke]["run"]
    assert "TESTED_DIGEST=$digest" in steps[smoke]["run"]
    assert '"$deployed" = "$TESTED_DIGEST"' in steps[check]["run"]
    # Lambda rejects OCI indexes: never let a buildx default wrap the image in attestations
    assert job["env"]["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"


def test_deploy_runs_only_after_ci_passed_on_that_commit_dev_then_prod() -> None:
    deploy = load("deploy.yml")
    assert set(deploy["on"]) == {"workflow_call"}  # no push trigger racing CI, no manual bypass
    ci = load("ci.yml")
    caller = ci["jobs"]["deploy"]
    assert caller["needs"] == "test"
    assert caller["uses"] == "./.github/workflows/deploy.yml"
    assert caller["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    # The deploy secrets are the dev/prod environments': only an inheriting caller lets them resolve there
    assert caller["secrets"] == "inherit"
    # A newer push never cancels a run of main that may be deploying
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    assert prod["needs"] == "dev"
    assert prod["environment"] == "prod"
    for job, stack in ((dev, "dev"), (prod, "prod")):
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
        for step in _pulumi_steps(job):
            assert step["with"]["stack-name"].endswith(f"/{stack}")


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_pulumi_jobs_install_only_the_pulumi_program_with_a_pinned_uv(name: str) -> None:
    for job_name, job in load(name)["jobs"].items():
        if not _pulumi_steps(job):
            continue
        syncs = [s["run"] for s in job["steps"] if "uv sync" in s.get("run", "")]
        assert syncs == ["uv sync --locked --no-dev --package sentiment-infra"], job_name
        (setup,) = [s for s in job["steps"] if "setup-uv" in s.get("uses", "")]
        assert setup["with"]["version"] == "0.13.9", job_name


def test_stack_digests_reads_the_pushed_and_the_running_digest_from_the_state(tmp_path: Path) -> None:
    digest = "123456789012.dkr.ecr.us-east-1.amazonaws.com/analysis-repository-1a2b3c4@sha256:" + "a" * 64
    state = {
        "version": 3,
        "deployment": {
            "resources": [
                {"type": "pulumi:pulumi:Stack", "outputs": {}},
                {"type": "docker:index/image:Image", "outputs": {"repoDigest": digest, "imageName": "x:src-1"}},
                {"type": "aws:lambda/function:Function", "outputs": {"imageUri": digest, "packageType": "Image"}},
                {"type": "aws:lambda/function:Function", "outputs": {"runtime": "python3.12"}},
            ]
        },
    }
    script = REPO_ROOT / ".ci" / "stack_digests.py"

    def run(kind: str, data: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), kind], input=json.dumps(data), capture_output=True, text=True, check=False
        )

    assert run("image", state).stdout.strip() == digest
    assert run("function", state).stdout.strip() == digest
    # A tag instead of a digest, or no image at all, is an error, never an empty string that compares equal
    state["deployment"]["resources"][1]["outputs"]["repoDigest"] = "repo:latest"
    refused = run("image", state)
    assert refused.returncode != 0
    assert "not pinned by digest" in refused.stderr
    assert run("image", {"deployment": {"resources": []}}).returncode != 0


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_no_expression_is_expanded_inside_a_shell_script(name: str) -> None:
    # Template injection: values reach scripts through env, never through ${{ }} in run:
    for step in steps(load(name)):
        assert "${{" not in step.get("run", ""), step.get("name")


IMAGE_CONFIG = {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "c" * 64}


def _ecr_answer(media_type: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """What `aws ecr batch-get-image --output json` answers for one digest."""
    return {
        "images": [
            {
                "registryId": "123456789012",
                "repositoryName": "analysis-repository-1a2b3c4",
                "imageId": {"imageDigest": "sha256:" + "a" * 64},
                "imageManifest": json.dumps(manifest),
                "imageManifestMediaType": media_type,
            }
        ],
        "failures": [],
    }


@pytest.mark.reliability(
    area="deploy: image",
    case="the pushed image is an OCI index or a Docker manifest list",
    expected="the deploy job stops before the function is updated (Lambda refuses indexes)",
)
@pytest.mark.parametrize(
    ("media_type", "manifest", "refused"),
    [
        ("application/vnd.docker.distribution.manifest.v2+json", {"schemaVersion": 2, "config": IMAGE_CONFIG}, None),
        (
            "application/vnd.oci.image.manifest.v1+json",
            {"schemaVersion": 2, "config": {**IMAGE_CONFIG, "mediaType": "application/vnd.oci.image.config.v1+json"}},
            None,
        ),
        # BuildKit's attestations: the image plus an unknown/unknown attestation manifest in an OCI index
        (
            "application/vnd.oci.image.index.v1+json",
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {"platform": {"os": "linux", "architecture": "amd64"}},
                    {"platform": {"os": "unknown", "architecture": "unknown"}},
                ],
            },
            "an OCI image index",
        ),
        # the containerd image store's single-platform index (moby/moby#51532); an index needs no mediaType field
        (
            "application/vnd.oci.image.index.v1+json",
            {"schemaVersion": 2, "manifests": [{"platform": {"os": "linux", "architecture": "amd64"}}]},
            "an OCI image index",
        ),
        (
            "application/vnd.docker.distribution.manifest.list.v2+json",
            {"schemaVersion": 2, "manifests": [{"platform": {"os": "linux", "architecture": "amd64"}}]},
            "a Docker manifest list",
        ),
        # an attestation manifest alone is a manifest, but not an image
        (
            "application/vnd.oci.image.manifest.v1+json",
            {"schemaVersion": 2, "config": {"mediaType": "application/vnd.in-toto+json"}},
            "not an image config",
        ),
    ],
)
def test_image_manifest_check_refuses_indexes_in_ecrs_answer(
    media_type: str, manifest: dict[str, Any], refused: str | None
) -> None:
    script = REPO_ROOT / ".ci" / "image_manifest.py"
    answer = json.dumps(_ecr_answer(media_type, manifest))
    run = subprocess.run(
        [sys.executable, str(script), "ecr"], input=answer, capture_output=True, text=True, check=False
    )
    if refused is None:
        assert run.returncode == 0, run.stderr
        assert f"is a single image manifest: {media_type}" in run.stdout
    else:
        assert run.returncode == 1
        assert refused in run.stderr
        assert run.stderr.count("\n") == 1  # one line, no traceback
    # an answer that is not ECR's (no image, a failure) is a usage error, never a pass
    empty = subprocess.run(
        [sys.executable, str(script), "ecr"],
        input='{"images": [], "failures": [{"failureCode": "ImageNotFound"}]}',
        capture_output=True,
        text=True,
        check=False,
    )
    assert empty.returncode == 2


def _credentials_lint() -> Any:
    spec = importlib.util.spec_from_file_location("workflow_secrets", REPO_ROOT / ".ci" / "workflow_secrets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_previews_get_read_only_credentials_and_deploys_their_environments_secrets() -> None:
    # .ci/lint-workflows.sh runs the same check
    assert _credentials_lint().problems() == []
    preview = load("preview.yml")
    job = preview["jobs"]["preview"]
    assert job["environment"] == "preview"
    (pulumi,) = _pulumi_steps(job)
    assert pulumi["env"] == {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_PREVIEW_TOKEN }}"}
    used = yaml.safe_dump(preview)  # the workflow without its comments
    assert "HF_TOKEN" not in used
    assert "AWS_DEPLOY_ROLE_ARN" not in used
    deploy = load("deploy.yml")
    assert deploy["on"]["workflow_call"] is None  # no secrets declared: the environments hold them
    for stack in STACKS:
        first = deploy["jobs"][stack]["steps"][0]
        assert "PULUMI_ACCESS_TOKEN is empty" in first["run"]
        assert f"GitHub environment {stack}" in first["run"]


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        # What the workflows did before (issue 19, items 5 and 6)
        (
            lambda wf: wf["preview"]["jobs"]["preview"]["steps"][-1]["env"].update(
                PULUMI_ACCESS_TOKEN="${{ secrets.PULUMI_ACCESS_TOKEN }}", HF_TOKEN="${{ secrets.HF_TOKEN }}"
            ),
            "preview.yml uses HF_TOKEN, PULUMI_ACCESS_TOKEN",
        ),
        (
            lambda wf: wf["deploy"]["on"].update(
                workflow_call={"secrets": {"PULUMI_ACCESS_TOKEN": {"required": True}}}
            ),
            "deploy.yml declares workflow_call secrets",
        ),
        (
            lambda wf: wf["ci"]["jobs"]["deploy"].update(
                secrets={"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
            ),
            "ci.yml job deploy calls deploy.yml without `secrets: inherit`",
        ),
        (lambda wf: wf["deploy"]["jobs"]["dev"]["steps"].pop(0), "deploy.yml job dev: no step stops before pulumi"),
        (lambda wf: wf["deploy"]["jobs"]["prod"].pop("environment"), "deploy.yml job prod reads"),
        (
            lambda wf: wf["preview"]["jobs"]["preview"]["steps"][3]["with"].update(
                {"role-to-assume": "${{ vars.AWS_DEPLOY_ROLE_ARN }}"}
            ),
            "previews assume only ${{ vars.AWS_PREVIEW_ROLE_ARN }}",
        ),
    ],
)
def test_the_credentials_lint_refuses_deploy_grade_previews_and_broken_secret_plumbing(
    breakage: Any, problem: str
) -> None:
    lint = _credentials_lint()
    workflows = {name: load(f"{name}.yml") for name in ("preview", "deploy", "ci")}
    breakage(workflows)
    found = [*lint.preview_problems(workflows["preview"]), *lint.deploy_problems(workflows["deploy"], workflows["ci"])]
    assert any(problem in line for line in found), found
