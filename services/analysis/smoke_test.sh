#!/usr/bin/env bash
# Smoke test of a built analysis image, run by the deploy workflow before the image is pushed:
#   services/analysis/smoke_test.sh IMAGE
# 1. imports: the handler and its stack import; torch is the CPU build; no CUDA/triton packages;
# 2. the image runs as a non-root user;
# 3. the Lambda runtime (the base image's emulator) answers a malformed direct invoke with 400, which
#    exercises the handler end to end without AWS credentials or a model.
set -euo pipefail

image="${1:?usage: $0 IMAGE}"
port="${SMOKE_PORT:-9123}"
name="sentiment-analysis-smoke-$$"

echo "== imports and dependency set"
docker run --rm --platform linux/amd64 --entrypoint python3 "$image" -c '
import importlib.metadata as md, sys, torch, transformers
import sentiment_analysis.handler, sentiment_analysis.classifier
assert torch.version.cuda is None, f"CUDA build of torch: {torch.__version__}"
assert "+cpu" in torch.__version__, torch.__version__
gpu = sorted(d.metadata["Name"] for d in md.distributions()
             if d.metadata["Name"].lower().startswith(("nvidia", "triton", "cuda")))
assert not gpu, f"GPU-only packages in the image: {gpu}"
print("torch", torch.__version__, "transformers", transformers.__version__, "python", sys.version.split()[0])
'

echo "== non-root user"
uid="$(docker run --rm --platform linux/amd64 --entrypoint id "$image" -u)"
if [ "$uid" = "0" ]; then echo "image runs as root" >&2; exit 1; fi
echo "uid $uid"

echo "== Lambda runtime answers a direct invoke"
docker run -d --rm --platform linux/amd64 --name "$name" -p "127.0.0.1:${port}:8080" "$image" >/dev/null
trap 'docker stop "$name" >/dev/null 2>&1 || true' EXIT
url="http://127.0.0.1:${port}/2015-03-31/functions/function/invocations"
response=""
for _ in $(seq 1 60); do
  if response="$(curl -fsS -X POST "$url" -d '{"texts": "not a list"}' 2>/dev/null)"; then break; fi
  sleep 1
done
echo "$response"
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["statusCode"] == 400 and r["error"], r' "$response"
echo "smoke test passed"
