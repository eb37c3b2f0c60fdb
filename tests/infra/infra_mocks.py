"""Pulumi mocks that answer like AWS would, and a runner that executes ``infra/__main__.py`` per stack.

Resources get realistic physical names, ARNs (account 123456789012, the stack's region), queue URLs,
image digests and dynamic-provider outputs; ``getPolicyDocument`` is rendered into real policy JSON
the way the AWS provider renders it, so the tests parse exactly the documents AWS would receive.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_root_resource

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRAM = REPO_ROOT / "infra" / "__main__.py"
PROJECT = "sentiment-analyzer"
ACCOUNT = "123456789012"
STACKS = ("dev", "prod")
ROLLOUT = "pulumi-python:dynamic/release:Rollout"
"""Type token of the CodeDeploy rollout dynamic resource (``Rollout(..., module="release", name="Rollout")``)."""
MODEL_ARTIFACT = "pulumi-python:dynamic/model:Artifact"
"""Type token of the model-publish dynamic resource (``ModelArtifact(..., module="model", name="Artifact")``)."""


def stack_config(stack: str) -> dict[str, str]:
    """``Pulumi.<stack>.yaml``'s config as the language host hands it over (structured values as JSON)."""
    raw = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    config: dict[str, str] = {}
    for key, value in (raw.get("config") or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, str):
            config[full_key] = value
        else:
            config[full_key] = json.dumps(value)
    return config


_NAMED_ARNS = {
    "aws:dynamodb/table:Table": ("dynamodb", "table/{name}"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:{name}"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "rule/{name}"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch", "alarm:{name}"),
}
"""Resources whose id is their name and whose outputs are that name and an ARN (service, resource part)."""


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def render_policy(args: dict[str, Any]) -> str:
    """Render getPolicyDocument's statements like the AWS provider (single values collapse to strings)."""

    def one_or_many(values: list[str]) -> str | list[str]:
        return values[0] if len(values) == 1 else values

    statements = []
    for st in args.get("statements") or []:
        out: dict[str, Any] = {}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        out["Effect"] = st.get("effect") or "Allow"
        for key, name in (("actions", "Action"), ("notActions", "NotAction")):
            if st.get(key):
                out[name] = one_or_many(list(st[key]))
        for key, name in (("resources", "Resource"), ("notResources", "NotResource")):
            if st.get(key):
                out[name] = one_or_many(list(st[key]))
        for key, name in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
            principals = st.get(key)
            if not principals:
                continue
            if len(principals) == 1 and principals[0]["type"] == "*" and principals[0]["identifiers"] == ["*"]:
                out[name] = "*"
                continue
            rendered: dict[str, Any] = {}
            for principal in principals:
                rendered[principal["type"]] = one_or_many(list(principal["identifiers"]))
            out[name] = rendered
        if st.get("conditions"):
            conditions: dict[str, dict[str, Any]] = {}
            for cond in st["conditions"]:
                conditions.setdefault(cond["test"], {})[cond["variable"]] = one_or_many(list(cond["values"]))
            out["Condition"] = conditions
        statements.append(out)
    return json.dumps({"Version": args.get("version") or "2012-10-17", "Statement": statements}, indent=2)


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent_type: str = ""
    """Type token of the parent resource ("" for resources directly under the stack)."""
    retain_on_delete: bool = False
    secret_inputs: frozenset[str] = frozenset()
    """Top-level input names sent as secrets, or containing one."""
    ignore_changes: tuple[str, ...] = ()
    """Input names ``pulumi up`` leaves as they are (``ResourceOptions.ignore_changes``, engine names)."""
    urn: str = ""
    alias_urns: tuple[str, ...] = ()
    """The URNs ``aliases=`` says this resource had before: the engine moves, rather than replaces, a
    resource found under one of them."""


_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class RecordingMonitor(MockMonitor):
    """Also records what the stock mock monitor drops: parent, retainOnDelete and which inputs are secret."""

    def __init__(self, mocks: AwsMocks) -> None:
        super().__init__(mocks)
        self.aws_mocks = mocks

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            # Registrations run on executor threads: find this resource's record by its (unique) type + name.
            (record,) = [r for r in self.aws_mocks.resources if (r.type, r.name) == (request.type, request.name)]
            record.parent_type = request.parent.split("::")[2].split("$")[-1] if request.parent else ""
            record.retain_on_delete = bool(request.retainOnDelete)
            raw = json_format.MessageToDict(request.object)
            record.secret_inputs = frozenset(k for k, v in raw.items() if _SECRET_SIG in json.dumps(v))
            record.ignore_changes = tuple(request.ignoreChanges)
            record.urn = response.urn
            record.alias_urns = tuple(self._alias_urn(request, alias) for alias in request.aliases)
        return response

    def _alias_urn(self, request: Any, alias: Any) -> str:
        """The URN an alias names, resolved as the engine resolves an alias spec (unset parts: the resource's own)."""
        if alias.WhichOneof("alias") == "urn":
            return str(alias.urn)
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name)


@dataclass
class AwsMocks(pulumi.runtime.Mocks):
    region: str
    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{ACCOUNT if account else ''}:{resource}"

    def new_resource(  # noqa: PLR0912 - one case per mocked resource type reads best as one match
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        name = inputs.get("name") or f"{args.name}-{_suffix(args.name)}"
        outputs: dict[str, Any] = dict(inputs)
        resource_id: str = name
        match args.typ:
            case "aws:s3/bucket:Bucket":
                bucket = inputs.get("bucket") or name
                outputs |= {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "region": self.region}
                resource_id = bucket
            case "aws:sqs/queue:Queue":
                url = f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{name}"
                outputs |= {"name": name, "arn": self._arn("sqs", name), "url": url}
                resource_id = url
            case "aws:sns/topic:Topic":
                outputs |= {"name": name, "arn": self._arn("sns", name)}
                resource_id = outputs["arn"]
            case "aws:iam/role:Role":
                arn = self._arn("iam", f"role{inputs.get('path') or '/'}{name}", region=False)
                outputs |= {"name": name, "arn": arn, "uniqueId": "AROA" + _suffix(name)}
            case "aws:lambda/function:Function":
                arn = self._arn("lambda", f"function:{name}")
                # With publish, Lambda returns the version it just published (the first one is "1")
                version = "1" if inputs.get("publish") else "$LATEST"
                outputs |= {"name": name, "arn": arn, "qualifiedArn": f"{arn}:{version}", "version": version}
            case "aws:lambda/alias:Alias":
                function_arn = self._arn("lambda", f"function:{inputs['functionName']}")
                arn = f"{function_arn}:{inputs['name']}"
                outputs |= {"arn": arn, "invokeArn": f"{arn}/invocations"}
                resource_id = arn
            case typ if typ in _NAMED_ARNS:
                service, template = _NAMED_ARNS[typ]
                outputs |= {"name": name, "arn": self._arn(service, template.format(name=name))}
            case "aws:lambda/eventSourceMapping:EventSourceMapping":
                resource_id = str(uuid.UUID(hashlib.md5(args.name.encode()).hexdigest()))
                outputs |= {"uuid": resource_id, "state": "Enabled"}
            case "aws:ecr/repository:Repository":
                outputs |= {
                    "name": name,
                    "arn": self._arn("ecr", f"repository/{name}"),
                    "registryId": ACCOUNT,
                    "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{name}",
                }
            case "docker:index/image:Image":
                image_name = inputs["imageName"]
                repository = image_name.rsplit(":", 1)[0]
                digest = hashlib.sha256(image_name.encode()).hexdigest()
                outputs |= {"repoDigest": f"{repository}@sha256:{digest}", "baseImageName": image_name}
                resource_id = f"sha256:{digest}"
            case "aws:kms/key:Key":
                key_id = str(uuid.UUID(hashlib.md5(args.name.encode()).hexdigest()))
                outputs |= {"keyId": key_id, "arn": self._arn("kms", f"key/{key_id}")}
                resource_id = key_id
            case "aws:sns/topicSubscription:TopicSubscription":
                arn = f"{inputs['topic']}:{uuid.UUID(hashlib.md5(args.name.encode()).hexdigest())}"
                outputs |= {"arn": arn}
                resource_id = arn
            case "aws:lambda/functionUrl:FunctionUrl":
                url_id = _suffix(args.name) + _suffix(args.name + "url")
                outputs |= {
                    "functionUrl": f"https://{url_id}.lambda-url.{self.region}.on.aws/",
                    "functionArn": self._arn("lambda", f"function:{inputs['functionName']}"),
                    "urlId": url_id,
                }
                resource_id = str(inputs["functionName"])
            case "aws:cloudfront/distribution:Distribution":
                dist_id = "E" + _suffix(args.name).upper()[:13]
                outputs |= {
                    "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{dist_id}",
                    "domainName": f"d{_suffix(args.name)[:13]}.cloudfront.net",
                    "hostedZoneId": "Z2FDTNDATAQYW2",
                    "status": "Deployed",
                }
                resource_id = dist_id
            case "aws:cloudfront/originAccessControl:OriginAccessControl" | "aws:cloudfront/cachePolicy:CachePolicy":
                resource_id = "E" + _suffix(args.name).upper()[:13]
                outputs |= {"etag": "E" + _suffix(args.name + "etag").upper()[:13]}
            case "aws:cloudwatch/dashboard:Dashboard":
                outputs |= {
                    "dashboardArn": self._arn("cloudwatch", f"dashboard/{inputs['dashboardName']}", region=False)
                }
                resource_id = str(inputs["dashboardName"])
            case "aws:codedeploy/application:Application":
                outputs |= {"name": name, "arn": self._arn("codedeploy", f"application:{name}")}
            case "aws:codedeploy/deploymentGroup:DeploymentGroup":
                group = inputs["deploymentGroupName"]
                arn = self._arn("codedeploy", f"deploymentgroup:{inputs['appName']}/{group}")
                outputs |= {"arn": arn, "deploymentGroupId": str(uuid.UUID(hashlib.md5(arn.encode()).hexdigest()))}
                resource_id = f"{inputs['appName']}:{group}"
            case "pulumi-python:dynamic/release:Rollout":
                # A first up: the alias was created on the version it published, nothing to deploy
                outputs |= {"live_version": inputs["target_version"], "deployment_id": None}
                resource_id = f"{inputs['function_name']}:{inputs['alias']}"
            case "pulumi-python:dynamic/model:Artifact" | "pulumi-python:dynamic:Resource":
                outputs |= self._model_artifact(inputs)
            case _:
                pass
        self.resources.append(Registered(type=args.typ, name=args.name, inputs=inputs, outputs=outputs))
        return resource_id, outputs

    @staticmethod
    def _model_artifact(inputs: dict[str, Any]) -> dict[str, Any]:
        """What the model-publish provider reports after uploading a bundle."""
        bucket, key = inputs["bucket"], inputs["key"]
        sha = hashlib.sha256(f"{inputs.get('model_id')}@{inputs.get('revision')}:{key}".encode()).hexdigest()
        return {
            "s3_uri": f"s3://{bucket}/{key}",
            "sha256": sha,
            "size": 267_960_320,
            "version_id": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",
            "source_revision": inputs.get("revision") or "local:" + sha[:12],
        }

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append((args.token, dict(args.args)))
        match args.token:
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": ACCOUNT,
                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/session",
                    "id": ACCOUNT,
                    "userId": "AROAEXAMPLE:session",
                }, []
            case "aws:index/getPartition:getPartition":
                return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
            case "aws:index/getRegion:getRegion":
                return {"name": self.region, "region": self.region, "id": self.region}, []
            case "aws:ecr/getAuthorizationToken:getAuthorizationToken":
                return {
                    "userName": "AWS",
                    "password": "mock-ecr-password",
                    "authorizationToken": "QVdTOm1vY2stZWNyLXBhc3N3b3Jk",
                    "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com",
                    "expiresAt": "2030-01-01T00:00:00Z",
                    "id": self.region,
                }, []
            case "aws:iam/getPolicyDocument:getPolicyDocument":
                rendered = render_policy(args.args)
                return {
                    "json": rendered,
                    "minifiedJson": json.dumps(json.loads(rendered), separators=(",", ":")),
                    "id": _suffix(rendered),
                }, []
            case _:
                raise NotImplementedError(f"no mock for invoke {args.token}")


@dataclass
class ProgramRun:
    stack: str
    config: dict[str, str]
    resources: list[Registered]
    outputs: dict[str, Any]
    calls: list[tuple[str, dict[str, Any]]]

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name_contains: str = "") -> Registered:
        found = [r for r in self.of_type(typ) if name_contains in r.name]
        assert len(found) == 1, f"expected one {typ} named *{name_contains}*, got {[r.name for r in found]}"
        return found[0]


def run_program(stack: str, config: dict[str, str] | None = None, *, preview: bool = False) -> ProgramRun:
    """Execute ``infra/__main__.py`` under the mocks with ``stack``'s config (or ``config``)."""
    values = stack_config(stack) if config is None else config
    mocks = AwsMocks(region=values.get("aws:region", "us-east-1"))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=RecordingMonitor(mocks))
    pulumi.runtime.set_all_config(values)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[misc]
    def _run() -> pulumi.Output[Any]:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        root = get_root_resource()
        assert root is not None
        return pulumi.Output.all(**root.outputs).apply(outputs.update)

    _run()
    return ProgramRun(stack=stack, config=values, resources=mocks.resources, outputs=outputs, calls=mocks.calls)
