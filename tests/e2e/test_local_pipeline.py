"""``sentiment-local run`` end to end: the real handlers, bundle and topic → queue → function flow on moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from sentiment_local.pipeline import RunOptions, run
from sentiment_shared.stack import DEFAULT_QUEUE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _cli(args: list[str], state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "sentiment_local.cli", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_run_analyses_every_item_and_a_second_run_ingests_nothing_new(shared_model_dir: Path, tmp_path: Path) -> None:
    # Given a fresh state directory and the shared model
    args = ["run", "--model-dir", str(shared_model_dir), "--json"]
    # When the pipeline runs through its console entry point
    first = _cli(args, tmp_path)
    # Then it succeeds with one JSON object on stdout in which every ingested item ends analyzed
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    assert report["ingested"] >= 40
    assert report["analyzed"] == report["ingested"]
    assert report["failed"] == 0
    assert report["dlq_depth"] == 0
    assert report["positive"] + report["negative"] + report["neutral"] == report["analyzed"]
    assert report["positive"] > 0
    assert report["negative"] > 0
    assert {"provision", "publish_model", "ingest", "analyze", "total"} <= report["timings"].keys()
    assert report["model"]["uploaded"] is True
    assert all(r["sentiment"] in ("positive", "negative", "neutral") for r in report["results"])

    # When it runs again on the same feed
    second = _cli(args, tmp_path)
    # Then nothing new is ingested: every entry is a duplicate, and the identical bundle is not re-uploaded
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert again["ingested"] == 0
    assert again["duplicates"] == report["ingested"]
    assert again["analyzed"] == 0


def test_missing_model_dir_is_a_one_line_error(tmp_path: Path) -> None:
    result = _cli(["run", "--model-dir", str(tmp_path / "nope"), "--json"], tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("sentiment-local: error:")
    assert "Traceback" not in result.stderr


def _item_id(record: dict[str, Any]) -> str:
    envelope = json.loads(record["body"])
    return str(json.loads(envelope["Message"])["item_id"])


def _faulty(real: Any) -> Any:
    """Fail every delivery of ~1 in 4 items (chosen by a hash of the item id); pass the rest to ``real``."""

    def handler(event: dict[str, Any], context: Any) -> Any:
        bad = [r for r in event["Records"] if zlib.crc32(_item_id(r).encode()) % 4 == 0]
        good = [r for r in event["Records"] if r not in bad]
        failures = [{"itemIdentifier": r["messageId"]} for r in bad]
        if good:
            response = real({**event, "Records": good}, context)
            failures += response.get("batchItemFailures", [])
        return {"batchItemFailures": failures}

    return handler


@pytest.mark.reliability(
    area="local pipeline",
    case="analysis fails every delivery of ~1/4 of the records",
    expected="those records are received maxReceiveCount times, then parked in the DLQ; the rest analyzed",
)
def test_injected_handler_faults_are_retried_then_parked_in_the_dlq(
    shared_model_dir: Path, tmp_path: Path, moto_endpoint: str
) -> None:
    from sentiment_analysis.handler import handler as real_handler

    # Given an already running emulator (--endpoint-url) and a handler that fails on every delivery
    # of about a quarter of the items
    # When the pipeline runs with it
    report = run(
        RunOptions(model_dir=shared_model_dir, state_dir=tmp_path, endpoint_url=moto_endpoint),
        analysis_handler=_faulty(real_handler),
    )
    # Then those records were delivered maxReceiveCount times, parked in the DLQ and counted as failed;
    # every other item ended analyzed: nothing is lost
    data = report.as_dict()
    n_bad = data["failed"]
    assert n_bad > 0
    assert data["dlq_depth"] == n_bad
    assert data["analyzed"] + n_bad == data["ingested"]
    assert report.drain.record_failures == DEFAULT_QUEUE.max_receive_count * n_bad
    assert not report.drain.timed_out
    failed_ids = {r["item_id"] for r in data["results"] if r["sentiment"] is None}
    assert all(zlib.crc32(i.encode()) % 4 == 0 for i in failed_ids)
    assert report.endpoint_url == moto_endpoint
    # And the emulator was not ours to keep: no local state was written for it
    assert not (tmp_path / "items-table.jsonl").exists()


def test_classify_prints_one_answer_per_text(shared_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sentiment_local.cli import main

    texts = ["I love this, it is wonderful!", "This is terrible and I hate it.", "   "]
    code = main(["classify", *texts, "--model-dir", str(shared_model_dir), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out)
    assert [r["text"] for r in rows] == texts
    assert [r["sentiment"] for r in rows] == ["positive", "negative", "neutral"]
    assert rows[0]["label"] == "POSITIVE"
    assert rows[1]["label"] == "NEGATIVE"
