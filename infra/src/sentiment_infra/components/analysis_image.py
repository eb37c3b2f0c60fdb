"""The analysis function's container image: an ECR repository and the image built and pushed into it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from sentiment_infra import iam
from sentiment_infra.config import Deployment

LAMBDA_PLATFORM = "linux/amd64"


@dataclass(frozen=True, slots=True)
class AnalysisImageArgs:
    stack: Deployment
    context: str
    """Build context: the image's inputs staged with the repository's layout (``packaging.stage_image_context``)."""
    dockerfile: str
    tag: str
    """Content-derived tag (see ``packaging.analysis_image_tag``), for people: the function uses the digest."""


class AnalysisImage(pulumi.ComponentResource):
    """ECR repository (scan on push, keep the last N images) and the pushed image's digest."""

    repository: aws.ecr.Repository
    image: docker.Image
    repo_digest: pulumi.Output[str]

    def __init__(self, name: str, args: AnalysisImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:analysis_image:AnalysisImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack, keep_images = args.stack, args.stack.config.image_keep_count

        self.repository = aws.ecr.Repository(
            f"{name}-repository",
            # Tags stay mutable on purpose: the function is pinned to the image *digest* (immutable by
            # nature), while a content tag is legitimately pushed again when a rollback rebuilds an older
            # commit, which an IMMUTABLE repository would reject. The lifecycle policy bounds the history.
            image_tag_mutability="MUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
            # Let `pulumi destroy` remove a repository that still holds images (dev).
            force_delete=not stack.config.deletion_protection,
            opts=child,
        )
        self.lifecycle = aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=pulumi.Output.json_dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the last {keep_images} images (rollback window)",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": keep_images,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=child,
        )

        # Lambda pulls the image with its service principal: allow exactly the two pull actions, only for
        # functions of this account and region (the function's own ARN would be a cycle: it needs the image).
        functions_here = pulumi.Output.concat(
            "arn:", stack.partition, ":lambda:", stack.region, ":", stack.account_id, ":function:*"
        )
        self.repository_policy = aws.ecr.RepositoryPolicy(
            f"{name}-lambda-pull",
            repository=self.repository.name,
            policy=iam.service_policy(
                "LambdaPullsImages",
                "lambda.amazonaws.com",
                ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                [],
                iam.Condition("StringLike", "aws:SourceArn", [functions_here]),
            ),
            opts=child,
        )

        token = aws.ecr.get_authorization_token_output(
            registry_id=self.repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        # Lambda refuses an OCI index or a manifest list (aws/aws-lambda-roadmap#82): the registry must get ONE
        # image manifest. docker.Image builds through the engine's build API with exactly these options: the
        # platform pinned, and no attestations (that API has no provenance/SBOM option; moby's builder asks
        # BuildKit for none; buildx's defaults do not apply, and the deploy job also sets
        # BUILDX_NO_DEFAULT_ATTESTATIONS=1). It pushes with the engine's push, which under the containerd image
        # store pushes whatever the local image is (moby/moby#51532), so the deploy job reads the pushed
        # manifest's media type (.ci/image_manifest.py) before the function is updated, and `make image`
        # rehearses this build and push into a loopback registry with the same check.
        self.image = docker.Image(
            f"{name}-image",
            image_name=self.repository.repository_url.apply(lambda url: f"{url}:{args.tag}"),
            build=docker.DockerBuildArgs(
                context=args.context,
                dockerfile=args.dockerfile,
                platform=LAMBDA_PLATFORM,
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
            ),
            registry=docker.RegistryArgs(
                server=self.repository.repository_url,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.lifecycle, self.repository_policy]),
        )

        self.repository_url = self.repository.repository_url
        self.repository_arn = self.repository.arn
        # `repository@sha256:…`: the function is pinned to exactly this build, never to a movable tag.
        self.repo_digest = self.image.repo_digest
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "repo_digest": self.repo_digest,
            }
        )
