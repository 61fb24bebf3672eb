"""`lambdatwin aws teardown` leaves nothing of the stack behind, twice over, and CLI errors a user can act on."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from emulator.cli.main import main
from realaws.config import STACK_TAG
from realaws.deploy import deploy
from realaws.errors import explain
from realaws.images import ImageMissingError
from realaws.teardown import teardown
from tests.realaws_helpers import (ACCOUNT, DOMAIN, REGION, STACK, aws, hosted_zone, push_image,  # noqa: F401
                                  put_log_lines, stack_config, start_service_task)

BUCKET = f"{STACK}-{ACCOUNT}-{REGION}"


def _deploy(ctx):
    zone = hosted_zone(ctx)
    cfg = stack_config()
    with pytest.raises(ImageMissingError):
        deploy(ctx, cfg, wait_rendezvous_s=0)
    push_image(ctx)
    deploy(ctx, cfg, wait_rendezvous_s=0)
    start_service_task(ctx, cfg)
    deploy(ctx, cfg, wait_rendezvous_s=5)  # points the DNS name at the task
    return cfg, zone


def _leftovers(ctx, zone: str) -> dict[str, list]:
    """Everything of the stack that a listing of each resource type deploy creates still shows."""
    lam, iam, ecs, ecr = ctx.client("lambda"), ctx.client("iam"), ctx.client("ecs"), ctx.client("ecr")
    ec2, sfn, logs, s3 = ctx.client("ec2"), ctx.client("stepfunctions"), ctx.client("logs"), ctx.client("s3")
    r53 = ctx.client("route53")
    mine = lambda name: name.startswith(STACK)  # noqa: E731
    return {
        "functions": [f["FunctionName"] for f in lam.list_functions()["Functions"] if mine(f["FunctionName"])],
        "layers": [layer["LayerName"] for layer in lam.list_layers()["Layers"] if mine(layer["LayerName"])],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if mine(r["RoleName"])],
        "state machines": [m["name"] for m in sfn.list_state_machines()["stateMachines"] if mine(m["name"])],
        # A deleted cluster stays describable as INACTIVE (on AWS for a while, on moto for good).
        "clusters": [c["clusterName"] for c in ecs.describe_clusters(clusters=[STACK])["clusters"]
                     if c["status"] == "ACTIVE"],
        "task definitions": ecs.list_task_definitions(familyPrefix=STACK, status="ACTIVE")["taskDefinitionArns"],
        "repositories": [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]
                         if mine(r["repositoryName"])],
        "security groups": [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]
                            if mine(g["GroupName"])],
        "log groups": [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"] if STACK in g["logGroupName"]],
        "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] == BUCKET],
        "dns": [r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
                if r["Type"] == "A" and r["Name"].rstrip(".") == DOMAIN],
        "parameters": [p["Name"] for p in ctx.client("ssm").describe_parameters()["Parameters"]
                       if p["Name"].startswith(f"/{STACK}/")],
    }


def test_teardown_removes_everything_and_is_idempotent(aws):
    cfg, zone = _deploy(aws)
    aws.client("s3").put_object(Bucket=BUCKET, Key="runs/x/results/0.json", Body=b"{}")
    put_log_lines(aws, f"/aws/lambda/{STACK}-worker", "2026/11/25/[$LATEST]abc", ["START RequestId: x"])
    before = _leftovers(aws, zone)
    assert all(before[kind] for kind in ("functions", "roles", "state machines", "clusters", "repositories",
                                         "security groups", "buckets", "dns", "parameters")), before

    first = teardown(aws, cfg, wait_s=5)
    assert first.complete, first.not_removed
    assert {kind: names for kind, names in _leftovers(aws, zone).items() if names} == {}

    second = teardown(aws, cfg, wait_s=5)
    assert second.complete and second.removed == [], "a second teardown finds nothing to remove"
    assert len(second.absent) == len(first.removed) + len(first.absent)


def test_a_same_named_resource_of_another_stack_is_left_and_reported(aws):
    cfg, _ = _deploy(aws)
    lam = aws.client("lambda")
    worker = f"{STACK}-worker"
    arn = lam.get_function(FunctionName=worker)["Configuration"]["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={STACK_TAG: "someone-else"})
    result = teardown(aws, cfg, wait_s=5)
    assert not result.complete
    [(what, why)] = result.not_removed
    assert what == f"function {worker}" and "someone-else" in why and "left alone" in why
    assert lam.get_function(FunctionName=worker)["Configuration"]["FunctionName"] == worker


def test_access_denied_names_the_iam_action():
    exc = ClientError({"Error": {"Code": "AccessDeniedException", "Message":
                                 "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
                                 "states:StartExecution on resource: arn:aws:states:us-east-1:1:stateMachine:x"}},
                      "StartExecution")
    message = explain(exc).message
    assert "states:StartExecution" in message


def test_cli_errors_are_one_actionable_line_not_a_traceback(aws, capsys):
    code = main(["aws", "teardown", "--name", STACK, "--region", "mars-north-7"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "mars-north-7" in err
    code = main(["aws", "run", "--name", STACK, "--region", REGION, "--workers", "2", "--data-size", "1MB"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "deploy" in err, err


def test_concurrency_quota_is_checked_before_a_collective_run(aws, tmp_path):
    from realaws.errors import QuotaError
    from realaws.run import check_concurrency

    cfg, _ = _deploy(aws)  # reserved concurrency 50 for the worker (stack_config)
    warnings: list[str] = []
    with pytest.raises(QuotaError, match="needs all 80 ranks running at once.*reserved concurrency is 50"):
        check_concurrency(aws, f"{STACK}-worker", 80, 80, "direct", warnings.append)
    check_concurrency(aws, f"{STACK}-worker", 80, 80, "none", warnings.append)
    assert warnings and "throttling" in warnings[0]
    assert json.dumps(warnings)  # plain strings the CLI prints
