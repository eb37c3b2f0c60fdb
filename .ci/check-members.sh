#!/usr/bin/env bash
# Each workspace member must install and import with only its own declared dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A MODULES=(
  [sentiment-shared]="sentiment_shared.adapters sentiment_shared.dynamo sentiment_shared.dal.keys sentiment_shared.dal.writes sentiment_shared.dal.read_model sentiment_shared.dal.backfill sentiment_shared.costs sentiment_shared.model_bundle sentiment_shared.model_publish sentiment_shared.object_store sentiment_shared.settings"
  [sentiment-client]="sentiment_client.client sentiment_client.fallback sentiment_client.testing"
  [sentiment-analysis]="sentiment_analysis.handler sentiment_analysis.classifier sentiment_analysis.core"
  [sentiment-ingestion]="sentiment_ingestion.handler"
  [sentiment-dashboard]="sentiment_dashboard.handler sentiment_dashboard.server sentiment_dashboard.cli"
  [sentiment-infra]="sentiment_infra.model_artifact sentiment_infra.config sentiment_infra.packaging sentiment_infra.components"
  [sentiment-model]="sentiment_model.cli"
  [sentiment-local]="sentiment_local.cli sentiment_local.provision sentiment_local.pipeline sentiment_local.dashboard"
)
SHARED_MODEL="${SENTIMENT_SHARED_DIR:-../shared}/models/sst2-distilbert-minilm"
for member in "${!MODULES[@]}"; do
  venv=$(mktemp -d)
  echo "-- $member"
  UV_PROJECT_ENVIRONMENT="$venv" uv sync --locked --package "$member" --no-dev --quiet
  for mod in ${MODULES[$member]}; do
    "$venv/bin/python" -c "import importlib, sys; importlib.import_module(sys.argv[1])" "$mod"
  done
  if [ "$member" = sentiment-model ] && "$venv/bin/python" -c "import pulumi" 2>/dev/null; then
    echo "installing sentiment-model (the publishing command) pulled the Pulumi SDK" >&2
    exit 1
  fi
  if [ "$member" = sentiment-infra ] && [ -f "$SHARED_MODEL/config.json" ]; then
    # The deploy job publishes the model from this Pulumi-only environment: same bundle, same digest, as the workspace.
    ours=$("$venv/bin/python" .ci/bundle_digest.py "$SHARED_MODEL" --without-tokenizer-json)
    workspace=$(uv run --locked python .ci/bundle_digest.py "$SHARED_MODEL" --without-tokenizer-json)
    if [ "$ours" != "$workspace" ]; then
      echo "the Pulumi-only environment builds bundle $ours, the workspace $workspace" >&2
      exit 1
    fi
    echo "   bundle from the Pulumi-only environment = the workspace's ($ours)"
  fi
  rm -rf "$venv"
done
echo "members OK"
