#!/usr/bin/env bash
# Security lint of what CI and deploys build from: hadolint and checkov on every tracked Dockerfile, the Pulumi
# program's dependency set (no torch/CUDA in the deploy jobs' install), then the
# workflows' lint (.ci/lint-workflows.sh: zizmor, checkov, actionlint). checkov pins an old boto3 (among
# others), so it runs in a throwaway tool environment of its own (uv tool run), never in the workspace's
# locked one; --skip-download keeps it offline and deterministic. Suppressions live next to what they
# suppress (`# checkov:skip=ID: reason`, `# hadolint ignore=RULE` with a comment saying why); this script
# adds none.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV="checkov==3.3.30"  # the version .ci/lint-workflows.sh uses
mapfile -t dockerfiles < <(git ls-files '*Dockerfile' '*Dockerfile.*' '*.dockerfile')
if [ "${#dockerfiles[@]}" -eq 0 ]; then
  echo "no Dockerfile found" >&2
  exit 1
fi

echo "-- hadolint ${dockerfiles[*]}"
uv run --locked hadolint "${dockerfiles[@]}"

echo "-- checkov (dockerfile) ${dockerfiles[*]}"
for dockerfile in "${dockerfiles[@]}"; do
  uv tool run --quiet --from "$CHECKOV" checkov --framework dockerfile --file "$dockerfile" \
    --skip-download --quiet --compact
done

echo "-- the Pulumi program alone pulls no CUDA torch (uv export --package sentiment-infra)"
exported="$(uv export --frozen --no-dev --package sentiment-infra --no-hashes)"
names="$(sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*\)==.*/\1/p' <<<"$exported" | tr '[:upper:]' '[:lower:]')"
if ! grep -qx 'pulumi' <<<"$names"; then
  echo "uv export of sentiment-infra has no pulumi: the check would pass vacuously" >&2
  exit 1
fi
if heavy="$(grep -E '^(torch|transformers|nvidia.*|cuda.*|triton.*)$' <<<"$names")"; then
  echo "the Pulumi program's dependency set pulls: $heavy" >&2
  exit 1
fi

# The deploy roles' shipped policies (sentiment_infra.deploy_policy) through parliament's IAM definitions: an
# action IAM does not know, or a Resource an action cannot be scoped to, fails here rather than in AWS. Its
# pkg_resources import needs setuptools < 81 beside it.
PARLIAMENT="parliament==1.6.4"
echo "-- parliament: the deploy and preview roles' policies (both stacks)"
policies="$(mktemp -d)"
trap 'rm -rf "$policies"' EXIT
for kind in deploy preview; do
  uv run --locked python -m sentiment_infra.deploy_policy "$kind" --account 123456789012 \
    | uv run --locked python -c '
import json, pathlib, sys
for n, document in enumerate(json.load(sys.stdin), 1):
    (pathlib.Path(sys.argv[1]) / f"{sys.argv[2]}-{n}.json").write_text(json.dumps(document))
' "$policies" "$kind"
done
set +e
findings="$(uv tool run --quiet --from "$PARLIAMENT" --with "setuptools<81" parliament --directory "$policies" 2>&1)"
status=$?
set -e
grep -v pkg_resources <<<"$findings" || true
if [ "$status" -ne 0 ]; then
  echo "parliament: findings in the shipped IAM policies (infra/src/sentiment_infra/deploy_policy.py)" >&2
  exit 1
fi
ls "$policies"

bash .ci/lint-workflows.sh
echo "security lint OK"
