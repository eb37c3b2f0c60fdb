"""The backend client against the REAL analysis handler, in-process, with the shared trained model.

``InProcessLambda`` stands for ``lambda.invoke``: it JSON-encodes the payload as Lambda would, calls
``sentiment_analysis.handler.handler(event, context)`` (one invocation at a time, like one warm
container), and returns the response as a payload stream — or, when the handler raises, the
``FunctionError`` response the Lambda runtime produces. The model bundle is packed from
``../shared/models/sst2-distilbert-minilm`` and served by moto S3, so the handler's real cold start
(fetch, verify, extract, load) runs too.
"""

from __future__ import annotations

import io
import json
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sentiment_client.client import (
    LAMBDA_SYNC_PAYLOAD_LIMIT,
    FunctionFailedError,
    SentimentClient,
)
from sentiment_local.esm import LocalLambdaContext
from sentiment_shared import aws
from sentiment_shared.model_bundle import pack
from sentiment_shared.settings import AnalysisSettings, environment, reset_settings_cache
from sentiment_shared.stack import model_key

pytestmark = pytest.mark.functional

FUNCTION = "sentiment-analyzer-test-analysis"
BUCKET = "sentiment-analyzer-test-models"
KEY = model_key("sst2-distilbert-minilm", "v1", "model.tar")

TEXTS = [
    "I love this!",
    "This is terrible.",
    "A gorgeous, witty, seductive movie.",
    "The plot is a mess and the acting is worse.",
    "",  # the handler's documented answer for empty text: neutral, score 0, no label
    "Un film très réussi, une merveille — I adored every minute.",
    "Das war leider nichts. Boring, slow and far too long.",
    "It's a film. It has a beginning, a middle and an end.",
    "🙂 what a delightful surprise 🎉",
    "I love this!",  # a duplicate: classified once by the handler, answered twice
    "An utterly charming and hilarious film that reminded me of the joy of cinema.",
    "Neither funny nor moving, just dull.",
    "日本語のテキストも送られる — the service should not choke on it.",
]


class InProcessLambda:
    """``lambda.invoke`` of the analysis function, run in this process (one invocation at a time)."""

    def __init__(self) -> None:
        self.calls = 0
        self._container = threading.Lock()  # a warm container serves one invocation at a time

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        from sentiment_analysis.handler import handler

        assert FunctionName == FUNCTION
        assert InvocationType == "RequestResponse"
        if len(Payload) > LAMBDA_SYNC_PAYLOAD_LIMIT:
            response: Any = {
                "Error": {"Code": "RequestTooLargeException", "Message": "Request must be smaller than 6291456 bytes"},
                "ResponseMetadata": {"HTTPStatusCode": 413},
            }
            raise ClientError(response, "Invoke")
        event = json.loads(Payload)
        # The runtime logs warnings, it doesn't raise them (pytest's filterwarnings=error would turn the
        # handler's own Powertools "no metrics" warning after a crash into the reported error).
        with self._container, warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            self.calls += 1
            try:
                result = handler(event, LocalLambdaContext())
            except Exception as exc:  # noqa: BLE001 - the runtime turns any exception into a FunctionError
                error = {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }
                return {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": io.BytesIO(json.dumps(error).encode()),
                }
        body = json.dumps(result).encode()
        assert len(body) <= LAMBDA_SYNC_PAYLOAD_LIMIT, "response over Lambda's limit"
        return {"StatusCode": 200, "Payload": io.BytesIO(body), "ExecutedVersion": "$LATEST"}


@pytest.fixture(scope="module")
def bundle(shared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    info = pack(shared_model_dir, tmp_path_factory.mktemp("bundle") / "model.tar")
    return info.path, info.sha256


def _configure_function(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bundle: bytes | Path, sha256: str) -> None:
    """Upload the bundle to (moto) S3 and give the handler the analysis function's environment."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    if isinstance(bundle, Path):
        s3.upload_file(str(bundle), BUCKET, KEY)
    else:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=bundle)
    env = environment(
        AnalysisSettings,
        model_bucket=BUCKET,
        model_key=KEY,
        model_sha256=sha256,
        items_table="unused-by-direct-invokes",
        model_cache_dir=str(tmp_path / "model-cache"),
        # fp32, not auto: the client's fallback compares scores with the function's to ~1e-6, which only
        # holds when both ran the same precision (int8's scores differ from fp32's by ~1e-3).
        model_precision="fp32",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()


@pytest.mark.slow
def test_client_answers_match_a_direct_handler_call(
    moto_aws: None, bundle: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    from sentiment_analysis.handler import handler

    _configure_function(monkeypatch, tmp_path, *bundle)
    # Given the real handler behind an in-process invoke, and a client splitting 13 texts into 5 invokes
    function = InProcessLambda()
    client = SentimentClient(FUNCTION, lambda_client=function, max_batch=3, concurrency=2)  # type: ignore[arg-type]
    # When the client classifies them, and the handler is called directly with all of them at once
    results = client.classify(TEXTS)
    direct = handler({"texts": TEXTS}, lambda_context)
    # Then the client made one invoke per batch and every answer is the direct call's, in input order
    assert function.calls == 5
    assert direct["statusCode"] == 200
    assert len(results) == len(direct["results"]) == len(TEXTS)
    for text, got, want in zip(TEXTS, results, direct["results"], strict=True):
        assert (got.sentiment, got.label, got.source) == (want["sentiment"], want["label"], "model"), text
        assert got.score == pytest.approx(want["score"], abs=1e-4), text
    # And the answers are the model's, not placeholders: clear cases are right, empty text is neutral
    by_text = dict(zip(TEXTS, results, strict=True))
    assert by_text["I love this!"].sentiment == "positive"
    assert by_text["This is terrible."].sentiment == "negative"
    assert (by_text[""].sentiment, by_text[""].score, by_text[""].label) == ("neutral", 0.0, "")
    assert {r.label for r in results} >= {"POSITIVE", "NEGATIVE"}


def test_handler_crash_reaches_the_caller_as_a_function_error(
    moto_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function whose model object is not a bundle at all: its cold start refuses it
    _configure_function(monkeypatch, tmp_path, b"not the bundle that was published", "0" * 64)
    client = SentimentClient(FUNCTION, lambda_client=InProcessLambda())  # type: ignore[arg-type]
    # When a backend classifies
    with pytest.raises(FunctionFailedError) as info:
        client.classify(["I love this!"])
    # Then it gets the function's own error (not a made-up result): what was raised, and why
    error = info.value
    assert (error.function_error, error.error_type) == ("Unhandled", "BundleError")
    assert "not a model bundle" in error.error_message
    assert f"BundleError: {error.error_message}" in str(error)
