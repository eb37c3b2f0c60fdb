"""The ``BeforeAllowTraffic`` hook: it reports Succeeded only for right and quick answers of the target version.

CodeDeploy and Lambda are botocore clients with a ``Stubber``: every request the hook makes is checked
against the services' own API models (parameter names and types), and the answers have their shapes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from sentiment_analysis import release_check
from sentiment_analysis.release_check import KNOWN_TEXTS, run_hook

pytestmark = pytest.mark.unit

EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "hook-execution-1"}
FUNCTION = "sentiment-analysis-fn"


def _client(service: str) -> Any:
    return botocore.session.get_session().create_client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _appspec(name: str = FUNCTION, target: str = "7") -> str:
    props = {"Name": name, "Alias": "live", "CurrentVersion": "6", "TargetVersion": target}
    return json.dumps(
        {"version": 0.0, "Resources": [{"analysis": {"Type": "AWS::Lambda::Function", "Properties": props}}]}
    )


def _answer(sentiments: list[str]) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "results": [{"sentiment": s, "score": 0.99, "label": s.upper()} for s in sentiments],
        "count": len(sentiments),
    }


def _payload(body: object) -> StreamingBody:
    raw = json.dumps(body).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


class Hook:
    """The hook's CodeDeploy and Lambda clients, stubbed: the deployment's AppSpec ``appspec``, then what the
    test adds (the invocations, the status reported)."""

    def __init__(self, appspec: str | None = None) -> None:
        self.codedeploy, self.lambda_client = _client("codedeploy"), _client("lambda")
        self.cd, self.lam = Stubber(self.codedeploy), Stubber(self.lambda_client)
        self.deployment(_appspec() if appspec is None else appspec)

    def deployment(self, content: str) -> None:
        # GetDeployment names an inline AppSpec by its sha256 only; GetApplicationRevision returns its text
        revision = {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": "ab" * 32}}
        info = {"deploymentId": EVENT["DeploymentId"], "applicationName": "release-app", "revision": revision}
        self.cd.add_response("get_deployment", {"deploymentInfo": info}, {"deploymentId": EVENT["DeploymentId"]})
        self.cd.add_response(
            "get_application_revision",
            {"applicationName": "release-app", "revision": {"revisionType": "String", "string": {"content": content}}},
            {"applicationName": "release-app", "revision": revision},
        )

    def invoke(self, body: object, *, version: str = "7", error: str | None = None) -> None:
        texts = json.dumps({"texts": [t for t, _ in KNOWN_TEXTS]}).encode()
        response: dict[str, Any] = {"StatusCode": 200, "Payload": _payload(body), "ExecutedVersion": version}
        if error:
            response["FunctionError"] = error
        expected = {
            "FunctionName": FUNCTION,
            "Qualifier": version,
            "InvocationType": "RequestResponse",
            "Payload": texts,
        }
        self.lam.add_response("invoke", response, expected)

    def expect_status(self, status: str) -> None:
        self.cd.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": EVENT["DeploymentId"],
                "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
                "status": status,
            },
        )

    def run(self, expect: str, *, clock_ms: list[float] | None = None, max_ms: float = 5000) -> None:
        """Run the hook; it must report ``expect`` to CodeDeploy (the Stubber checks the call) and return it."""
        self.expect_status(expect)
        ticks: Iterator[float] = iter([t / 1000 for t in (clock_ms or [0, 100, 200, 300])])
        with self.cd, self.lam:
            status = run_hook(
                EVENT,
                self.codedeploy,
                self.lambda_client,
                expected_function=FUNCTION,
                max_ms=max_ms,
                clock=lambda: next(ticks),
            )
            self.cd.assert_no_pending_responses()
            self.lam.assert_no_pending_responses()
        assert status == expect


RIGHT = [expected for _, expected in KNOWN_TEXTS]


def test_a_version_that_answers_right_and_quickly_passes() -> None:
    hook = Hook()
    hook.invoke(_answer(RIGHT))
    hook.invoke(_answer(RIGHT))
    hook.run(expect="Succeeded")


@pytest.mark.reliability(
    area="release: the BeforeAllowTraffic check (botocore Stubbers)",
    case="the new version answers wrongly, partly, with a 400 or a function error",
    expected="Failed reported to CodeDeploy",
)
@pytest.mark.parametrize(
    ("body", "error"),
    [
        (_answer(["negative" if s == "positive" else "positive" for s in RIGHT]), None),  # wrong sentiments
        (_answer(RIGHT[:-1]), None),  # a result missing
        ({"statusCode": 400, "error": "no texts"}, None),  # refused
        ({"errorMessage": "Unable to import module", "errorType": "Runtime.ImportModuleError"}, "Unhandled"),
    ],
    ids=["wrong-sentiments", "result-missing", "400", "function-error"],
)
def test_a_wrong_answer_fails_the_deployment(body: object, error: str | None) -> None:
    hook = Hook()
    hook.invoke(body, error=error)
    hook.run(expect="Failed")


@pytest.mark.reliability(
    area="release: the BeforeAllowTraffic check (botocore Stubbers)",
    case="the new version answers right but slower than releaseCheckMaxMs",
    expected="Failed reported to CodeDeploy",
)
def test_a_slow_answer_fails_the_deployment_even_when_right() -> None:
    # Given a version whose warm (second) answer takes 6 s against a 5 s limit
    hook = Hook()
    hook.invoke(_answer(RIGHT))
    hook.invoke(_answer(RIGHT))
    hook.run(expect="Failed", clock_ms=[0, 1200, 1200, 7200], max_ms=5000)


def test_a_slow_cold_start_fails_before_the_second_invocation() -> None:
    hook = Hook()
    hook.invoke(_answer(RIGHT))
    hook.run(expect="Failed", clock_ms=[0, 9000], max_ms=5000)


@pytest.mark.parametrize("content", ["not json", _appspec(name="some-other-function")])
def test_an_unreadable_or_foreign_appspec_reports_failed_and_invokes_nothing(content: str) -> None:
    hook = Hook(content)
    hook.run(expect="Failed")  # always reports: a silent hook would hold the deployment for an hour


def test_the_handler_reads_its_function_and_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = Hook()
    hook.invoke(_answer(RIGHT))
    hook.invoke(_answer(RIGHT))
    hook.expect_status("Succeeded")
    monkeypatch.setenv("ANALYSIS_FUNCTION_NAME", FUNCTION)
    monkeypatch.setenv("RELEASE_CHECK_MAX_MS", "60000")
    monkeypatch.setattr(release_check, "_clients", lambda: (hook.codedeploy, hook.lambda_client))
    with hook.cd, hook.lam:
        assert release_check.handler(EVENT, None) == {"status": "Succeeded"}
