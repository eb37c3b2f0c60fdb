"""Both command-line tools end every AWS or network failure as one line naming what failed, exit 1.

The emulator here is a real HTTP server on loopback: S3 calls succeed, every DynamoDB call answers
HTTP 500, so ``sentiment-local run`` gets past the bucket and fails creating the items table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback import LoopbackEndpoint, Reply, Request
from model_fixtures import make_model_dir

from sentiment_local import cli as local_cli
from sentiment_model import cli as model_cli

pytestmark = pytest.mark.functional

_DYNAMODB_BROKE = Reply(
    500, b'{"__type":"InternalServerError","message":"emulator broke"}', {"Content-Type": "application/x-amz-json-1.0"}
)


def _dynamodb_fails(request: Request) -> Reply:
    return _DYNAMODB_BROKE if request.target.startswith("DynamoDB_") else Reply(200)


def _one_line(err: str, prog: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ")
    return lines[0]


def _local_run(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``sentiment-local run --endpoint-url url``: its exit code, stdout and stderr."""
    dirs = ["--model-dir", str(tmp_path), "--state-dir", str(tmp_path)]
    code = local_cli.main(["run", "--endpoint-url", url, *dirs, "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_local_run_against_an_emulator_answering_500_to_create_table(
    loopback_endpoint: LoopbackEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loopback_endpoint.reply = _dynamodb_fails

    code, out, err = _local_run(loopback_endpoint.url, tmp_path, capsys)

    assert (code, out) == (1, "")
    line = _one_line(err, "sentiment-local")
    assert "CreateTable" in line
    assert "(HTTP 500)" in line
    # the call and botocore's 5 retries (``max_attempts`` counts retries), nothing on top
    targets = [request.target for request in loopback_endpoint.requests]
    assert targets.count("DynamoDB_20120810.CreateTable") == 6


def test_local_run_against_an_endpoint_nobody_listens_on(
    unreachable_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _local_run(unreachable_url, tmp_path, capsys)

    assert code == 1
    assert "Could not connect to the endpoint URL" in _one_line(err, "sentiment-local")


def test_model_publish_against_an_endpoint_nobody_listens_on(
    unreachable_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", unreachable_url)
    model = make_model_dir(tmp_path / "model")

    code = model_cli.main(["publish", "--model-dir", str(model), "--bucket", "models", "--key", "k/model.tar"])

    _, err = capsys.readouterr()
    assert code == 1
    assert "Could not connect to the endpoint URL" in _one_line(err, "sentiment-model")
