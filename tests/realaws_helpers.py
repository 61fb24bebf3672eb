"""Fixtures and seeding helpers for the realaws tests (a moto account; no tests here).

What moto cannot do by itself is seeded here the way AWS would do it: the
worker image in ECR, the Fargate task (moto's services never start tasks) with
a public IP, Lambda results (moto runs no handler code) and the CloudWatch
lines Lambda would write.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from emulator.contracts.cloudwatch import ReportLine, end_line, report_line, start_line
from realaws.config import DEFAULT_DEFINITION, StackConfig, load_config
from realaws.session import AwsContext

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "demo"
DOMAIN = "rdv.example.com"
# The seed's REPORT line, as CloudWatch shows it (tabs).
SEED_REPORT = ("REPORT RequestId: 3f0c2a4e-1b2c-4d5e-8f90-123456789abc\tDuration: 620.23 ms\tBilled Duration: 621 ms\t"
               "Memory Size: 128 MB\tMax Memory Used: 89 MB\tInit Duration: 486.66 ms\t")
FAKE_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other tests point boto3 at a local S3 endpoint; moto intercepts only AWS endpoints.
    for key in list(os.environ):
        if key.startswith("AWS_") or key.startswith("MOTO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsContext]:
    """A fresh moto account (Step Functions not executing) and a context for it."""
    _clean_env(monkeypatch)
    # moto's Docker-free Lambda backend loses published layers; nothing is invoked here, so keep the default.
    with mock_aws(config={"core": {"mock_credentials": False}}):
        # Keep seeded Fargate tasks RUNNING however often they are described.
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        try:
            yield AwsContext(REGION)
        finally:
            state_manager.unset_transition("ecs::task")


@pytest.fixture
def aws_executing(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsContext]:
    """Like ``aws`` but moto parses and executes state machines (Lambda results come from a queue)."""
    _clean_env(monkeypatch)
    with mock_aws(config={"lambda": {"use_docker": False}, "core": {"mock_credentials": False},
                          "stepfunctions": {"execute_state_machine": True}}):
        yield AwsContext(REGION)


def stack_config(**overrides: Any) -> StackConfig:
    values = {"name": STACK, "region": REGION, "rendezvous.domain": DOMAIN,
              "functions.worker.reserved_concurrency": 50, **overrides}
    return load_config(**values)


def push_image(ctx: AwsContext, repository: str = STACK, tag: str = "latest") -> None:
    """What `docker push` would leave in ECR."""
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                           "digest": "sha256:" + "b" * 64}, "layers": []}
    ctx.client("ecr").put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))


def hosted_zone(ctx: AwsContext, name: str = "example.com", private: bool = False) -> str:
    params: dict[str, Any] = {"Name": name, "CallerReference": f"{name}-{private}-{time.time()}"}
    if private:
        vpc = ctx.client("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]
        params.update(VPC={"VPCRegion": REGION, "VPCId": vpc}, HostedZoneConfig={"PrivateZone": True, "Comment": ""})
    return ctx.client("route53").create_hosted_zone(**params)["HostedZone"]["Id"].rsplit("/", 1)[-1]


def start_service_task(ctx: AwsContext, cfg: StackConfig) -> tuple[str, str]:
    """Do what the ECS service scheduler would: start a Fargate task with a public IP. Returns (task ARN, IP)."""
    names = ctx.names(cfg.name)
    ecs, ec2 = ctx.client("ecs"), ctx.client("ec2")
    service = ecs.describe_services(cluster=names.cluster, services=[names.service])["services"][0]
    task = ecs.run_task(cluster=names.cluster, taskDefinition=service["taskDefinition"], launchType="FARGATE",
                        group=f"service:{names.service}", startedBy="ecs-svc/1234567890",
                        networkConfiguration=service["networkConfiguration"])["tasks"][0]
    eni = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "networkInterfaceId")
    # Fargate's auto-assigned public IP; moto models it as an address associated with the ENI.
    address = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=address["AllocationId"], NetworkInterfaceId=eni)
    return task["taskArn"], address["PublicIp"]


def invocation_lines(request_id: str, duration_ms: float, memory_mb: int, used_mb: int,
                     init_ms: float | None = None, handler_lines: tuple[str, ...] = (),
                     status: str | None = None, error_type: str | None = None) -> list[str]:
    """START, handler output, END and REPORT for one invocation, formatted as Lambda does."""
    billed = int(-(-(duration_ms + (init_ms or 0)) // 1))
    report = ReportLine(request_id, duration_ms, billed, memory_mb, used_mb, init_ms, status, error_type)
    return [start_line(request_id), *handler_lines, end_line(request_id), report_line(report)]


def put_log_lines(ctx: AwsContext, group: str, stream: str, lines: list[str], start_ms: int | None = None,
                  step_ms: int = 10) -> None:
    """Write lines to CloudWatch Logs as Lambda's platform would (one event each, increasing timestamps)."""
    logs = ctx.client("logs")
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    t0 = start_ms if start_ms is not None else int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": t0 + i * step_ms, "message": line + "\n"} for i, line in enumerate(lines)])


def moto_runnable_definition(tmp_path: Path, bucket: str, map_prefix: str) -> Path:
    """The repository's ASL with the two spots moto's interpreter cannot take, rewritten.

    1. moto's ASL grammar rejects an integer ToleratedFailurePercentage (AWS accepts 100).
    2. moto evaluates ResultWriter's Parameters against the Map's output instead of its
       input, so ``$.bucket`` is not found; the test passes the same values literally.
    Everything else (Initialize, the Distributed Map with its S3 ItemReader, the worker
    task, Summarize, the Choice) runs as written.
    """
    text = DEFAULT_DEFINITION.read_text()
    text = text.replace('"ToleratedFailurePercentage": 100,', '"ToleratedFailurePercentage": 100.0,')
    old = '"Bucket.$": "$.bucket",\n          "Prefix.$": "$.map_results_prefix"'
    assert old in text, "the ResultWriter block changed; update moto_runnable_definition"
    text = text.replace(old, f'"Bucket": "{bucket}",\n          "Prefix": "{map_prefix}"')
    path = tmp_path / "data_parallel.moto.asl.json"
    path.write_text(text)
    return path


def queue_lambda_results(results: list[Any]) -> None:
    """Results moto's Lambda returns, in invocation order (moto runs no handler code)."""
    from moto.awslambda_simple.models import lambda_simple_backends

    lambda_simple_backends[ACCOUNT][REGION].lambda_simple_results_queue.extend(json.dumps(r) for r in results)


def put_json(ctx: AwsContext, bucket: str, key: str, value: Any) -> None:
    ctx.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(value).encode())


def all_files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())
