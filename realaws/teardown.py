"""``lambdatwin aws teardown``: remove everything deploy made, idempotently.

Each resource is found by the stack's deterministic name and removed only when
it carries ``lambdatwin:stack=<name>`` (so a same-named resource of someone
else survives). One failing step does not stop the others; every resource that
stays is reported with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from realaws import (bucket, dns, functions, iam, images, loggroups, packaging, rendezvous, rendezvous_secret,
                     statemachine)
from realaws.config import ROLES, STACK_TAG, StackConfig, StackNames
from realaws.errors import AwsError, explain
from realaws.session import AwsContext


@dataclass
class TeardownResult:
    removed: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    not_removed: list[tuple[str, str]] = field(default_factory=list)  # (resource, why)

    @property
    def complete(self) -> bool:
        return not self.not_removed


class _NotOurs(AwsError):
    pass


def _owner_check(stack: str, tag: str | None, what: str) -> bool:
    """False when absent; raises _NotOurs when present but not this stack's."""
    if tag is None:
        return False
    if tag != stack:
        owner = f"stack {tag!r}" if tag else "no lambdatwin stack"
        raise _NotOurs(f"exists but is tagged for {owner}, not {STACK_TAG}={stack}; left alone")
    return True


def teardown(ctx: AwsContext, cfg: StackConfig, *, say: Callable[[str], None] = lambda _: None,
             wait_s: float = 300.0) -> TeardownResult:
    """Remove the stack described by ``cfg``; see :class:`TeardownResult` for what happened."""
    ctx.check_credentials()
    names = ctx.names(cfg.name, cfg.bucket)
    result = TeardownResult()
    lam, sfn, ecs, ec2 = ctx.client("lambda"), ctx.client("stepfunctions"), ctx.client("ecs"), ctx.client("ec2")
    logs, s3, iam_c, ecr = ctx.client("logs"), ctx.client("s3"), ctx.client("iam"), ctx.client("ecr")

    def step(what: str, remove: Callable[[], bool]) -> None:
        say(what)
        try:
            (result.removed if remove() else result.absent).append(what)
        except Exception as exc:  # noqa: BLE001 - reported, and the other steps still run
            result.not_removed.append((what, explain(exc).message))

    sm_arn = names.state_machine_arn

    def executions() -> bool:
        if _owner_check(cfg.name, statemachine.state_machine_stack(sfn, sm_arn), "state machine") is False:
            return False
        return statemachine.stop_running_executions(sfn, sm_arn, "stack teardown") > 0

    step("running executions", executions)
    if cfg.rendezvous.domain:
        step(f"DNS record {cfg.rendezvous.domain}", lambda: _delete_record(ctx, cfg))
    step(f"ECS service {names.service}",
         lambda: _owner_check(cfg.name, rendezvous.cluster_stack(ecs, names), "cluster")
         and rendezvous.delete_service(ecs, names, wait_s))
    step(f"task definitions {names.task_family}", lambda: rendezvous.deregister_task_definitions(ecs, names) > 0)
    step(f"ECS cluster {names.cluster}",
         lambda: _owner_check(cfg.name, rendezvous.cluster_stack(ecs, names), "cluster")
         and rendezvous.delete_cluster(ecs, names))
    step(f"security group {names.security_group}", lambda: _delete_security_group(ec2, names, cfg.name, wait_s))
    ssm = ctx.client("ssm")
    step(f"SSM parameter {names.rendezvous_secret_parameter}",
         lambda: _owner_check(cfg.name, rendezvous_secret.secret_stack(ssm, names), "parameter")
         and rendezvous_secret.delete_secret(ssm, names))
    step(f"state machine {names.state_machine}",
         lambda: _owner_check(cfg.name, statemachine.state_machine_stack(sfn, sm_arn), "state machine")
         and statemachine.delete_state_machine(sfn, sm_arn))
    for role in ROLES:
        name = names.function(role)
        step(f"function {name}", lambda name=name: _owner_check(cfg.name, functions.function_stack(lam, name, STACK_TAG),
                                                                 name) and functions.delete_function(lam, name))
    step(f"layer {names.layer}", lambda: _delete_layers(lam, names))
    for group in [names.function_log_group(r) for r in ROLES] + [names.rendezvous_log_group]:
        step(f"log group {group}", lambda group=group: loggroups.delete_log_group(logs, group))
    step(f"ECR repository {names.repository}",
         lambda: _owner_check(cfg.name, images.repository_stack(ecr, names), "repository")
         and images.delete_repository(ecr, names))
    step(f"bucket s3://{names.bucket}",
         lambda: _owner_check(cfg.name, bucket.bucket_stack(s3, names.bucket), "bucket")
         and bucket.delete_bucket(s3, names.bucket))
    for role_name in (names.lambda_role, names.states_role, names.ecs_execution_role):
        step(f"IAM role {role_name}", lambda role_name=role_name: _owner_check(
            cfg.name, iam.role_stack(iam_c, role_name), role_name) and iam.delete_role(iam_c, role_name))
    return result


def _delete_record(ctx: AwsContext, cfg: StackConfig) -> bool:
    route53 = ctx.client("route53")
    assert cfg.rendezvous.domain
    try:
        zone = dns.find_hosted_zone(route53, cfg.rendezvous.domain, cfg.rendezvous.hosted_zone_id)
    except AwsError:
        return False  # no zone covers the name, so there is no record either
    return dns.delete_a_record(route53, zone, cfg.rendezvous.domain)


def _delete_security_group(ec2: object, names: StackNames, stack: str, wait_s: float) -> bool:
    found = rendezvous.security_group_id(ec2, names)
    if found is None:
        return False
    group_id, tag = found
    _owner_check(stack, tag, "security group")
    return rendezvous.delete_security_group(ec2, group_id, wait_s)


def _delete_layers(lam: object, names: StackNames) -> bool:
    try:
        return packaging.delete_layer_versions(lam, names) > 0
    except Exception as exc:  # noqa: BLE001
        if "ResourceNotFound" in str(exc):
            return False
        raise
