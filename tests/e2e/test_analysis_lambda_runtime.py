"""The analysis handler as Lambda runs it: under ``awslambdaric`` (the image's runtime client) in its own process.

A small Lambda Runtime API on 127.0.0.1 hands out invocations and collects the answers; S3 (the model
bundle) and DynamoDB (the items) are a moto server. One container lifetime: a cold start (direct
invoke), then a warm SQS batch.

Two launchers: ``process`` (this venv's Python under awslambdaric) and ``image``: the built analysis image
run with ``docker run --network host`` (its entrypoint starts awslambdaric against the Runtime API above,
moto is reached on the host's loopback). ``image`` runs when ``SENTIMENT_IMAGE`` names a built image
(``make image`` builds one and sets it), and skips otherwise.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest

from sentiment_local.provision import create_bucket, create_items_table
from sentiment_shared import aws, model_bundle
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.schemas import Item

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUCKET = "sentiment-analyzer-e2e-models"
KEY = "distilbert/v1.0.0/model.tar"
TABLE = "sentiment-analyzer-e2e-items"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sentiment-analyzer-e2e-analysis"
INVOKE_TIMEOUT_S = 180


class RuntimeApi(ThreadingHTTPServer):
    """The slice of the Lambda Runtime API a runtime client uses: next, response, error, init error."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.answers: dict[str, queue.Queue[tuple[str, Any]]] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def invoke(self, event: Any) -> tuple[str, Any]:
        """Queue an invocation and wait for ("response" | "error" | "init_error", body)."""
        request_id = str(uuid.uuid4())
        self.answers[request_id] = queue.Queue()
        self.pending.put((request_id, json.dumps(event).encode()))
        return self.answers[request_id].get(timeout=INVOKE_TIMEOUT_S)


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApi

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/2018-06-01/runtime/invocation/next":
            self._reply(404)
            return
        request_id, body = self.server.pending.get()
        self._reply(
            200,
            body,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 120) * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            },
        )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        parts = self.path.strip("/").split("/")
        if self.path == "/2018-06-01/runtime/init/error":
            for answers in self.server.answers.values():
                answers.put(("init_error", body.decode()))
        elif len(parts) == 5 and parts[3] in self.server.answers and parts[4] in ("response", "error"):
            self.server.answers[parts[3]].put((parts[4], json.loads(body) if body else None))
        else:
            self._reply(404)
            return
        self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    server = RuntimeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


Launcher = Callable[[dict[str, str], IO[bytes]], subprocess.Popen[bytes]]


def _process(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "sentiment_analysis.handler.handler"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _container(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    image = os.environ.get("SENTIMENT_IMAGE", "")
    docker = shutil.which(os.environ.get("SENTIMENT_DOCKER", "docker"))
    if not image or docker is None:
        pytest.skip("set SENTIMENT_IMAGE to a built analysis image (make image does)")
    # Only the function's configuration and moto's dummy credentials: nothing else of this process leaks in.
    credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION")
    credentials += ("AWS_DEFAULT_REGION",)
    passed = {**env, **{k: os.environ[k] for k in credentials if k in os.environ}}
    passed.pop("MODEL_CACHE_DIR", None)  # the settings' default (/tmp/sentiment-model), as deployed
    flags = [f"--env={name}={value}" for name, value in sorted(passed.items())]
    name = f"sentiment-e2e-{uuid.uuid4().hex[:8]}"
    return subprocess.Popen(
        [docker, "run", "--rm", "--init", "--network=host", f"--name={name}", *flags, image],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(params=["process", "image"])
def launcher(request: pytest.FixtureRequest) -> Launcher:
    """How the function process starts: in this venv, or inside the built image."""
    return _process if request.param == "process" else _container


def _sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sentiment-analyzer-e2e-analysis-queue",
        "awsRegion": "us-east-1",
    }


def _sns_body(message: dict[str, Any]) -> str:
    topic = "arn:aws:sns:us-east-1:123456789012:sentiment-analyzer-e2e-items-topic"
    return json.dumps({"Type": "Notification", "TopicArn": topic, "Message": json.dumps(message)})


def test_cold_start_then_warm_sqs_batch_under_the_lambda_runtime_client(
    moto_endpoint: str,
    shared_model_dir: Path,
    runtime_api: RuntimeApi,
    launcher: Launcher,
    tmp_path: Path,
) -> None:
    # Given the model bundle in S3 and two ingested items, on the moto server
    bundle = model_bundle.pack(shared_model_dir, tmp_path / "model.tar")
    create_bucket(BUCKET)
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    with bundle.path.open("rb") as body:
        version_id = s3.put_object(Bucket=BUCKET, Key=KEY, Body=body, Metadata={"sha256": bundle.sha256})["VersionId"]
    # (a later overwrite of the key must not reach this function: it is pinned to its version)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"a newer bundle, not this function's")
    create_items_table(TABLE)
    table = DynamoItemsTable(TABLE)
    table.create(Item(item_id="e2e-1", text="An absolute delight from start to finish."))
    table.create(Item(item_id="e2e-2", text="Dull, slow and far too long."))
    # And a function process under awslambdaric, configured like the stack configures it
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "sentiment-analyzer-e2e-analysis",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/sentiment-analyzer-e2e-analysis",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/23/[$LATEST]e2e",
        "MODEL_BUCKET": BUCKET,
        "MODEL_KEY": KEY,
        "MODEL_SHA256": bundle.sha256,
        "MODEL_VERSION_ID": version_id,
        "ITEMS_TABLE": TABLE,
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "POWERTOOLS_SERVICE_NAME": "analysis",
        "POWERTOOLS_METRICS_NAMESPACE": "SentimentE2E",
    }
    log_path = tmp_path / "function.log"
    with log_path.open("wb") as log:
        process = launcher(env, log)
        try:
            # When the first invocation arrives (cold start: fetch, verify, extract, load)
            kind, cold = runtime_api.invoke({"texts": ["I love it.", "I hate it."]})
            # And then a warm SQS batch: SNS-wrapped, raw, a missing item and malformed JSON
            batch = {
                "Records": [
                    _sqs_record("m-1", _sns_body({"item_id": "e2e-1", "text": "An absolute delight."})),
                    _sqs_record("m-2", json.dumps({"item_id": "e2e-2", "text": "Dull, slow and far too long."})),
                    _sqs_record("m-3", json.dumps({"item_id": "e2e-missing", "text": "Fine."})),
                    _sqs_record("m-4", "{not json"),
                ]
            }
            warm_kind, warm = runtime_api.invoke(batch)
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log_path.read_text(encoding="utf-8", errors="replace")
    # Then the cold start answered per the contract, and said so in its logs
    assert kind == "response", output[-3000:]
    assert cold["statusCode"] == 200
    assert [r["sentiment"] for r in cold["results"]] == ["positive", "negative"]
    assert cold["metrics"]["cold_start"] is True
    for line in ("Downloading model from S3", "Model downloaded from S3", "Model loaded successfully"):
        assert line in output
    # And the warm batch reported exactly the bad records and updated the existing items
    assert warm_kind == "response", output[-3000:]
    assert sorted(f["itemIdentifier"] for f in warm["batchItemFailures"]) == ["m-3", "m-4"]
    first, second = table.get("e2e-1"), table.get("e2e-2")
    assert first is not None
    assert second is not None
    assert (first.sentiment, second.sentiment) == ("positive", "negative")
    assert table.get("e2e-missing") is None
    # And the model was downloaded once: the second invocation found it loaded
    assert output.count("Downloading model from S3") == 1
