"""The Pulumi program under mocks, for both committed stacks: every resource and its key properties."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from infra_mocks import ACCOUNT, MODEL_ARTIFACT, REPO_ROOT, ROLLOUT, ProgramRun, run_program, stack_config
from pydantic_settings import BaseSettings

from sentiment_infra.config import StackConfig, parse_stack_config
from sentiment_infra.packaging import ANALYSIS_IMAGE_INPUTS, INGESTION, analysis_image_tag, iter_files
from sentiment_shared.model_bundle import BUNDLE_FILE_NAME
from sentiment_shared.settings import AnalysisSettings, DashboardSettings, IngestionSettings, environment
from sentiment_shared.stack import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_REVISION,
    ITEMS_TABLE_HASH_KEY,
    ITEMS_TABLE_INDEXES,
    ITEMS_TABLE_KEY_ATTRIBUTES,
    PENDING_INDEX,
    RECENT_INDEX,
    RECENT_INDEX_PROJECTION,
    model_key,
)

pytestmark = pytest.mark.infra

DIGEST_URI = re.compile(rf"^{ACCOUNT}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[^@:]+@sha256:[0-9a-f]{{64}}$")


def config_of(run: ProgramRun) -> StackConfig:
    prefix = "sentiment-analyzer:"
    return parse_stack_config({k.removeprefix(prefix): v for k, v in run.config.items() if k.startswith(prefix)})


def test_every_resource_of_the_design_is_created_once_under_its_component(program: ProgramRun) -> None:
    # Given the program run for a stack
    counts = Counter(r.type for r in program.resources)
    # Then each building block exists, the expected number of times
    expected = {
        "sentiment:model_store:ModelStore": 1,
        "sentiment:items_table:ItemsTable": 1,
        "sentiment:messaging:Messaging": 1,
        "sentiment:analysis_image:AnalysisImage": 1,
        "sentiment:analysis_function:AnalysisFunction": 1,
        "sentiment:ingestion_function:IngestionFunction": 1,
        "sentiment:alarms:Alarms": 1,
        "sentiment:dashboard:Dashboard": 1,
        "sentiment:operations_dashboard:OperationsDashboard": 1,
        "sentiment:release:Release": 1,
        "sentiment:lambda_function:LambdaFunction": 4,
        "aws:codedeploy/application:Application": 1,
        "aws:codedeploy/deploymentGroup:DeploymentGroup": 1,
        ROLLOUT: 1,
        "aws:lambda/functionUrl:FunctionUrl": 1,
        "aws:cloudfront/distribution:Distribution": 1,
        "aws:cloudfront/originAccessControl:OriginAccessControl": 1,
        "aws:cloudfront/cachePolicy:CachePolicy": 1,
        "aws:cloudwatch/dashboard:Dashboard": 1,
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketVersioning:BucketVersioning": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketPolicy:BucketPolicy": 1,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
        MODEL_ARTIFACT: 1,
        "aws:dynamodb/table:Table": 1,
        "aws:sns/topic:Topic": 2,
        "aws:sqs/queue:Queue": 3,
        "aws:sqs/queuePolicy:QueuePolicy": 1,
        "aws:ecr/repository:Repository": 1,
        "aws:ecr/lifecyclePolicy:LifecyclePolicy": 1,
        "aws:ecr/repositoryPolicy:RepositoryPolicy": 1,
        "docker:index/image:Image": 1,
        "aws:iam/role:Role": 5,
        "aws:iam/rolePolicy:RolePolicy": 5,
        "aws:cloudwatch/logGroup:LogGroup": 4,
        "aws:lambda/function:Function": 4,
        "aws:lambda/eventSourceMapping:EventSourceMapping": 1,
        "aws:lambda/alias:Alias": 1,
        "aws:cloudwatch/eventRule:EventRule": 1,
        "aws:cloudwatch/eventTarget:EventTarget": 1,
        "aws:lambda/permission:Permission": 3,
        "aws:cloudwatch/metricAlarm:MetricAlarm": 7 + 4,
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": 1,
        "aws:kms/key:Key": 1,
    }
    for typ, count in expected.items():
        assert counts[typ] == count, f"{program.stack}: {typ}"
    # And components sit under the stack (a function's LambdaFunction under its component) while every cloud
    # resource is a component's child
    for record in program.resources:
        if record.type.startswith("sentiment:"):
            module = record.type.split(":")[1]
            nested = record.type == "sentiment:lambda_function:LambdaFunction"
            assert (
                record.parent_type.startswith("sentiment:") if nested else record.parent_type == "pulumi:pulumi:Stack"
            )
            assert re.fullmatch(r"[a-z_]+", module)
            assert (REPO_ROOT / "infra/src/sentiment_infra/components" / f"{module}.py").is_file()
        else:
            assert record.parent_type.startswith("sentiment:"), f"{record.type} {record.name} has no component"


def test_model_bucket_is_versioned_encrypted_private_tls_only_and_expires_old_versions(program: ProgramRun) -> None:
    config = config_of(program)
    bucket = program.one("aws:s3/bucket:Bucket").outputs["bucket"]

    versioning = program.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["bucket"] == bucket
    assert versioning["versioningConfiguration"]["status"] == "Enabled"

    sse = program.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    (rule,) = sse.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in {"AES256", "aws:kms"}

    block = program.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[flag] is True, flag

    policy = json.loads(program.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]

    (lifecycle,) = program.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert lifecycle["status"] == "Enabled"
    assert lifecycle["noncurrentVersionExpiration"]["noncurrentDays"] == config.model_noncurrent_days

    ownership = program.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_model_is_published_into_the_bucket_and_its_digest_feeds_the_function(program: ProgramRun) -> None:
    # Given the stack's model settings
    config = config_of(program)
    bucket = program.one("aws:s3/bucket:Bucket").outputs["bucket"]
    artifact = program.one(MODEL_ARTIFACT, "models-bundle")
    # Then the publisher gets the pinned source and the shared key layout
    key = model_key(config.model_prefix, config.model_version, BUNDLE_FILE_NAME)
    assert artifact.inputs["bucket"] == bucket
    assert artifact.inputs["key"] == key
    assert artifact.inputs["model_id"] == (config.model_id or DEFAULT_MODEL_ID)
    assert artifact.inputs["revision"] == (config.model_revision or DEFAULT_MODEL_REVISION)
    assert re.fullmatch(r"[0-9a-f]{40}", artifact.inputs["revision"])
    assert artifact.inputs["provider_version"]
    # And the function reads exactly that object and verifies it against the published digest
    env = program.one("aws:lambda/function:Function", "analysis").inputs["environment"]["variables"]
    assert env["MODEL_BUCKET"] == bucket
    assert env["MODEL_KEY"] == key
    assert env["MODEL_SHA256"] == artifact.outputs["sha256"]
    # pinned to the object version that was published (a later overwrite of the key cannot reach it)
    assert env["MODEL_VERSION_ID"] == artifact.outputs["version_id"]
    assert program.outputs["modelSha256"] == artifact.outputs["sha256"]
    assert program.outputs["modelS3Uri"] == f"s3://{bucket}/{key}"


def test_model_store_survives_destroy_only_where_configured(program: ProgramRun) -> None:
    config = config_of(program)
    bucket = program.one("aws:s3/bucket:Bucket")
    assert bucket.retain_on_delete is config.model_retain_on_delete
    assert bucket.inputs["forceDestroy"] is (not config.model_retain_on_delete)
    assert program.one(MODEL_ARTIFACT).inputs["retain_on_delete"] is config.model_retain_on_delete


def test_analysis_image_is_scanned_pruned_built_for_lambda_and_pinned_by_digest(program: ProgramRun) -> None:
    config = config_of(program)
    repository = program.one("aws:ecr/repository:Repository")
    # Mutable: rollbacks re-push an older content tag; what runs is pinned by digest (asserted below)
    assert repository.inputs["imageTagMutability"] == "MUTABLE"
    assert repository.inputs["imageScanningConfiguration"]["scanOnPush"] is True
    assert repository.inputs["forceDelete"] is (not config.deletion_protection)

    lifecycle = json.loads(program.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
    (rule,) = lifecycle["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == config.image_keep_count
    assert rule["action"]["type"] == "expire"

    # Lambda (for functions of this account and region only) may pull, nothing else
    pull_policy = program.one("aws:ecr/repositoryPolicy:RepositoryPolicy").inputs
    assert pull_policy["repository"] == repository.outputs["name"]
    (pull,) = json.loads(pull_policy["policy"])["Statement"]
    assert pull["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert sorted(pull["Action"]) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    region = program.config["aws:region"]
    assert pull["Condition"] == {"StringLike": {"aws:SourceArn": f"arn:aws:lambda:{region}:{ACCOUNT}:function:*"}}

    image = program.one("docker:index/image:Image")
    build = image.inputs["build"]
    # One platform, BuildKit through the engine's build API, nothing else: no option that could make the push an
    # index (Lambda refuses one); `make image` rehearses exactly this build and push and checks the manifest
    assert build["platform"] == "linux/amd64"
    assert set(build) == {"context", "dockerfile", "platform", "builderVersion"}
    assert build["builderVersion"] == "BuilderBuildKit"
    assert image.inputs.get("skipPush") in (None, False)
    # The context holds only the image's inputs, laid out as in the repository
    context = Path(build["context"]).resolve()
    assert context == REPO_ROOT / "build" / "image-context"
    assert Path(build["dockerfile"]).resolve() == context / "services" / "analysis" / "Dockerfile"
    staged = [p.relative_to(context).as_posix() for p in iter_files(context, ["."])]
    assert "services/analysis/pyproject.toml" in staged
    assert "uv.lock" in staged
    outside = [p for p in staged if not any(p == i or p.startswith(f"{i}/") for i in ANALYSIS_IMAGE_INPUTS)]
    assert outside == []
    # tagged by the content it was built from
    assert image.inputs["imageName"] == f"{repository.outputs['repositoryUrl']}:{analysis_image_tag(context)}"
    # The registry password (from the ECR token) travels as a secret
    assert "registry" in image.secret_inputs

    function = program.one("aws:lambda/function:Function", "analysis")
    assert function.inputs["packageType"] == "Image"
    assert function.inputs["imageUri"] == image.outputs["repoDigest"]
    assert DIGEST_URI.match(function.inputs["imageUri"])
    assert program.outputs["imageDigest"] == image.outputs["repoDigest"]


def test_analysis_function_sizing_environment_logging_and_tracing_come_from_config(program: ProgramRun) -> None:
    config = config_of(program)
    function = program.one("aws:lambda/function:Function", "analysis").inputs
    assert function["memorySize"] == config.analysis_memory_mb
    assert function["ephemeralStorage"]["size"] == config.analysis_ephemeral_storage_mb
    assert function["timeout"] == config.analysis_timeout_s
    assert function["architectures"] == ["x86_64"]
    assert function.get("reservedConcurrentExecutions") == config.analysis_reserved_concurrency
    env = function["environment"]["variables"]
    table = program.one("aws:dynamodb/table:Table").outputs["name"]
    assert env["ITEMS_TABLE"] == table
    assert float(env["NEUTRAL_THRESHOLD"]) == config.neutral_threshold
    assert env["MODEL_CACHE_DIR"].startswith("/tmp/")
    assert env["POWERTOOLS_SERVICE_NAME"] == "sentiment-analysis"
    assert env["POWERTOOLS_LOG_LEVEL"] == config.log_level
    assert {"POWERTOOLS_METRICS_NAMESPACE"} <= env.keys()
    log_group = program.one("aws:cloudwatch/logGroup:LogGroup", "analysis")
    assert function["loggingConfig"]["logGroup"] == log_group.outputs["name"]
    assert function["loggingConfig"]["logFormat"] == "JSON"
    assert log_group.inputs["retentionInDays"] == config.log_retention_days
    assert function["tracingConfig"]["mode"] == ("Active" if config.tracing else "PassThrough")
    role = program.one("aws:iam/role:Role", "analysis").outputs["arn"]
    assert function["role"] == role


def test_queue_feeds_the_analysis_with_partial_batch_responses_and_a_concurrency_cap(program: ProgramRun) -> None:
    config = config_of(program)
    queue = program.one("aws:sqs/queue:Queue", "queue")
    mapping = program.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    alias = program.one("aws:lambda/alias:Alias", "analysis")
    assert mapping["eventSourceArn"] == queue.outputs["arn"]
    # the version in service (the "live" alias), never $LATEST: tests/infra/test_infra_release.py
    assert mapping["functionName"] == alias.outputs["arn"]
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["scalingConfig"]["maximumConcurrency"] == config.analysis_maximum_concurrency
    assert mapping["batchSize"] == config.batch_size
    assert mapping["maximumBatchingWindowInSeconds"] == config.batching_window_s
    if config.analysis_reserved_concurrency is not None:
        assert config.analysis_reserved_concurrency >= config.analysis_maximum_concurrency


def test_queues_are_encrypted_sized_to_the_timeout_and_park_poison_messages(program: ProgramRun) -> None:
    config = config_of(program)
    queue = program.one("aws:sqs/queue:Queue", "queue")
    dlq = program.one("aws:sqs/queue:Queue", "dlq")
    timeout = program.one("aws:lambda/function:Function", "analysis").inputs["timeout"]
    # AWS: visibility >= 6 x function timeout
    assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * timeout
    # SQS-managed SSE: an aws/sqs-KMS queue could not receive from SNS
    for q in (queue, dlq):
        assert q.inputs["sqsManagedSseEnabled"] is True
        assert "kmsMasterKeyId" not in q.inputs
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.outputs["arn"], "maxReceiveCount": config.max_receive_count}
    # A DLQ keeps the original enqueue time, so it must keep messages longer
    assert dlq.inputs["messageRetentionSeconds"] > queue.inputs["messageRetentionSeconds"]
    assert dlq.inputs["messageRetentionSeconds"] == config.dlq_retention_s
    allow = json.loads(program.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy").inputs["redriveAllowPolicy"])
    assert allow == {"redrivePermission": "byQueue", "sourceQueueArns": [queue.outputs["arn"]]}


def test_only_the_items_topic_may_send_to_the_queue(program: ProgramRun) -> None:
    topic = program.one("aws:sns/topic:Topic", "messaging")
    queue = program.one("aws:sqs/queue:Queue", "queue")
    assert topic.inputs["kmsMasterKeyId"] == "alias/aws/sns"
    policy_resource = program.one("aws:sqs/queuePolicy:QueuePolicy")
    assert policy_resource.inputs["queueUrl"] == queue.outputs["url"]
    (statement,) = json.loads(policy_resource.inputs["policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == queue.outputs["arn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topic.outputs["arn"]}}
    subscription = program.one("aws:sns/topicSubscription:TopicSubscription", "messaging").inputs
    assert subscription["protocol"] == "sqs"
    assert subscription["topic"] == topic.outputs["arn"]
    assert subscription["endpoint"] == queue.outputs["arn"]
    assert subscription["rawMessageDelivery"] is config_of(program).raw_message_delivery


def test_items_table_is_on_demand_recoverable_encrypted_with_the_pending_index(program: ProgramRun) -> None:
    config = config_of(program)
    table = program.one("aws:dynamodb/table:Table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["hashKey"] == ITEMS_TABLE_HASH_KEY
    # Every key the shared shape names is a string attribute, and the indexes are exactly its indexes
    assert {a["name"]: a["type"] for a in table["attributes"]} == dict.fromkeys(ITEMS_TABLE_KEY_ATTRIBUTES, "S")
    assert [
        (i["name"], [(k["attributeName"], k["keyType"]) for k in i["keySchemas"]], i["projectionType"])
        for i in table["globalSecondaryIndexes"]
    ] == [(i.name, list(i.key_schema), i.projection_type) for i in ITEMS_TABLE_INDEXES]
    # The pending index carries whole items (re-published as they are); the recent index (the dashboard's
    # recent items, partitioned by day) only what the page shows
    pending, recent = table["globalSecondaryIndexes"]
    assert (pending["name"], pending["projectionType"], pending.get("nonKeyAttributes")) == (PENDING_INDEX, "ALL", None)
    assert (recent["name"], sorted(recent["nonKeyAttributes"])) == (RECENT_INDEX, sorted(RECENT_INDEX_PROJECTION))
    assert table["pointInTimeRecovery"]["enabled"] is True
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert table["serverSideEncryption"]["enabled"] is True
    assert table["deletionProtectionEnabled"] is config.deletion_protection


def test_prod_is_protected_and_dev_is_disposable(programs: dict[str, ProgramRun]) -> None:
    prod, dev = programs["prod"], programs["dev"]
    assert prod.one("aws:dynamodb/table:Table").inputs["deletionProtectionEnabled"] is True
    assert prod.one("aws:s3/bucket:Bucket").retain_on_delete is True
    assert prod.one("aws:ecr/repository:Repository").inputs["forceDelete"] is False
    assert dev.one("aws:dynamodb/table:Table").inputs["deletionProtectionEnabled"] is False
    assert dev.one("aws:ecr/repository:Repository").inputs["forceDelete"] is True


def test_ingestion_function_ships_the_zip_with_its_environment_and_schedule(program: ProgramRun) -> None:
    config = config_of(program)
    function = program.one("aws:lambda/function:Function", "ingestion")
    inputs = function.inputs
    assert inputs["packageType"] == "Zip"
    assert inputs["runtime"] == "python3.12"
    assert inputs["handler"] == INGESTION.handler
    assert inputs["memorySize"] == config.ingestion_memory_mb
    assert inputs["timeout"] == config.ingestion_timeout_s
    archive = inputs["code"]
    assert Path(archive.path).resolve().is_file()
    assert Path(archive.path).suffix == ".zip"
    env = inputs["environment"]["variables"]
    assert env["ITEMS_TABLE"] == program.one("aws:dynamodb/table:Table").outputs["name"]
    assert env["TOPIC_ARN"] == program.one("aws:sns/topic:Topic", "messaging").outputs["arn"]
    assert json.loads(env["FEEDS"]) == list(config.feeds)
    assert env["POWERTOOLS_SERVICE_NAME"] == "sentiment-ingestion"
    log_group = program.one("aws:cloudwatch/logGroup:LogGroup", "ingestion")
    assert inputs["loggingConfig"]["logGroup"] == log_group.outputs["name"]
    assert log_group.inputs["retentionInDays"] == config.log_retention_days

    rule = program.one("aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs["scheduleExpression"] == config.ingestion_schedule
    target = program.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert target["rule"] == rule.outputs["name"]
    assert target["arn"] == function.outputs["arn"]
    permission = program.one("aws:lambda/permission:Permission", "ingestion").inputs
    assert permission["principal"] == "events.amazonaws.com"
    assert permission["sourceArn"] == rule.outputs["arn"]
    assert permission["function"] == function.outputs["name"]


def test_failed_asynchronous_ingestion_runs_are_parked_not_dropped(program: ProgramRun) -> None:
    # Scheduled (asynchronous) invocations that still fail after Lambda's retries land in a queue
    function = program.one("aws:lambda/function:Function", "ingestion")
    failures = program.one("aws:sqs/queue:Queue", "ingestion-failures")
    invoke_config = program.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
    assert invoke_config["functionName"] == function.outputs["name"]
    assert invoke_config["maximumRetryAttempts"] == 2
    assert invoke_config["destinationConfig"]["onFailure"]["destination"] == failures.outputs["arn"]
    assert failures.inputs["sqsManagedSseEnabled"] is True
    assert failures.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert program.outputs["ingestionFailuresQueueUrl"] == failures.outputs["url"]


def test_alarms_watch_every_failure_signal_and_notify_the_encrypted_alarm_topic(program: ProgramRun) -> None:
    config = config_of(program)
    topic = program.one("aws:sns/topic:Topic", "alarms")
    key = program.one("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    alarms = {
        r.name.removeprefix("alarms-"): r.inputs
        for r in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if r.parent_type == "sentiment:alarms:Alarms"  # the release's rollback alarms: test_infra_release.py
    }
    analysis = program.one("aws:lambda/function:Function", "analysis").outputs["name"]
    ingestion = program.one("aws:lambda/function:Function", "ingestion").outputs["name"]
    queue = program.one("aws:sqs/queue:Queue", "queue").outputs["name"]
    dlq = program.one("aws:sqs/queue:Queue", "dlq").outputs["name"]
    failures = program.one("aws:sqs/queue:Queue", "ingestion-failures").outputs["name"]
    expected = {
        "analysis-errors": ("Errors", {"FunctionName": analysis}, 0),
        "analysis-throttles": ("Throttles", {"FunctionName": analysis}, 0),
        "analysis-duration": ("Duration", {"FunctionName": analysis}, config.analysis_timeout_s * 1000 * 0.8),
        "ingestion-errors": ("Errors", {"FunctionName": ingestion}, 0),
        "dlq-depth": ("ApproximateNumberOfMessagesVisible", {"QueueName": dlq}, 0),
        "ingestion-failures": ("ApproximateNumberOfMessagesVisible", {"QueueName": failures}, 0),
        "queue-age": ("ApproximateAgeOfOldestMessage", {"QueueName": queue}, config.queue_age_alarm_s),
    }
    assert alarms.keys() == expected.keys()
    for name, (metric, dimensions, threshold) in expected.items():
        alarm = alarms[name]
        assert alarm["metricName"] == metric, name
        assert alarm["dimensions"] == dimensions, name
        assert alarm["threshold"] == pytest.approx(threshold), name
        assert alarm["comparisonOperator"] == "GreaterThanThreshold", name
        assert alarm["alarmActions"] == [topic.outputs["arn"]], name
    assert alarms["analysis-duration"]["threshold"] < config.analysis_timeout_s * 1000
    emails = [r for r in program.of_type("aws:sns/topicSubscription:TopicSubscription") if r.name == "alarms-email"]
    if config.alarm_email is None:
        assert emails == []
    else:
        (email,) = emails
        assert email.inputs == email.inputs | {"protocol": "email", "endpoint": config.alarm_email}


def test_stack_outputs_name_everything_an_operator_needs_and_leak_no_secret(program: ProgramRun) -> None:
    outputs = program.outputs
    expected = {
        "analysisFunctionName",
        "analysisFunctionArn",
        "ingestionFunctionName",
        "itemsTableName",
        "topicArn",
        "queueUrl",
        "deadLetterQueueUrl",
        "modelBucket",
        "modelS3Uri",
        "modelSha256",
        "imageDigest",
    }
    assert expected <= outputs.keys()
    assert outputs["queueUrl"].startswith(f"https://sqs.{program.config['aws:region']}.amazonaws.com/{ACCOUNT}/")
    assert re.fullmatch(r"[0-9a-f]{64}", outputs["modelSha256"])
    # docs/CLIENT.md: a backend's role is granted lambda:InvokeFunction on exactly this ARN
    region = program.config["aws:region"]
    assert outputs["analysisFunctionArn"].startswith(f"arn:aws:lambda:{region}:{ACCOUNT}:function:")
    assert DIGEST_URI.match(outputs["imageDigest"])
    rendered = json.dumps(outputs)
    assert "mock-ecr-password" not in rendered
    assert "QVdTOm1vY2stZWNyLXBhc3N3b3Jk" not in rendered


def test_a_preview_plans_the_same_resources_as_an_update(program: ProgramRun) -> None:
    # Given the same stack run as `pulumi preview` (dry run) instead of `pulumi up`
    preview = run_program(program.stack, preview=True)
    # Then it plans exactly the resources the update creates
    assert Counter((r.type, r.name) for r in preview.resources) == Counter((r.type, r.name) for r in program.resources)


@pytest.mark.parametrize(
    ("function", "settings"),
    [("analysis", AnalysisSettings), ("ingestion", IngestionSettings), ("dashboard", DashboardSettings)],
)
def test_each_function_environment_is_what_its_settings_read(
    program: ProgramRun, function: str, settings: type[BaseSettings]
) -> None:
    # Given the environment infra gives the function (Powertools' own variables aside)
    env = program.one("aws:lambda/function:Function", function).inputs["environment"]["variables"]
    keys = {k for k in env if not k.startswith("POWERTOOLS_")}
    fields = {name.upper(): info for name, info in settings.model_fields.items()}
    # Then every key is a field the settings read, and every required field is set
    assert keys <= fields.keys()
    assert {name for name, info in fields.items() if info.is_required()} <= keys
    # And the function's settings load from exactly that environment
    assert settings(**{k.lower(): v for k, v in env.items() if k in keys})


def test_an_environment_naming_an_unread_or_leaving_out_a_required_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="reads no model_bucket"):
        environment(IngestionSettings, items_table="t", topic_arn="arn", model_bucket="b")
    with pytest.raises(ValueError, match="requires topic_arn"):
        environment(IngestionSettings, items_table="t")
    assert environment(IngestionSettings, items_table="t", topic_arn="a") == {"ITEMS_TABLE": "t", "TOPIC_ARN": "a"}


def test_no_function_reserves_concurrency_unless_configured(program: ProgramRun) -> None:
    # Lambda keeps 100 of an account's concurrency unreserved and new accounts may start with a quota of 10
    # or 50, where any reservation fails ("... below its minimum value of [100]"): no stack reserves by default
    # (prod reserved 20 for the analysis and every stack 5 for the dashboard); the mapping's cap stays.
    reserved = {
        f.name: f.inputs["reservedConcurrentExecutions"]
        for f in program.of_type("aws:lambda/function:Function")
        if f.inputs.get("reservedConcurrentExecutions") is not None
    }
    assert reserved == {}
    mapping = program.one("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["scalingConfig"]["maximumConcurrency"] == config_of(program).analysis_maximum_concurrency


def test_a_configured_reservation_is_applied() -> None:
    run = run_program(
        "dev",
        {
            **stack_config("dev"),
            "sentiment-analyzer:dashboardReservedConcurrency": "5",
            "sentiment-analyzer:analysisReservedConcurrency": "4",
        },
    )
    assert run.one("aws:lambda/function:Function", "dashboard").inputs["reservedConcurrentExecutions"] == 5
    assert run.one("aws:lambda/function:Function", "analysis").inputs["reservedConcurrentExecutions"] == 4
