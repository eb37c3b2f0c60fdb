"""SnapStart's lifecycle in a real process: INIT under snap-start, awslambdaric's hook runner, a restore.

``sentiment_local.snapstart_process`` plays awslambdaric's snap-start sequence (INIT = importing the handler
module, before-snapshot hooks, the wait where ``/runtime/restore/next`` blocks, after-restore hooks, an
invocation). Between the hooks the model object is deleted from S3 (moto server) and the model cache from
disk, so any fetch or load after the restore would fail the invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentiment_shared import aws, model_bundle

pytestmark = [pytest.mark.functional, pytest.mark.slow]

BUCKET = "snapstart-models"
KEY = "distilbert/v1.0.0/model.tar"
TEXTS = ["What a wonderful, moving film.", "A dull, tedious mess."]


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the process exited ({process.returncode}) before {path.name}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {path.name} after {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def _function_env(endpoint: str, bundle: model_bundle.BundleInfo, cache: Path, init_type: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
        "MODEL_BUCKET": BUCKET,
        "MODEL_KEY": KEY,
        "MODEL_SHA256": bundle.sha256,
        "MODEL_CACHE_DIR": str(cache),
        "ITEMS_TABLE": "unused",
        "TORCH_THREADS": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


@pytest.fixture
def published(moto_endpoint: str, shared_model_dir: Path, tmp_path: Path) -> model_bundle.BundleInfo:
    bundle = model_bundle.pack(shared_model_dir, tmp_path / "model.tar")
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=bundle.path.read_bytes(), Metadata={"sha256": bundle.sha256})
    return bundle


def test_a_restored_snapshot_answers_without_fetching_the_model(
    published: model_bundle.BundleInfo, moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a process that ran INIT under snap-start and the before-snapshot hooks
    control, cache, log = tmp_path / "control", tmp_path / "cache", tmp_path / "process.log"
    control.mkdir()
    env = _function_env(moto_endpoint, published, cache, "snap-start")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sentiment_local.snapstart_process", str(control)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(control / "ready", process, 180, log)
        # When the model object leaves S3 and the cache leaves disk, then the copy is restored and invoked
        aws.client("s3").delete_object(Bucket=BUCKET, Key=KEY)
        for path in sorted(cache.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (control / "request.json").write_text(json.dumps({"texts": TEXTS}))
        (control / "restore").touch()
        _wait_for(control / "answer.json", process, 60, log)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    answer = json.loads((control / "answer.json").read_text())
    # Then it answers from the model INIT loaded
    response = answer["response"]
    assert response["statusCode"] == 200
    assert [r["sentiment"] for r in response["results"]] == ["positive", "negative"]
    assert response["metrics"]["cold_start"] is False  # nothing was loaded by the invocation
    # And the hooks ran in awslambdaric's order, around the snapshot, with no load after it
    messages = [m for m in answer["messages"] if m != "Precision chosen"]
    snapshot = messages.index("-- snapshot --")
    assert messages[:snapshot] == [
        "Downloading model from S3",
        "Model downloaded from S3",
        "Model loaded successfully",
        "Model warmed",
        "Model ready for the snapshot",
        "AWS clients closed for the snapshot",
    ]
    assert messages[snapshot + 1 :] == ["Restored from snapshot"]
    # And no AWS call happened after the restore (no S3 request for the model), with a new S3 client
    assert answer["api_calls_after_restore"] == []
    assert answer["new_s3_client"] is True
    # And the copy's randomness is its own, and the precision was measured again on this CPU
    assert answer["random_state_reseeded"] is True
    assert answer["torch_seed_reseeded"] is True
    assert answer["messages"].count("Precision chosen") == 2  # at INIT and after the restore
    assert answer["precision"] in ("fp32", "int8")


def test_on_demand_init_loads_nothing_until_the_first_invocation(
    published: model_bundle.BundleInfo, moto_endpoint: str, tmp_path: Path
) -> None:
    # Given an on-demand INIT (no SnapStart): importing the handler module
    code = (
        "import json, sys; from sentiment_analysis import handler; "
        "print(json.dumps({'loaded': handler.models.loaded is not None, 'torch': 'torch' in sys.modules}))"
    )
    env = _function_env(moto_endpoint, published, tmp_path / "cache", "on-demand")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    # Then nothing was fetched or loaded (the first invocation does it, as before)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"loaded": False, "torch": False}
    assert not (tmp_path / "cache").exists()


def test_a_snap_start_init_that_cannot_load_the_model_fails_init(
    published: model_bundle.BundleInfo, moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a snap-start INIT whose configured digest is not the bundle's
    env = _function_env(moto_endpoint, published, tmp_path / "cache", "snap-start")
    env["MODEL_SHA256"] = "0" * 64
    # When the runtime imports the handler module
    command = [sys.executable, "-c", "import sentiment_analysis.handler"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    # Then INIT fails (Lambda then fails the version's publish) with the reason, and nothing is cached
    assert out.returncode != 0
    assert "sha256 mismatch" in out.stderr
    assert not any((tmp_path / "cache").rglob("*.safetensors"))
