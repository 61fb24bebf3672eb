"""Route 53 re-pointing: running Fargate task -> network interface -> public IP -> A record."""

from __future__ import annotations

import pytest

from emulator.cli.main import main
from realaws import dns
from realaws.deploy import deploy
from realaws.errors import AwsError, NotDeployedError
from realaws.waiters import WaitTimeout
from tests.realaws_helpers import (DOMAIN, REGION, STACK, aws, hosted_zone, push_image,  # noqa: F401
                                  stack_config, start_service_task)


@pytest.fixture
def deployed(aws):
    zone = hosted_zone(aws)
    cfg = stack_config(**{"package.image_uri": "public.ecr.aws/example/worker:1"})
    deploy(aws, cfg, wait_rendezvous_s=0)
    return aws, cfg, zone


def _a_record(ctx, zone):
    return dns.current_a_record(ctx.client("route53"), zone, DOMAIN)


def _repoint(ctx, cfg, **kw):
    return dns.repoint(ctx.client("ecs"), ctx.client("ec2"), ctx.client("route53"), ctx.names(STACK),
                       cfg.rendezvous, **kw)


def test_deploy_points_the_name_at_a_running_task(aws):
    zone = hosted_zone(aws)
    cfg = stack_config(**{"package.image_uri": "public.ecr.aws/example/worker:1"})
    deploy(aws, cfg, wait_rendezvous_s=0)
    _, ip = start_service_task(aws, cfg)
    result = deploy(aws, cfg, wait_rendezvous_s=5)
    assert result.rendezvous is not None and result.rendezvous.public_ip == ip
    assert result.rendezvous.address == f"{DOMAIN}:10000"
    assert _a_record(aws, zone) == [ip]
    record = aws.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    a = next(r for r in record if r["Type"] == "A")
    assert a["TTL"] == 30  # short: the record follows task replacements


def test_repoint_follows_task_replacement(deployed):
    ctx, cfg, zone = deployed
    first_task, first_ip = start_service_task(ctx, cfg)
    first = _repoint(ctx, cfg, wait_task_s=1)
    assert (first.task_arn, first.public_ip, first.changed) == (first_task, first_ip, True)
    assert _repoint(ctx, cfg, wait_task_s=1).changed is False  # already right: no Route 53 write
    # The service replaces the task (crash, deploy): new task, new public IP.
    ctx.client("ecs").stop_task(cluster=STACK, task=first_task, reason="replaced")
    second_task, second_ip = start_service_task(ctx, cfg)
    assert second_ip != first_ip
    again = _repoint(ctx, cfg, wait_task_s=1)
    assert (again.task_arn, again.public_ip, again.changed) == (second_task, second_ip, True)
    assert _a_record(ctx, zone) == [second_ip]


def test_tasks_of_other_groups_are_ignored(deployed):
    ctx, cfg, _ = deployed
    names = ctx.names(STACK)
    ecs = ctx.client("ecs")
    service = ecs.describe_services(cluster=names.cluster, services=[names.service])["services"][0]
    ecs.run_task(cluster=names.cluster, taskDefinition=service["taskDefinition"], launchType="FARGATE",
                 group="family:debug", networkConfiguration=service["networkConfiguration"])
    assert dns.running_task_address(ecs, ctx.client("ec2"), names) is None
    with pytest.raises(WaitTimeout, match="RUNNING task with a public IP"):
        _repoint(ctx, cfg, wait_task_s=0.2, poll_s=0.1)


def test_without_a_domain_workers_dial_the_ip(aws):
    cfg = stack_config(**{"package.image_uri": "public.ecr.aws/example/worker:1", "rendezvous.domain": None})
    deploy(aws, cfg, wait_rendezvous_s=0)
    _, ip = start_service_task(aws, cfg)
    result = _repoint(aws, cfg, wait_task_s=1)
    assert result.address == f"{ip}:10000" and result.domain is None and result.changed is False


def test_hosted_zone_is_the_longest_public_suffix(aws):
    route53 = aws.client("route53")
    hosted_zone(aws, "example.com")
    inner = hosted_zone(aws, "rdv.example.com")
    hosted_zone(aws, "rdv.example.com", private=True)
    assert dns.find_hosted_zone(route53, DOMAIN, None) == inner
    assert dns.find_hosted_zone(route53, "a.b.example.com", "/hostedzone/ZGIVEN") == "ZGIVEN"
    with pytest.raises(AwsError, match="no public Route 53 hosted zone"):
        dns.find_hosted_zone(route53, "rdv.example.org", None)


def test_repoint_cli(deployed, capsys):
    ctx, cfg, zone = deployed
    _, ip = start_service_task(ctx, cfg)
    assert main(["aws", "repoint", "--name", STACK, "--region", REGION, "--wait", "1s"]) == 0
    out = capsys.readouterr().out
    assert f"{DOMAIN}:10000 -> {ip} (updated" in out
    assert _a_record(ctx, zone) == [ip]


def test_repoint_without_rendezvous_is_a_clear_error(aws):
    cfg = stack_config(**{"rendezvous.enabled": False, "package.image_uri": "public.ecr.aws/example/worker:1"})
    with pytest.raises(NotDeployedError, match="no rendezvous"):
        _repoint(aws, cfg)
