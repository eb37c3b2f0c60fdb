"""What Lambda requires of a function with SnapStart, checked on the program's resources at preview.

AWS refuses SnapStart (``SnapStart.ApplyOn = PublishedVersions``) on a function with ephemeral storage
above 512 MB, with an EFS file system, or with provisioned concurrency on its versions ("SnapStart
limitations" in the Lambda developer guide; ../shared/AWS-FACTS.md). The config validator catches the
storage size by key; this stack transformation catches every combination, however a resource came to
have it, before ``pulumi preview`` shows a plan that ``pulumi up`` could not apply.

A publish that Lambda refuses anyway (e.g. an account or region where container-image SnapStart is not
available: some older copies of the AWS docs still say images are unsupported) fails ``pulumi up``
with Lambda's error: the program never catches provider errors, and ``analysisSnapStart: false``
is the switch back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from sentiment_infra.config import SNAP_START_MAX_EPHEMERAL_MB, ConfigError

SNAP_START_ON = "PublishedVersions"
FUNCTION = "aws:lambda/function:Function"
PROVISIONED_CONCURRENCY = "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"


def _field(value: Any, name: str) -> Any:
    """``name`` of an args object or of its dict form (how resource props arrive in a transformation)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


def snap_start_problems(type_: str, name: str, props: Mapping[str, Any], *, stack_has_snap_start: bool) -> list[str]:
    """Why Lambda would refuse this resource next to SnapStart (empty: nothing to refuse)."""
    problems: list[str] = []
    if type_ == FUNCTION and _field(props.get("snap_start"), "apply_on") == SNAP_START_ON:
        size = _field(props.get("ephemeral_storage"), "size")
        if isinstance(size, int) and size > SNAP_START_MAX_EPHEMERAL_MB:
            problems.append(
                f"{name}: SnapStart needs ephemeral storage <= {SNAP_START_MAX_EPHEMERAL_MB} MB, not {size} MB"
            )
        if props.get("file_system_config") is not None:
            problems.append(f"{name}: SnapStart cannot be combined with an EFS file system")
    if type_ == PROVISIONED_CONCURRENCY and stack_has_snap_start:
        problems.append(f"{name}: provisioned concurrency cannot be combined with SnapStart (analysisSnapStart is on)")
    return problems


def guard(stack_has_snap_start: bool) -> pulumi.ResourceTransformation:
    """A stack transformation that stops the program at the first resource Lambda would refuse."""

    def check(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        problems = snap_start_problems(args.type_, args.name, args.props, stack_has_snap_start=stack_has_snap_start)
        if problems:
            raise ConfigError("SnapStart: " + "; ".join(problems))
        return None

    return check
