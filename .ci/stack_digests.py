"""Print, from `pulumi stack export` on stdin, the analysis image digest the stack pushed or the one the function runs.

    pulumi stack export --stack ORG/dev | python3 .ci/stack_digests.py image      # repository@sha256:… pushed
    pulumi stack export --stack ORG/dev | python3 .ci/stack_digests.py function   # the Lambda function's imageUri

The deploy workflow smoke-tests the first after `pulumi up --target` (the image only) and, after the full
`pulumi up`, requires the second to be the same string: the function runs exactly the tested build.
Read from the state, not from `pulumi stack output`: a targeted update does not refresh the stack's outputs.
Standard library only (it runs before and outside the workspace's venv).
"""

from __future__ import annotations

import json
import sys
from typing import Any

KINDS = {
    "image": ("docker:index/image:Image", "repoDigest"),
    "function": ("aws:lambda/function:Function", "imageUri"),
}


def find(state: dict[str, Any], kind: str) -> str:
    typ, output = KINDS[kind]
    values = [
        r.get("outputs", {}).get(output)
        for r in state.get("deployment", {}).get("resources", [])
        if r.get("type") == typ and r.get("outputs", {}).get(output)
    ]
    if len(values) != 1:
        raise SystemExit(f"expected one {typ} with {output} in the stack state, found {len(values)}")
    value = str(values[0])
    if "@sha256:" not in value:
        raise SystemExit(f"{typ}.{output} is not pinned by digest: {value}")
    return value


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in KINDS:
        sys.stderr.write(f"usage: pulumi stack export | python3 {argv[0]} {{{'|'.join(KINDS)}}}\n")
        return 2
    print(find(json.load(sys.stdin), argv[1]))  # noqa: T201 - the script's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
