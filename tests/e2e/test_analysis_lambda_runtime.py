"""The analysis handler as Lambda runs it: under ``awslambdaric`` (the image's runtime client) in its own process.

A small Lambda Runtime API on 127.0.0.1 hands out invocations and collects the answers; S3 (the model
bundle) and DynamoDB (the items) are a moto server. One container lifetime: a cold start (direct
invoke), then a warm SQS batch.

Two launchers: ``process`` (this venv's Python under awslambdaric) and ``image``: the built analysis image
run with ``docker run --network host`` (its entrypoint starts awslambdaric against the Runtime API above,
moto is reached on the host's loopback). ``image`` runs when ``SENTIMENT_IMAGE`` names a built image
(``make image`` builds one and sets it), and skips otherwise.

The SnapStart test plays Lambda's SnapStart sequence for that runtime client (awslambdaric's ``bootstrap.run``:
with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` it imports the handler (INIT), runs the before-snapshot hooks
registered with ``snapshot_restore_py``, calls ``GET /runtime/restore/next``, runs the after-restore hooks, then
polls for invocations). The snapshot is taken while ``restore/next`` is pending; this Runtime API marks that
moment in the function's log and takes the model object away from S3 before it answers, and an HTTP proxy in front
of moto journals every AWS request and the connection it came on, so the test reads in one ordered journal what
happened before the snapshot and what after the restore.
"""

from __future__ import annotations

import contextlib
import http.client
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
from dataclasses import dataclass, field
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


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A function process stopped mid-keep-alive resets its connections: not the test's failure
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the journal: who was asked (``runtime`` | ``aws`` | ``test``), what, on which connection."""

    source: str
    what: str
    connection: int | None = None
    at: float = field(default_factory=time.monotonic)


class RuntimeApi(_LoopbackServer):
    """The slice of the Lambda Runtime API a runtime client uses: next, response, error, init error, and SnapStart's
    ``restore/next`` and ``restore/error``. Every call is journaled; ``on_restore`` runs while ``restore/next`` is
    pending (the snapshot is being taken), before it is answered."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.answers: dict[str, queue.Queue[tuple[str, Any]]] = {}
        self.journal: list[Event] = []
        self.on_restore: Callable[[], None] = lambda: None

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

    def _fail_all(self, kind: str, body: bytes) -> None:
        for answers in self.server.answers.values():
            answers.put((kind, body.decode()))

    def do_GET(self) -> None:
        self.server.journal.append(Event("runtime", f"GET {self.path.removeprefix('/2018-06-01/runtime/')}"))
        if self.path == "/2018-06-01/runtime/restore/next":
            self.server.on_restore()
            self.server.journal.append(Event("runtime", "(restore/next answered: the copy is restored)"))
            self._reply(200)
            return
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
        self.server.journal.append(Event("runtime", f"POST {'/'.join(parts[2:3] + parts[4:])}"))
        if self.path == "/2018-06-01/runtime/init/error":
            self._fail_all("init_error", body)
        elif self.path == "/2018-06-01/runtime/restore/error":
            self._fail_all("restore_error", body)
        elif len(parts) == 5 and parts[3] in self.server.answers and parts[4] in ("response", "error"):
            self.server.answers[parts[3]].put((parts[4], json.loads(body) if body else None))
        else:
            self._reply(404)
            return
        self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})


class AwsProxy(_LoopbackServer):
    """A loopback HTTP proxy in front of moto that journals each request and the client connection (its port)."""

    def __init__(self, upstream: str, journal: list[Event]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port or 80))
        self.journal = journal

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AwsProxy
    HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"})

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else None
        target = self.headers.get("X-Amz-Target", "")  # DynamoDB's operation; S3's is the method and path
        what = f"{self.command} {self.path.split('?', 1)[0]} {target}".strip()
        self.server.journal.append(Event("aws", what, self.client_address[1]))
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in self.HOP_BY_HOP:
                self.send_header(name, value)
        size = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", size)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    server = RuntimeApi()
    with serving(server):
        yield server


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


@dataclass(frozen=True)
class Deployed:
    """What the stack gives the function, on the moto server: the model bundle in a versioned bucket (the
    function pinned to its version) and the items table."""

    endpoint: str
    bundle: model_bundle.BundleInfo
    version_id: str
    table: DynamoItemsTable


@pytest.fixture
def deployed(moto_endpoint: str, shared_model_dir: Path, tmp_path: Path) -> Deployed:
    """The model packed and put in a new versioned bucket, as the stack publishes it, and an empty items table."""
    bundle = model_bundle.pack(shared_model_dir, tmp_path / "model.tar")
    create_bucket(BUCKET)
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    with bundle.path.open("rb") as body:
        put = s3.put_object(Bucket=BUCKET, Key=KEY, Body=body, Metadata={"sha256": bundle.sha256})
    create_items_table(TABLE)
    return Deployed(moto_endpoint, bundle, put["VersionId"], DynamoItemsTable(TABLE))


def _function_env(endpoint: str, runtime_api: RuntimeApi, deployed: Deployed, tmp_path: Path) -> dict[str, str]:
    """The function's environment as the stack configures it, against this Runtime API and AWS endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "sentiment-analyzer-e2e-analysis",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/sentiment-analyzer-e2e-analysis",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/23/[$LATEST]e2e",
        "MODEL_BUCKET": BUCKET,
        "MODEL_KEY": KEY,
        "MODEL_SHA256": deployed.bundle.sha256,
        "MODEL_VERSION_ID": deployed.version_id,
        "ITEMS_TABLE": TABLE,
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "POWERTOOLS_SERVICE_NAME": "analysis",
        "POWERTOOLS_METRICS_NAMESPACE": "SentimentE2E",
    }


def test_cold_start_then_warm_sqs_batch_under_the_lambda_runtime_client(
    deployed: Deployed, runtime_api: RuntimeApi, launcher: Launcher, tmp_path: Path
) -> None:
    # Given the model bundle in S3 and two ingested items, on the moto server
    table = deployed.table
    # (a later overwrite of the key must not reach this function: it is pinned to its version)
    aws.client("s3").put_object(Bucket=BUCKET, Key=KEY, Body=b"a newer bundle, not this function's")
    table.create(Item(item_id="e2e-1", text="An absolute delight from start to finish."))
    table.create(Item(item_id="e2e-2", text="Dull, slow and far too long."))
    # And a function process under awslambdaric, configured like the stack configures it
    env = _function_env(deployed.endpoint, runtime_api, deployed, tmp_path)
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


def _settled(path: Path, quiet_s: float = 0.5, limit_s: float = 10.0) -> None:
    """Wait until ``path`` stopped growing: what the paused function printed has reached it (docker's copy too)."""
    deadline, size, since = time.monotonic() + limit_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)


RESTORE_MARK = "=== test: restore/next is pending: the snapshot is taken here; the model object is deleted"
# What the analysis function logs at each step of the lifecycle (sentiment_analysis.snapstart), in order
INIT_LOADED, BEFORE_SNAPSHOT, AFTER_RESTORE = (
    "Model ready for the snapshot",
    "AWS clients closed for the snapshot",
    "Restored from snapshot",
)


@pytest.mark.reliability(
    area="analysis: SnapStart",
    case="restore from a snapshot after the model object is gone from S3",
    expected="before-snapshot work fetched and loaded the model; the restored function answers without S3",
)
def test_snapstart_lifecycle_loads_the_model_before_the_snapshot_and_answers_after_restore_without_s3(
    deployed: Deployed, runtime_api: RuntimeApi, launcher: Launcher, tmp_path: Path
) -> None:
    # Given the model bundle in S3 (one version, the function's) and an item to analyse
    s3 = aws.client("s3")
    table = deployed.table
    table.create(Item(item_id="snap-1", text="Dull, slow and far too long."))
    # And the function's AWS traffic through a journaling proxy; its log file shared (O_APPEND) with this test
    proxy = AwsProxy(deployed.endpoint, runtime_api.journal)
    log_path = tmp_path / "function.log"
    log_path.touch()

    def snapshot_taken() -> None:
        # While restore/next is pending the function is paused (Lambda snapshots it now): mark the log, then
        # take the model away, so any fetch after the restore fails
        _settled(log_path)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n{RESTORE_MARK}\n")
        runtime_api.journal.append(Event("test", "snapshot taken; model object deleted"))
        for version in s3.list_object_versions(Bucket=BUCKET, Prefix=KEY).get("Versions", []):
            s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version["VersionId"])

    runtime_api.on_restore = snapshot_taken
    env = _function_env(proxy.url, runtime_api, deployed, tmp_path)
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"  # what Lambda sets for an INIT that ends in a snapshot
    with serving(proxy), log_path.open("ab") as log:
        process = launcher(env, log)
        try:
            # When the first invocation after the restore arrives, then an SQS batch that writes an item
            kind, first = runtime_api.invoke({"texts": ["I love it.", "I hate it."]})
            batch_kind, batch = runtime_api.invoke(
                {"Records": [_sqs_record("s-1", json.dumps({"item_id": "snap-1", "text": "Dull and far too long."}))]}
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log_path.read_text(encoding="utf-8", errors="replace")
    journal = runtime_api.journal
    restored = next(e.at for e in journal if e.what.startswith("(restore/next answered"))
    answered = next((e.at for e in journal if e.what == "POST invocation/response"), restored)
    # (a reading, not a target: the first invocation was queued before INIT ended, so this is restore to answer)
    print(f"restore/next answered -> first response posted: {answered - restored:.3f} s")
    print(
        "\n".join(
            f"{e.source:7} {e.what}" + (f"  (connection :{e.connection})" if e.connection else "") for e in journal
        )
    )
    # Then the runtime client went through SnapStart's sequence: INIT, restore/next (snapshot), then invocations
    runtime = [e.what for e in journal if e.source == "runtime"]
    assert runtime[:3] == ["GET restore/next", "(restore/next answered: the copy is restored)", "GET invocation/next"]
    assert not [what for what in runtime if "error" in what], output[-3000:]
    # And the restored function answered from the snapshot's model, with the model object gone from S3
    assert kind == "response", output[-3000:]
    assert first["statusCode"] == 200
    assert [r["sentiment"] for r in first["results"]] == ["positive", "negative"]
    assert batch_kind == "response", output[-3000:]
    assert batch["batchItemFailures"] == []
    stored = table.get("snap-1")
    assert stored is not None
    assert stored.sentiment == "negative"
    # And the before-snapshot work fetched the model; nothing after the restore asked S3 for it
    snapshot = next(i for i, e in enumerate(journal) if e.source == "test")
    model_path = f"/{BUCKET}/{KEY}"
    before, after = journal[:snapshot], journal[snapshot + 1 :]
    assert any(e.what.startswith("GET ") and e.what.endswith(model_path) for e in before), "INIT fetched no model"
    assert [e.what for e in after if model_path in e.what] == []
    # And no connection opened before the snapshot carried a request after the restore (they are dead in Lambda)
    pooled = {e.connection for e in before if e.source == "aws"}
    assert [e.what for e in after if e.source == "aws" and e.connection in pooled] == []
    # And in the function's log: downloaded and loaded once, before the snapshot; after it, no model work
    logged_before, marked, logged_after = output.partition(RESTORE_MARK)
    assert marked, output[-3000:]
    for line in ("Downloading model from S3", "Model loaded successfully"):
        assert logged_before.count(line) == 1, line
        assert line not in logged_after, line
    # And the hooks ran in their order: INIT's load, the before-snapshot hook, [snapshot], the after-restore hook
    # (each once), and the first invocation came after all of them (the runtime journal above)
    steps = [logged_before.find(INIT_LOADED), logged_before.find(BEFORE_SNAPSHOT), len(logged_before)]
    assert -1 not in steps, logged_before[-3000:]
    assert steps == sorted(steps)
    assert logged_before.find("Model loaded successfully") < steps[0]
    assert [output.count(line) for line in (INIT_LOADED, BEFORE_SNAPSHOT, AFTER_RESTORE)] == [1, 1, 1]
    assert AFTER_RESTORE in logged_after
