#!/usr/bin/env bash
# Security lint of what CI and deploys build from: hadolint and checkov on every tracked Dockerfile, then the
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

bash .ci/lint-workflows.sh
echo "security lint OK"
