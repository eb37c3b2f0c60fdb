"""The model store: a locked-down, versioned S3 bucket and the model bundle published into it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.config import Deployment
from sentiment_infra.model_artifact import PROVIDER_VERSION, ModelArtifact, ModelArtifactArgs
from sentiment_shared.model_bundle import BUNDLE_FILE_NAME
from sentiment_shared.stack import model_key


@dataclass(frozen=True, slots=True)
class ModelStoreArgs:
    stack: Deployment
    """Its config says which model to publish, under which key, and how long replaced bundles are kept."""


def _require_version(version_id: str | None) -> str:
    if not version_id:
        raise ValueError("the model bundle has no S3 version id: the bucket must be versioned before it is published")
    return version_id


class ModelStore(pulumi.ComponentResource):
    """Bucket with versioning, SSE, all four public-access blocks, a TLS-only policy and version expiry."""

    bucket: aws.s3.Bucket
    artifact: ModelArtifact

    def __init__(self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:model_store:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.stack.config
        # Keep bucket and bundle when the stack is destroyed (prod).
        retain = config.model_retain_on_delete

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            force_destroy=not retain,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=retain),
        )
        bucket_id = self.bucket.id
        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    ),
                )
            ],
            opts=child,
        )
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-replaced-bundles",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=config.model_noncurrent_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=1
                    ),
                )
            ],
            # S3 rejects a lifecycle rule on versions before versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_id,
            policy=iam.document(
                [
                    iam.Statement(
                        sid="DenyInsecureTransport",
                        effect="Deny",
                        principals=[iam.Principal(type="*", identifiers=["*"])],
                        actions=["s3:*"],
                        resources=[self.bucket.arn, self.bucket.arn.apply(lambda arn: f"{arn}/*")],
                        conditions=[iam.Condition("Bool", "aws:SecureTransport", ["false"])],
                    )
                ]
            ),
            # Put after the public-access block so S3 never evaluates the policy against a half-set block.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )

        self.artifact = ModelArtifact(
            f"{name}-bundle",
            ModelArtifactArgs(
                bucket=self.bucket.bucket,
                key=model_key(config.model_prefix, config.model_version, BUNDLE_FILE_NAME),
                model_id=config.model_source_id,
                revision=config.model_source_revision,
                model_dir=config.model_dir,
                provider_version=PROVIDER_VERSION,
                retain_on_delete=retain,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.versioning, self.encryption, self.public_access_block, self.policy],
            ),
        )

        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.key = self.artifact.key
        self.object_arn = pulumi.Output.all(self.bucket.arn, self.artifact.key).apply(lambda v: f"{v[0]}/{v[1]}")
        self.s3_uri = self.artifact.s3_uri
        self.sha256 = self.artifact.sha256
        # The bucket is versioned, so every publish has a version id; the function is pinned to it.
        self.version_id = self.artifact.version_id.apply(_require_version)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "key": self.key,
                "s3_uri": self.s3_uri,
                "sha256": self.sha256,
            }
        )
