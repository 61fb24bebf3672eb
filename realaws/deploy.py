"""``lambdatwin aws deploy``: build or update every resource of a stack, in dependency order.

Idempotent: each step finds its resource by the stack's deterministic name and
updates it in place, so re-running deploy after a config change (or a failure
half-way) converges on the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from realaws import (bucket, dns, functions, iam, images, loggroups, packaging, policies, rendezvous,
                     rendezvous_secret, stackstate, statemachine)
from realaws.config import HANDLERS, ROLE_TAG, ROLES, StackConfig, StackNames
from realaws.errors import AwsError
from realaws.session import AwsContext
from realaws.waiters import WaitTimeout
from rendezvous.protocol import SECRET_ENV


@dataclass
class DeployResult:
    """What deploy made or updated, and where the rendezvous is."""

    names: StackNames
    resources: dict[str, str] = field(default_factory=dict)  # what -> name/ARN/id
    created: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rendezvous: dns.RepointResult | None = None

    def add(self, what: str, ident: str, created: bool) -> None:
        self.resources[what] = ident
        if created:
            self.created.append(what)


def worker_image_uri(cfg: StackConfig, names: StackNames) -> str:
    """The configured image, else the stack's own ECR repository at ``image_tag``."""
    return cfg.package.image_uri or f"{names.registry}/{names.repository}:{cfg.package.image_tag}"


def deploy(ctx: AwsContext, cfg: StackConfig, *, say: Callable[[str], None] = lambda _: None,
           wait_rendezvous_s: float = 300.0) -> DeployResult:
    """Create or update the stack described by ``cfg``.

    Raises:
        AwsError (and subclasses): a step failed in a way the user can act on;
            ImageMissingError carries the commands that push the worker image.
    """
    ctx.check_credentials()
    names = ctx.names(cfg.name, cfg.bucket)
    result = DeployResult(names=names)
    lam, s3, logs, iam_c = ctx.client("lambda"), ctx.client("s3"), ctx.client("logs"), ctx.client("iam")
    tags = cfg.resource_tags()

    # Fail before creating anything when the reservations cannot fit the account.
    functions.check_concurrency_quota(lam, {names.function(r): cfg.functions[r].reserved_concurrency for r in ROLES})

    say(f"bucket s3://{names.bucket}")
    result.add("bucket", names.bucket, bucket.ensure_bucket(s3, names.bucket, ctx.region, tags))
    # Saved first, so run/repoint/teardown find the settings even if a later step fails.
    stackstate.save_stack_config(s3, names, cfg)

    groups = [names.function_log_group(r) for r in ROLES]
    if cfg.rendezvous.enabled:
        groups.append(names.rendezvous_log_group)
    for group in groups:
        result.add(f"log group {group}", group, loggroups.ensure_log_group(logs, group, cfg.log_retention_days, tags))

    image_uri = worker_image_uri(cfg, names) if cfg.package.type == "image" else None
    rendezvous_image = cfg.rendezvous.image_uri or image_uri or ""
    say("IAM roles (least privilege)")
    lambda_role = iam.ensure_role(iam_c, names.lambda_role, policies.lambda_trust(names),
                                  {"lambdatwin-functions": policies.lambda_execution_policy(names)}, tags,
                                  f"lambdatwin {cfg.name}: the three Lambda functions")
    result.add("role lambda", lambda_role, False)
    states_role = iam.ensure_role(iam_c, names.states_role, policies.states_trust(names),
                                  {"lambdatwin-state-machine": policies.states_policy(names)}, tags,
                                  f"lambdatwin {cfg.name}: the state machine and its Distributed Map")
    result.add("role states", states_role, False)
    ecs_role = None
    if cfg.rendezvous.enabled:
        ecs_role = iam.ensure_role(iam_c, names.ecs_execution_role, policies.ecs_tasks_trust(names),
                                   {"lambdatwin-rendezvous": policies.ecs_execution_policy(names, rendezvous_image)},
                                   tags, f"lambdatwin {cfg.name}: Fargate pulls the rendezvous image and writes logs")
        result.add("role ecs execution", ecs_role, False)

    zip_code = None
    if cfg.package.type == "image":
        assert image_uri is not None
        if not cfg.package.image_uri:
            say(f"ECR repository {names.repository}")
            result.add("ecr repository", images.ensure_repository(ctx.client("ecr"), names, tags), False)
            if not images.image_exists(ctx.client("ecr"), names.repository, cfg.package.image_tag):
                steps = "\n  ".join(images.push_commands(names, image_uri, cfg.package.architecture))
                raise images.ImageMissingError(
                    f"the worker image {image_uri} is not in ECR yet. Build and push it, then re-run deploy:\n  {steps}")
    else:
        say("code zip and layer")
        zip_code = packaging.stage_zip_code(lam, s3, names, cfg.package)
        result.add("code zip", f"s3://{names.bucket}/{zip_code.s3_key}", False)

    # The rendezvous secret: made once, kept in SSM; the server and the worker get it from their configuration.
    worker_env: dict[str, str] = {}
    if cfg.rendezvous.enabled:
        say(f"rendezvous secret (SSM SecureString {names.rendezvous_secret_parameter})")
        value, created = rendezvous_secret.ensure_secret(ctx.client("ssm"), names, tags)
        result.add("rendezvous secret", names.rendezvous_secret_parameter, created)
        worker_env[SECRET_ENV] = value

    for role in ROLES:
        name = names.function(role)
        say(f"function {name}")
        arn, created = functions.ensure_function(
            lam, name=name, role_arn=lambda_role, handler=HANDLERS[role], settings=cfg.functions[role],
            package=cfg.package, image_uri=image_uri, zip_code=zip_code, bucket=names.bucket,
            tags={**tags, ROLE_TAG: role}, environment=worker_env if role == "worker" else None)
        result.add(f"function {role}", arn, created)

    say(f"state machine {names.state_machine}")
    definition = statemachine.render_definition(cfg.definition, statemachine.substitutions(names))
    arn, created = statemachine.ensure_state_machine(ctx.client("stepfunctions"), names, definition, states_role, tags)
    result.add("state machine", arn, created)

    if cfg.rendezvous.enabled:
        assert ecs_role is not None
        _deploy_rendezvous(ctx, cfg, names, rendezvous_image, ecs_role, tags, result, say, wait_rendezvous_s)
    return result


def _deploy_rendezvous(ctx: AwsContext, cfg: StackConfig, names: StackNames, image: str, execution_role: str,
                       tags: dict[str, str], result: DeployResult, say: Callable[[str], None], wait_s: float) -> None:
    ec2, ecs = ctx.client("ec2"), ctx.client("ecs")
    say("rendezvous: security group, cluster, task definition, Fargate service")
    network = rendezvous.find_network(ec2, cfg.rendezvous)
    result.add("security group", rendezvous.ensure_security_group(ec2, names, network, cfg.rendezvous, tags), False)
    result.add("ecs cluster", rendezvous.ensure_cluster(ecs, names, tags), False)
    task_def = rendezvous.ensure_task_definition(ecs, names, cfg.rendezvous, image, execution_role, tags)
    result.add("task definition", task_def, False)
    arn, created = rendezvous.ensure_service(ecs, names, task_def, network,
                                             result.resources["security group"], tags)
    result.add("ecs service", arn, created)
    say(f"waiting up to {wait_s:.0f} s for the rendezvous task's public IP")
    try:
        result.rendezvous = dns.repoint(ecs, ec2, ctx.client("route53"), names, cfg.rendezvous, wait_task_s=wait_s)
    except WaitTimeout as exc:
        result.warnings.append(f"{exc.message}; once it runs, `lambdatwin aws repoint --name {cfg.name} "
                               f"--region {ctx.region}` points {cfg.rendezvous.domain or 'the run'} at it")
    except AwsError as exc:
        result.warnings.append(f"rendezvous DNS not updated: {exc.message}")
