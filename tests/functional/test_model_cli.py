"""``sentiment-model``: exit codes, one-line errors, JSON output and idempotency (in-process and as a real process)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fake_hub import FakeHub, FakeRepo, serving
from model_fixtures import FAKE_COMMIT, hub_repo_files, make_model_dir

from sentiment_model.cli import main
from sentiment_shared import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.functional

BUCKET = "models"
KEY = "distilbert/v1.0.0/model.tar"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err: str) -> None:
    assert err.startswith("sentiment-model: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_publish_prints_json_and_is_idempotent(
    tmp_path: Path, s3: S3Client, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a local model
    model = make_model_dir(tmp_path / "model")
    argv = ["publish", "--model-dir", str(model), "--bucket", BUCKET, "--key", KEY, "--json"]

    # When it is published twice
    first_code, first_out, _ = _run(capsys, *argv)
    second_code, second_out, _ = _run(capsys, *argv)

    # Then both succeed with one JSON object each; the second uploaded nothing
    first, second = json.loads(first_out), json.loads(second_out)
    assert (first_code, second_code) == (0, 0)
    assert first["s3_uri"] == f"s3://{BUCKET}/{KEY}"
    assert (first["uploaded"], second["uploaded"]) == (True, False)
    assert first["sha256"] == second["sha256"] == s3.head_object(Bucket=BUCKET, Key=KEY)["Metadata"]["sha256"]
    assert first["size"] == s3.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"]


def test_publish_without_json_prints_a_summary(
    tmp_path: Path, s3: S3Client, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_model_dir(tmp_path / "model")
    code, out, err = _run(capsys, "publish", "--model-dir", str(model), "--bucket", BUCKET, "--key", KEY)
    assert code == 0
    assert out.startswith(f"uploaded: s3://{BUCKET}/{KEY}")
    assert err == ""  # no progress bars off a terminal


def test_pack_writes_the_bundle_and_prints_its_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model_dir(tmp_path / "model")
    code, out, _ = _run(capsys, "pack", str(model), str(tmp_path / "out" / "model.tar"), "--json")
    payload = json.loads(out)
    assert code == 0
    assert Path(payload["path"]).stat().st_size == payload["size"]
    code, out, _ = _run(capsys, "pack", str(model), str(tmp_path / "again.tar"))
    assert out.split()[0] == payload["sha256"]  # reproducible


@pytest.mark.parametrize(
    ("argv", "code", "match"),
    [
        (["publish", "--bucket", BUCKET, "--key", KEY], 2, "one of the arguments --model-dir --model is required"),
        (["publish", "--model-dir", "x", "--model", "y", "--bucket", BUCKET, "--key", KEY], 2, "not allowed with"),
        (["publish", "--model-dir", "x", "--bucket", BUCKET], 2, "--key"),
        (["frobnicate"], 2, "invalid choice"),
        (["publish", "--model-dir", "/no/such/dir", "--bucket", BUCKET, "--key", KEY], 1, "not found"),
        (["pack", "/no/such/dir", "out.tar"], 1, "not found"),
        (["publish", "--model", "../etc", "--bucket", BUCKET, "--key", KEY], 1, "not a Hugging Face model id"),
        (["publish", "--model-dir", "x", "--bucket", "Bad_Bucket!", "--key", KEY], 2, "'Bad_Bucket!' is not an S3"),
        (["publish", "--model-dir", "x", "--bucket", "a..b", "--key", KEY], 2, "not an S3 bucket name"),
        (["publish", "--model-dir", "x", "--bucket", "10.0.0.1", "--key", KEY], 2, "not an S3 bucket name"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, match: str
) -> None:
    exit_code, out, err = _run(capsys, *argv)
    assert exit_code == code
    assert out == ""
    _assert_one_line_error(err)
    assert match in err


def test_dir_without_weights_is_refused(tmp_path: Path, s3: S3Client, capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model_dir(tmp_path / "model")
    (model / "model.safetensors").unlink()
    code, _, err = _run(capsys, "publish", "--model-dir", str(model), "--bucket", BUCKET, "--key", KEY)
    assert code == 1
    _assert_one_line_error(err)
    assert "safetensors weights" in err


def test_missing_bucket_is_refused(tmp_path: Path, moto_aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model_dir(tmp_path / "model")
    code, _, err = _run(capsys, "publish", "--model-dir", str(model), "--bucket", "nope", "--key", KEY)
    assert code == 1
    _assert_one_line_error(err)
    assert "bucket 'nope' does not exist" in err


def test_no_credentials_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an environment without any AWS credentials
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    aws.reset_clients()
    model = make_model_dir(tmp_path / "model")

    code, _, err = _run(capsys, "publish", "--model-dir", str(model), "--bucket", BUCKET, "--key", KEY)

    assert code == 1
    _assert_one_line_error(err)
    assert "no AWS credentials" in err


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    repos = {"acme/tiny-sst2": FakeRepo(commits={FAKE_COMMIT: hub_repo_files()}, refs={"main": FAKE_COMMIT})}
    with serving(repos, tmp_path / "hub-cache", monkeypatch) as fake:
        yield fake


def test_publish_from_the_hub(hub: FakeHub, s3: S3Client, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "publish", "--model", "acme/tiny-sst2@main", "--bucket", BUCKET, "--key", KEY, "--json")
    assert code == 0
    assert json.loads(out)["source_revision"] == FAKE_COMMIT


def _console_script() -> list[str]:
    script = shutil.which("sentiment-model", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "sentiment_model.cli"]


@pytest.mark.slow
def test_the_console_script_as_a_real_process(tmp_path: Path, moto_endpoint: str) -> None:
    # Given a moto server with a bucket, reached through AWS_ENDPOINT_URL like any deployment tool
    aws.client("s3").create_bucket(Bucket=BUCKET)
    model = make_model_dir(tmp_path / "model")
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint}
    argv = [*_console_script(), "publish", "--model-dir", str(model), "--bucket", BUCKET, "--key", KEY, "--json"]

    # When it is published in-process, then by the console script, then to a missing bucket
    assert main(argv[len(_console_script()) :]) == 0
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    bad = subprocess.run(
        [*argv[:-5], "--bucket", "nope", "--key", KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the process exits 0 with JSON saying the identical object was already there;
    # and exits 1 with a one-line error for the missing bucket
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["uploaded"] is False
    assert bad.returncode == 1
    _assert_one_line_error(bad.stderr)


def test_progress_bars_only_on_a_terminal(
    tmp_path: Path, s3: S3Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given stderr is a real terminal (a pseudo-terminal)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a fresh pty is 0 columns wide
    with os.fdopen(terminal, "w", closefd=True) as tty_stderr:
        monkeypatch.setattr(sys, "stderr", tty_stderr)
        model = make_model_dir(tmp_path / "model")

        # When a model is published
        code = main(["publish", "--model-dir", str(model), "--bucket", BUCKET, "--key", KEY, "--json"])
        tty_stderr.flush()
        drawn = b""
        while select.select([controller], [], [], 0.2)[0]:
            drawn += os.read(controller, 65536)
    os.close(controller)

    # Then an upload progress bar was drawn on the terminal, while stdout stays pure JSON
    assert code == 0
    assert b"upload" in drawn
    assert json.loads(capsys.readouterr().out)["uploaded"] is True
