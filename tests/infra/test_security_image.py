"""The analysis image, read stage by stage: the runtime stage runs as non-root and bakes in no secret.

``tests/unit/test_analysis_image.py`` checks the Dockerfile's build contract; this checks what matters
for security in the *final* stage only (a USER in an earlier stage does not carry over), plus the
whole file for secrets in ENV/ARG and unpinned or remote sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from infra_mocks import REPO_ROOT
from reliability_table import Recorder

pytestmark = pytest.mark.infra

DOCKERFILE = REPO_ROOT / "services" / "analysis" / "Dockerfile"
SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|credential|api_?key|access_?key)")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages (instruction, arguments), continuation lines joined."""
    logical = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base=words[0], name=name))
        elif not stages and instruction == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif stages:
            stages[-1].instructions.append((instruction, rest.strip()))
    return args, stages


def test_the_runtime_stage_runs_as_a_non_root_user(reliability: Recorder) -> None:
    reliability.case("security: image", "the final stage's user", "a numeric non-zero uid and gid, set last")
    _, stages = parse_stages(DOCKERFILE.read_text(encoding="utf-8"))
    final = stages[-1]
    users = [rest for instruction, rest in final.instructions if instruction == "USER"]
    assert users, "the runtime stage sets no USER: the function would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), users[-1]
    assert int(uid) != 0, users[-1]
    assert gid == "" or (gid.isdigit() and int(gid) != 0), users[-1]
    after_user = [i for i, _ in final.instructions[[i for i, _ in final.instructions].index("USER") :]]
    assert "RUN" not in after_user[1:], "commands after USER would run as that user, but nothing should need to"
    reliability.observed(f"USER {users[-1]} in the runtime stage ({len(stages)} stages)")


def test_no_secret_is_baked_in_and_every_source_is_pinned(reliability: Recorder) -> None:
    reliability.case(
        "security: image",
        "ENV/ARG values, base images and sources",
        "no secret-named ENV/ARG, base images pinned to a version, no remote ADD",
    )
    args, stages = parse_stages(DOCKERFILE.read_text(encoding="utf-8"))
    problems = [f"ARG {name}" for name in args if SECRET_NAME.search(name)]
    names: set[str] = set()
    images: list[str] = []
    for stage in stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), stage.base)
        if base not in names:  # an image, not an earlier stage
            images.append(base)
            tag = base.rsplit("/", 1)[-1]
            if not ("@sha256:" in base or (":" in tag and not tag.endswith(":latest"))):
                problems.append(f"base image {base} is not pinned to a version")
        names.add(stage.name)
        for instruction, rest in stage.instructions:
            if instruction in ("ENV", "ARG"):
                keys = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
                problems += [f"{instruction} {k}" for k in keys if SECRET_NAME.search(k)]
            if instruction == "ADD" and re.search(r"https?://", rest):
                problems.append(f"remote ADD {rest}")
    assert problems == []
    reliability.observed(f"{len(stages)} stages from {sorted(set(images))}; 0 problems")
