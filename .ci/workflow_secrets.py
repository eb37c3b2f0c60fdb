"""Workflow credentials lint: which secrets and AWS roles each workflow's jobs get (docs/DEPLOY.md, CI/CD).

The scheme it enforces:

* Pull-request previews run unreviewed code: the preview job gets the read-only preview role
  (``vars.AWS_PREVIEW_ROLE_ARN``) and a Pulumi token limited to reading the stacks
  (``secrets.PULUMI_PREVIEW_TOKEN``, Pulumi Cloud's "Stack Read" permission allows previews), from the GitHub
  environment ``preview``; never ``PULUMI_ACCESS_TOKEN``, ``HF_TOKEN`` or the deploy role.
* Deploy secrets are secrets of the GitHub environments ``dev`` and ``prod`` (restricted to ``main``). GitHub
  gives environment secrets only to jobs that reference the environment, and a reusable workflow cannot be
  handed them by its caller (``on.workflow_call`` has no environment): ``deploy.yml``'s jobs reference their
  environment, declare no ``workflow_call`` secrets (a required one fails the call: the caller job, without
  environment, sees none), and ``ci.yml`` calls it with ``secrets: inherit`` (without it the called jobs see
  the environment's secrets as empty, actions/runner#1490). Each deploy job stops first, in one line, when the
  environment lacks its token.

``python3 .ci/workflow_secrets.py`` (run by .ci/lint-workflows.sh) prints one line per problem, exit 1 if any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
SECRET = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")
PREVIEW_SECRETS = frozenset({"GITHUB_TOKEN", "PULUMI_PREVIEW_TOKEN"})
DEPLOY_ENVIRONMENTS = frozenset({"dev", "prod"})
PREVIEW_ROLE = "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
DEPLOY_ROLE = "${{ vars.AWS_DEPLOY_ROLE_ARN }}"


def load(text: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(text)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the bare key `on` as True
    return data


def _secrets(node: Any) -> set[str]:
    return set(SECRET.findall(yaml.safe_dump(node)))


def _roles(job: dict[str, Any]) -> list[str]:
    return [
        str(step.get("with", {}).get("role-to-assume"))
        for step in job.get("steps", [])
        if "configure-aws-credentials" in str(step.get("uses", ""))
    ]


def _pulumi_steps(job: dict[str, Any]) -> list[int]:
    return [i for i, s in enumerate(job.get("steps", [])) if str(s.get("uses", "")).startswith("pulumi/actions@")]


def preview_problems(preview: dict[str, Any]) -> list[str]:
    problems = []
    extra = _secrets(preview) - PREVIEW_SECRETS
    if extra:
        problems.append(
            f"preview.yml uses {', '.join(sorted(extra))}: previews run a pull request's code and get only "
            "the read-only PULUMI_PREVIEW_TOKEN (and GITHUB_TOKEN)"
        )
    for name, job in preview["jobs"].items():
        roles = _roles(job)
        if any(role != PREVIEW_ROLE for role in roles):
            problems.append(f"preview.yml job {name} assumes {roles}: previews assume only {PREVIEW_ROLE}")
        if roles and job.get("environment") != "preview":
            problems.append(f"preview.yml job {name} assumes a role outside the environment 'preview' (its trust)")
        for index in _pulumi_steps(job):
            env = {**job.get("env", {}), **job["steps"][index].get("env", {})}
            if env.get("PULUMI_ACCESS_TOKEN") != "${{ secrets.PULUMI_PREVIEW_TOKEN }}":
                problems.append(f"preview.yml job {name}: pulumi runs without PULUMI_ACCESS_TOKEN=PULUMI_PREVIEW_TOKEN")
    return problems


def deploy_problems(deploy: dict[str, Any], ci: dict[str, Any]) -> list[str]:
    problems = []
    call = deploy["on"].get("workflow_call") or {}
    if call.get("secrets"):
        problems.append(
            "deploy.yml declares workflow_call secrets: its secrets are the dev/prod environments', which no "
            "caller can pass (a required one fails the call); declare none"
        )
    for name, job in deploy["jobs"].items():
        used = _secrets(job) - {"GITHUB_TOKEN"}
        if used and job.get("environment") not in DEPLOY_ENVIRONMENTS:
            problems.append(f"deploy.yml job {name} reads {sorted(used)} without referencing the dev/prod environment")
        if any(role != DEPLOY_ROLE for role in _roles(job)):
            problems.append(f"deploy.yml job {name} assumes {_roles(job)}, not {DEPLOY_ROLE}")
        pulumi = _pulumi_steps(job)
        checks = [
            i
            for i, s in enumerate(job["steps"])
            if "PULUMI_ACCESS_TOKEN" in str(s.get("run", "")) and "exit 1" in str(s.get("run", ""))
        ]
        if pulumi and not (checks and checks[0] < pulumi[0]):
            problems.append(f"deploy.yml job {name}: no step stops before pulumi when the environment has no token")
    callers = {n: j for n, j in ci["jobs"].items() if str(j.get("uses", "")).endswith("/deploy.yml")}
    if not callers:
        problems.append("ci.yml does not call deploy.yml")
    for name, job in callers.items():
        if job.get("secrets") != "inherit":
            problems.append(
                f"ci.yml job {name} calls deploy.yml without `secrets: inherit`: the called jobs would see their "
                "environment's secrets as empty (actions/runner#1490)"
            )
        if "environment" in job:
            problems.append(f"ci.yml job {name}: a job calling a reusable workflow cannot take an environment")
    return problems


def problems(workflows: Path = WORKFLOWS) -> list[str]:
    def read(name: str) -> dict[str, Any]:
        return load((workflows / name).read_text())

    return [*preview_problems(read("preview.yml")), *deploy_problems(read("deploy.yml"), read("ci.yml"))]


def main() -> int:
    found = problems()
    for line in found:
        sys.stderr.write(f"workflow credentials: {line}\n")
    if not found:
        sys.stdout.write("workflow credentials: preview read-only, deploy secrets per environment\n")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
