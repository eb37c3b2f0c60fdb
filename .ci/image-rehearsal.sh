#!/usr/bin/env bash
# Image rehearsal (`make image`, run by .ci/run): build services/analysis/Dockerfile, every stage, with Docker's
# engine, from the same staged context `pulumi up` builds, then run the image: CPU torch, no CUDA packages,
# non-root, and real classifications through the Lambda Runtime API inside the container
# (tests/e2e/test_analysis_lambda_runtime.py with SENTIMENT_IMAGE set): an on-demand cold start, and SnapStart's
# lifecycle (INIT with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start, the runtime client's before-snapshot hooks and
# restore/next, the model object deleted, after-restore hooks, invocations).
# Before the run, the push, as `pulumi up` pushes (pulumi-docker's Image: the engine's build API with the
# program's platform, then the engine's push), to a loopback registry (Debian's docker-registry), and
# .ci/image_manifest.py reads the stored manifest's media type through the registry API: one image manifest
# passes; an index (the same image wrapped in a manifest list) must be refused, every run, so the check is seen
# failing.
#
# Registries are unreachable here, so the base images are stand-ins, built from what is reachable and listed
# in one place ("substitutions") before the build:
#   * the Lambda Python base: a Debian bookworm rootfs made with debootstrap (Python 3.11), `docker import`ed,
#     plus the locked, hashed awslambdaric from uv.lock and an entrypoint that runs it like the real base;
#   * the uv image: the uv binary from PyPI's uv wheel, the version the Dockerfile pins;
#   * the PyTorch CPU index: this machine's pip find-links wheelhouse served on loopback (its torch version may
#     differ from the lock's: printed).
# Everything else is the Dockerfile's locked, hashed set. The daemon is Debian's docker.io, started here with
# no bridge and no iptables (every build and container uses --network host: nothing leaves loopback) and
# stopped at the end; Debian's /usr/bin/docker drives BuildKit. Run as root (apt, dockerd).
#
# Caches (warm runs): the debootstrap rootfs tarball and the loopback registry's storage under $CACHE; the
# daemon's data root (images, BuildKit cache) under $DOCKER_ROOT. CI starts cold.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SENTIMENT_REHEARSAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sentiment-analyzer/image-rehearsal}"
DOCKER_ROOT="${SENTIMENT_REHEARSAL_DOCKER_ROOT:-/var/lib/sentiment-rehearsal-docker}"
RUN_DIR=/run/sentiment-rehearsal
DOCKER=/usr/bin/docker
IMAGE="${SENTIMENT_IMAGE:-sentiment-analysis:rehearsal}"
DOCKERFILE="${SENTIMENT_DOCKERFILE:-services/analysis/Dockerfile}"
REGISTRY=/usr/bin/docker-registry
REGISTRY_ADDR="127.0.0.1:${SENTIMENT_REGISTRY_PORT:-38112}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
started=$SECONDS
step() { printf '== %s (%ss)\n' "$*" "$((SECONDS - started))"; }

if [ "$(id -u)" != 0 ]; then echo "image rehearsal: run as root (apt-get, dockerd)" >&2; exit 1; fi

step "tools: Debian docker.io, debootstrap and docker-registry"
if ! [ -x "$DOCKER" ] || ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null \
  || ! [ -x "$REGISTRY" ]; then
  apt-get update -qq
  # A policy-rc.d that refuses: no package starts its service at install time (on a machine with an init system
  # the registry package's would listen on :5000); this script starts its own below. One already there stays.
  own_policy=""
  if ! [ -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  installed=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap docker-registry \
    >/dev/null || installed=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$installed" = 0 ] || exit "$installed"
fi
"$DOCKER" --version
"$REGISTRY" --version

step "daemon: dockerd --bridge=none --iptables=false"
mkdir -p "$RUN_DIR" "$CACHE" "$DOCKER_ROOT"
export DOCKER_HOST="unix://$RUN_DIR/docker.sock" DOCKER_BUILDKIT=1
dockerd --bridge=none --iptables=false --ip6tables=false --data-root "$DOCKER_ROOT" --exec-root "$RUN_DIR/exec" \
  --pidfile "$RUN_DIR/dockerd.pid" --host "$DOCKER_HOST" >"$RUN_DIR/dockerd.log" 2>&1 &
dockerd_pid=$!
index_pid=""
registry_pid=""
cleanup() {
  [ -n "$index_pid" ] && kill "$index_pid" 2>/dev/null || true
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
"$DOCKER" info >/dev/null || { tail -20 "$RUN_DIR/dockerd.log" >&2; exit 1; }

# What the Dockerfile pins, read from it (one source of truth).
uv_image_default=$(sed -n 's/^ARG UV_IMAGE=//p' "$DOCKERFILE")
uv_version=$(sed -E 's/^[^:]+:([^@]+).*/\1/' <<<"$uv_image_default")

step "stand-in: the uv image (uv $uv_version from PyPI's wheel)"
uv_tag="sentiment-rehearsal/uv:$uv_version"
if ! "$DOCKER" image inspect "$uv_tag" >/dev/null 2>&1; then
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
    --python-version 3.11 --dest "$work" "uv==$uv_version"
  python3 -m zipfile -e "$work"/uv-*.whl "$work/x"
  install -m 0755 "$work/x/uv-$uv_version.data/scripts/uv" "$work/uv"
  install -m 0755 "$work/x/uv-$uv_version.data/scripts/uvx" "$work/uvx"
  printf 'FROM scratch\nCOPY uv uvx /\n' >"$work/Dockerfile"
  "$DOCKER" build --quiet --network host -t "$uv_tag" "$work" >/dev/null
  sha256sum "$work"/uv-*.whl | awk '{print $1}' >"$CACHE/uv-$uv_version.wheel.sha256"
  rm -rf "$work"
fi

step "stand-in: the Lambda Python base (debootstrap bookworm + locked awslambdaric)"
rootfs="$CACHE/bookworm-python3-rootfs.tar"
if ! [ -s "$rootfs" ]; then
  tmp="$CACHE/rootfs.tmp"
  rm -rf "$tmp"
  debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$tmp" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log"
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  tar -C "$tmp" --numeric-owner -cf "$rootfs.part" . && mv "$rootfs.part" "$rootfs"
  rm -rf "$tmp"
fi
# This machine's TLS trust (PyPI is reached through it); the real base trusts the public CAs.
HOST_CA_BUNDLE=$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)
rootfs_sha=$( (sha256sum "$rootfs"; sha256sum "$HOST_CA_BUNDLE"; sed -n '/^step "stand-in: the Lambda/,/^step "stand-in: the PyTorch/p' "$0") | sha256sum | cut -c1-12)
base_tag="sentiment-rehearsal/lambda-python:bookworm-$rootfs_sha"
if ! "$DOCKER" image inspect "$base_tag" >/dev/null 2>&1; then
  "$DOCKER" import "$rootfs" "sentiment-rehearsal/rootfs:$rootfs_sha" >/dev/null
  work=$(mktemp -d)
  # awslambdaric and its dependencies exactly as uv.lock pins them (the dev group holds it), with hashes.
  uv export --frozen --only-dev --no-emit-workspace --no-header | python3 -c '
import re, sys, tomllib
lock = {p["name"]: p for p in tomllib.load(open("uv.lock", "rb"))["package"]}
wanted, todo = set(), ["awslambdaric"]
while todo:
    name = todo.pop()
    if name not in wanted:
        wanted.add(name)
        todo += [d["name"] for d in lock[name].get("dependencies", [])]
block = []
for line in sys.stdin.read().splitlines() + [""]:
    if line[:1].isspace():
        block.append(line)
        continue
    if block and re.sub(r"[-_.]+", "-", re.split(r"[=; ]", block[0])[0].lower()) in wanted:
        print("\n".join(block))
    block = [line] if line.strip() else []
' >"$work/runtime-requirements.txt"
  cat >"$work/lambda-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the Lambda base's entrypoint: the runtime interface client against $AWS_LAMBDA_RUNTIME_API.
cd "$LAMBDA_TASK_ROOT" && PYTHONPATH="$LAMBDA_RUNTIME_DIR" exec python3 -m awslambdaric "$@"
EOF
  chmod 0755 "$work/lambda-entrypoint.sh"
  cp "$HOST_CA_BUNDLE" "$work/host-ca-certificates.crt"
  cat >"$work/Dockerfile" <<EOF
FROM $uv_tag AS uv
FROM sentiment-rehearsal/rootfs:$rootfs_sha
COPY runtime-requirements.txt /tmp/
COPY host-ca-certificates.crt /etc/ssl/certs/host-ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt
RUN --mount=from=uv,source=/uv,target=/bin/uv \\
    UV_PYTHON_DOWNLOADS=never uv pip install --python python3 --target /var/runtime --require-hashes --no-deps \\
      -r /tmp/runtime-requirements.txt && rm /tmp/runtime-requirements.txt
COPY lambda-entrypoint.sh /lambda-entrypoint.sh
ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime LANG=C.UTF-8 TZ=:/etc/localtime
WORKDIR /var/task
ENTRYPOINT ["/lambda-entrypoint.sh"]
EOF
  "$DOCKER" build --quiet --network host -t "$base_tag" "$work" >/dev/null
  rm -rf "$work"
fi

step "stand-in: the PyTorch CPU index (this machine's pip find-links wheelhouse on loopback)"
find_links=$(python3 -m pip config get global.find-links 2>/dev/null || true)
torch_wheel=$(ls "${find_links:-/nonexistent}"/torch-*+cpu-cp311-cp311-*x86_64.whl 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$torch_wheel" ]; then
  echo "no CPU torch wheel for cp311 x86_64 in pip's find-links (${find_links:-unset})" >&2; exit 1
fi
torch_version=$(basename "$torch_wheel" | cut -d- -f2)
index_dir=$(mktemp -d)
mkdir -p "$index_dir/torch"
ln -s "$torch_wheel" "$index_dir/torch/"
# A fixed port: TORCH_INDEX is a build argument, and a new value each run would invalidate the deps layer.
index_port="${SENTIMENT_TORCH_INDEX_PORT:-38111}"
python3 -m http.server --bind 127.0.0.1 --directory "$index_dir" "$index_port" >/dev/null 2>&1 &
index_pid=$!
for _ in $(seq 1 20); do curl -fsS "http://127.0.0.1:$index_port/torch/" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$index_port/torch/" | grep -q "$(basename "$torch_wheel" | sed 's/+/%2B/')" \
  || { echo "the torch index stand-in does not answer on 127.0.0.1:$index_port" >&2; exit 1; }
locked_torch=$(python3 -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "torch"))')

step "the build context pulumi up builds (sentiment_infra.packaging.stage_image_context)"
context=$(uv run --locked python -c '
from pathlib import Path
from sentiment_infra.packaging import stage_image_context
print(stage_image_context(Path.cwd(), Path("build/image-context")))')
cp "$DOCKERFILE" "$context/services/analysis/Dockerfile"

cat <<EOF
== substitutions (what this rehearsal builds with instead of what production pulls)
  LAMBDA_BASE        $(sed -n 's/^ARG LAMBDA_BASE=//p' "$DOCKERFILE")
                  -> $base_tag: Debian bookworm (debootstrap from $DEBIAN_MIRROR), $("$DOCKER" run --rm --network host --entrypoint python3 "$base_tag" -V) + awslambdaric (uv.lock, hashed) + this machine's CA bundle as SSL_CERT_FILE ($HOST_CA_BUNDLE)
  UV_IMAGE           $uv_image_default
                  -> $uv_tag: uv $uv_version from PyPI's wheel (sha256 $(cat "$CACHE/uv-$uv_version.wheel.sha256" 2>/dev/null || echo '?'))
  TORCH_INDEX        https://download.pytorch.org/whl/cpu, torch==$locked_torch+cpu (uv.lock)
                  -> http://127.0.0.1:$index_port/ serving $(basename "$torch_wheel"): torch $torch_version, NOT the locked $locked_torch
  everything else    uv.lock's hashed set (uv export), as in production
EOF

# The platform the Pulumi program builds for (sentiment_infra.components.analysis_image.LAMBDA_PLATFORM).
platform=$(sed -n 's/^LAMBDA_PLATFORM = "\(.*\)"$/\1/p' infra/src/sentiment_infra/components/analysis_image.py)
[ -n "$platform" ] || { echo "no LAMBDA_PLATFORM in analysis_image.py" >&2; exit 1; }
# pulumi-docker's Image builds through the engine's build API, which adds no attestations (moby's builder-next
# sends BuildKit no attest: options); where `docker build` is buildx (which adds provenance by default), say no.
attest_flags=()
if "$DOCKER" buildx version >/dev/null 2>&1; then attest_flags=(--provenance=false --sbom=false); fi

step "build: $DOCKERFILE, every stage (BuildKit, --network host, --platform $platform ${attest_flags[*]})"
build_started=$SECONDS
"$DOCKER" build --network host --progress plain --platform "$platform" "${attest_flags[@]}" \
  --build-arg "LAMBDA_BASE=$base_tag" --build-arg "UV_IMAGE=$uv_tag" \
  --build-arg "TORCH_INDEX=http://127.0.0.1:$index_port/" --build-arg "TORCH_REQUIREMENT=torch==$torch_version" \
  -f "$context/services/analysis/Dockerfile" -t "$IMAGE" "$context" 2>&1 | tail -n "${SENTIMENT_BUILD_LOG_LINES:-25}"
echo "build took $((SECONDS - build_started)) s; image size $("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE") bytes"

step "push: to a loopback registry as pulumi up pushes (the engine's push of the built tag), then the manifest check"
# The registry's storage is kept with the caches: a warm run's push finds the layers there (CI starts cold).
mkdir -p "$CACHE/registry"
cat >"$RUN_DIR/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $CACHE/registry}, delete: {enabled: true}}
http: {addr: $REGISTRY_ADDR}
EOF
"$REGISTRY" serve "$RUN_DIR/registry.yml" >"$RUN_DIR/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 40); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || { tail -20 "$RUN_DIR/registry.log" >&2; exit 1; }
pushed="$REGISTRY_ADDR/sentiment-analysis"
# The program's tag for this context (infra/__main__.py: analysis_image_tag of the staged context).
tag=$(uv run --locked python -c 'import sys; from pathlib import Path; from sentiment_infra.packaging import analysis_image_tag
print(analysis_image_tag(Path(sys.argv[1])))' "$context")
"$DOCKER" tag "$IMAGE" "$pushed:$tag"
"$DOCKER" push "$pushed:$tag" | tail -n 1
python3 .ci/image_manifest.py registry "http://$REGISTRY_ADDR" sentiment-analysis "$tag" --platform "$platform"
# The same image as an index, which the check must refuse, every run: wrapped in a one-platform Docker manifest list
# by `docker manifest` (what a multi-platform push makes), and in a one-platform OCI index put through the registry
# API (the shape the containerd image store pushes for a single-platform build, moby/moby#51532).
manifest_url="http://$REGISTRY_ADDR/v2/sentiment-analysis/manifests"
digest=$(curl -fsS -o /dev/null -w '%header{docker-content-digest}' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$manifest_url/$tag")
size=$(curl -fsS -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$manifest_url/$tag" \
  | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p')
manifest_cli=(env DOCKER_CONFIG="$RUN_DIR/docker-config" DOCKER_CLI_EXPERIMENTAL=enabled "$DOCKER" manifest)
rm -rf "$RUN_DIR/docker-config/manifests"
"${manifest_cli[@]}" create --insecure "$pushed:manifest-list" "$pushed@$digest" >/dev/null
"${manifest_cli[@]}" push --insecure --purge "$pushed:manifest-list" >/dev/null
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":%s,"digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}}]}' \
  '"application/vnd.docker.distribution.manifest.v2+json"' "$digest" "$size" \
  | curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary @- "$manifest_url/oci-index"
for index in "manifest-list:a Docker manifest list" "oci-index:an OCI image index"; do
  if python3 .ci/image_manifest.py registry "http://$REGISTRY_ADDR" sentiment-analysis "${index%%:*}" 2>"$RUN_DIR/refused.txt"; then
    echo "image rehearsal: the manifest check passed ${index#*:}" >&2; exit 1
  fi
  cat "$RUN_DIR/refused.txt"
  grep -q "refused: ${index#*:}" "$RUN_DIR/refused.txt" || { echo "image rehearsal: refused for another reason" >&2; exit 1; }
done
step "run: CPU torch, no CUDA packages, non-root, classifications through the Lambda Runtime API"
"$DOCKER" run --rm --network host --entrypoint python3 "$IMAGE" -c '
import importlib.metadata as md, os, sys, torch, transformers
import sentiment_analysis.handler, sentiment_analysis.classifier
assert torch.version.cuda is None, f"CUDA build of torch: {torch.__version__}"
assert "+cpu" in torch.__version__, torch.__version__
gpu = sorted(d.metadata["Name"] for d in md.distributions()
             if d.metadata["Name"].lower().startswith(("nvidia", "triton", "cuda")))
assert not gpu, f"GPU-only packages in the image: {gpu}"
assert os.getuid() != 0, "the image runs as root"
print("torch", torch.__version__, "transformers", transformers.__version__, "python", sys.version.split()[0], "uid", os.getuid())
'
# SnapStart's hooks register with snapshot_restore_py, the module the runtime client runs them from: it must be
# the one module the handler imports, next to the client (the real base ships both in $LAMBDA_RUNTIME_DIR).
"$DOCKER" run --rm --network host --entrypoint /bin/sh "$IMAGE" -c 'cd "$LAMBDA_TASK_ROOT" && PYTHONPATH="$LAMBDA_RUNTIME_DIR" \
  python3 -c "import awslambdaric.lambda_runtime_hooks_runner as r, snapshot_restore_py as s; print(\"snapshot_restore_py\", s.__version__, s.__file__)"'
# The e2e test's image launcher; it needs the shared small model (../shared): a skip is a failure here.
SENTIMENT_IMAGE="$IMAGE" SENTIMENT_DOCKER="$DOCKER" uv run --locked pytest -q -rsP --durations=4 -p no:cacheprovider \
  tests/e2e/test_analysis_lambda_runtime.py -k image | tee "$RUN_DIR/e2e.txt"
grep -Eq "(^| )2 passed" "$RUN_DIR/e2e.txt" || { echo "image rehearsal: the in-container invocations did not run" >&2; exit 1; }

step "image rehearsal passed"
