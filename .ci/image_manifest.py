"""Fail unless a pushed image is ONE image manifest: Lambda refuses an OCI index or a Docker manifest list.

    python3 .ci/image_manifest.py registry http://127.0.0.1:38112 sentiment-analysis TAG [--platform linux/amd64]
    aws ecr batch-get-image --repository-name R --image-ids imageDigest=sha256:… \\
        --accepted-media-types $(python3 .ci/image_manifest.py accept) | python3 .ci/image_manifest.py ecr

``registry`` asks a registry's API (``GET /v2/<name>/manifests/<reference>``) as a client that accepts all four
types: the answer's ``Content-Type`` is what the registry stored (the rehearsal's loopback registry, `make image`);
with ``--platform`` it also reads the image's config blob and requires that os/architecture. ``ecr`` reads
``aws ecr batch-get-image``'s answer on stdin: its ``imageManifestMediaType`` and the manifest itself (the deploy
job, before the function is updated). Both go through ``check``: the declared media type, the manifest's own
``mediaType`` field and its shape (``manifests`` = an index) must all say "single image manifest".

Why: Lambda's CreateFunction/UpdateFunctionCode answer "The image manifest, config or layer media type for the
source image … is not supported" for an index (aws/aws-lambda-roadmap#82); BuildKit's attestations and Docker's
containerd image store (moby/moby#51532) wrap even a single-platform image in one. Exit 1 on a refusal,
2 on a usage error or an unreadable answer. Standard library only (it runs outside the workspace's venv).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = {OCI_INDEX: "an OCI image index", DOCKER_LIST: "a Docker manifest list"}
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
IMAGE_CONFIGS = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")


class Refused(Exception):
    """The image is not something Lambda runs."""


def check(declared: str, manifest: dict[str, Any]) -> str:
    """The single-manifest media type, or Refused saying what was pushed instead."""
    declared = declared.split(";", maxsplit=1)[0].strip()
    own = str(manifest.get("mediaType", ""))
    for media_type in (declared, own):
        if media_type in INDEXES:
            platforms = [
                "{os}/{architecture}".format(**m.get("platform", {"os": "?", "architecture": "?"}))
                for m in manifest.get("manifests", [])
            ]
            raise Refused(
                f"{INDEXES[media_type]} ({media_type}) over {len(platforms)} manifest(s) {platforms}: "
                "Lambda needs a single image manifest (build with one --platform and --provenance=false --sbom=false)"
            )
    if "manifests" in manifest:
        raise Refused(f"an index (it lists 'manifests') declared as {declared or own or 'no media type'}")
    if declared not in MANIFESTS:
        raise Refused(f"unexpected manifest media type {declared or '(none)'}; Lambda runs {' or '.join(MANIFESTS)}")
    if own and own != declared:
        raise Refused(f"the registry says {declared} but the manifest says {own}")
    config_type = str(manifest.get("config", {}).get("mediaType", ""))
    if config_type not in IMAGE_CONFIGS:
        raise Refused(f"the manifest's config is {config_type or '(none)'}, not an image config: not a runnable image")
    return declared


def _get(url: str, accept: str) -> tuple[str, bytes]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not a registry URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - http(s) only, checked above
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return str(response.headers.get("Content-Type", "")), response.read()


def from_registry(base: str, name: str, reference: str, platform: str | None) -> str:
    url = f"{base.rstrip('/')}/v2/{name}/manifests/{reference}"
    content_type, body = _get(url, ", ".join(ACCEPT))
    manifest = json.loads(body)
    media_type = check(content_type, manifest)
    config_digest = manifest["config"]["digest"]
    detail = f"config {config_digest}"
    if platform is not None:
        _, blob = _get(f"{base.rstrip('/')}/v2/{name}/blobs/{config_digest}", "*/*")
        config = json.loads(blob)
        found = f"{config.get('os')}/{config.get('architecture')}"
        if found != platform:
            raise Refused(f"the image is {found}, Lambda's function runs {platform}")
        detail = found
    return f"{name}:{reference} is a single image manifest: {media_type} ({detail})"


def from_ecr(answer: dict[str, Any]) -> str:
    failures = answer.get("failures") or []
    images = answer.get("images") or []
    if failures or len(images) != 1:
        raise ValueError(f"expected one image from ecr batch-get-image, got {len(images)} and failures {failures}")
    image = images[0]
    media_type = check(str(image.get("imageManifestMediaType", "")), json.loads(image["imageManifest"]))
    ids = image.get("imageId", {})
    return f"{image.get('repositoryName')}@{ids.get('imageDigest')} is a single image manifest: {media_type}"


USAGE = (
    "usage: image_manifest.py registry URL NAME REFERENCE [--platform OS/ARCH]\n"
    "       aws ecr batch-get-image … | image_manifest.py ecr\n"
    "       image_manifest.py accept   (the four media types, for --accepted-media-types)\n"
)


def main(argv: list[str]) -> int:
    args = argv[1:]
    try:
        if args == ["accept"]:
            print(" ".join(ACCEPT))  # noqa: T201 - the script's output
            return 0
        if args == ["ecr"]:
            print(from_ecr(json.load(sys.stdin)))  # noqa: T201
            return 0
        if args[:1] == ["registry"] and len(args) in (4, 6) and (len(args) == 4 or args[4] == "--platform"):
            print(from_registry(args[1], args[2], args[3], args[5] if len(args) == 6 else None))  # noqa: T201
            return 0
    except Refused as refused:
        sys.stderr.write(f"image manifest check: refused: {refused}\n")
        return 1
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as error:
        sys.stderr.write(f"image manifest check: cannot read the manifest: {error}\n")
        return 2
    sys.stderr.write(USAGE)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
