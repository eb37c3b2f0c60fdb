"""Every function is one ``LambdaFunction`` component, and moving the functions into it replaced nothing.

``function_urns_before.json`` holds the URNs the role, inline policy, log group and function of each of the
stack's four functions had under the mocks before the component existed (the helper created them directly
under AnalysisFunction, IngestionFunction, Dashboard and Release). Pulumi identifies a resource by its URN,
which encodes its parent path: wrapping resources in a new component changes their URNs, and without an
alias ``pulumi up`` deletes each old one and creates a new one (for a function: a new function, version and
alias history, for a role: a window without permissions). Pulumi's documentation ("Refactoring with
aliases": re-parenting a resource, wrapping resources in a component) prescribes ``aliases=[Alias(parent=
<the old parent>)]`` on each moved child, which the engine resolves to the old URN and updates in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infra_mocks import STACKS, ProgramRun

pytestmark = pytest.mark.infra

COMPONENT = "sentiment:lambda_function:LambdaFunction"
BEFORE: dict[str, list[str]] = json.loads((Path(__file__).parent / "function_urns_before.json").read_text())


@pytest.mark.parametrize("stack", STACKS)
def test_each_function_is_a_lambda_function_component_and_no_deployed_resource_is_replaced(
    stack: str, programs: dict[str, ProgramRun], capsys: pytest.CaptureFixture[str]
) -> None:
    run = programs[stack]
    # Given the four functions, each built by the LambdaFunction component
    components = {r.name: r for r in run.of_type(COMPONENT)}
    assert set(components) == {"analysis", "ingestion", "dashboard", "release-check"}
    # When the URNs the program now registers are compared with those its resources had before
    current = {r.urn for r in run.resources}
    moved = {alias: r.urn for r in run.resources for alias in r.alias_urns}
    with capsys.disabled():
        print(f"\n{stack}: before -> after")
        for before in BEFORE[stack]:
            print(f"  {before}\n    -> {moved.get(before, 'DELETED AND CREATED AGAIN')}")
    for before in BEFORE[stack]:
        # Then every one of them is aliased by the resource that now holds it, under its LambdaFunction
        assert before not in current
        assert before in moved, f"{before}: no alias, so pulumi up would delete it and create a new one"
        assert f"{COMPONENT}$" in moved[before]  # (the mocks' URNs name the immediate parent's type only)
        assert moved[before].rsplit("::", 1)[1] == before.rsplit("::", 1)[1]  # the same logical name
    # And the moved resources' aliases name nothing else (none claims a URN it never had)
    assert {a for r in run.resources if r.parent_type == COMPONENT for a in r.alias_urns} == set(BEFORE[stack])
