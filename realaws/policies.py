"""IAM policy documents of a stack, least privilege: each role may touch only this stack's resources.

Pure functions returning JSON-able dicts, so tests can check every action and
resource without AWS.
"""

from __future__ import annotations

from typing import Any

from realaws.config import ROLES, StackNames

VERSION = "2012-10-17"
# Where the run writes (assignment, results, Map result files, summary); data may live anywhere in the bucket.
RUNS_PREFIX = "runs/"


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def _allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def trust_policy(service: str, names: StackNames, source_arn: str | None = None) -> dict[str, Any]:
    """Who may assume the role: one AWS service, for this account only (confused-deputy guard)."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": names.account}}
    if source_arn:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return _doc({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
                 "Condition": condition})


def lambda_trust(names: StackNames) -> dict[str, Any]:
    return trust_policy("lambda.amazonaws.com", names)


def states_trust(names: StackNames) -> dict[str, Any]:
    return trust_policy("states.amazonaws.com", names, source_arn=names.state_machine_arn)


def ecs_tasks_trust(names: StackNames) -> dict[str, Any]:
    return trust_policy("ecs-tasks.amazonaws.com", names)


def lambda_execution_policy(names: StackNames) -> dict[str, Any]:
    """The three functions: write their own logs, list and read the bucket, write under runs/."""
    return _doc(
        _allow("Logs", ["logs:CreateLogStream", "logs:PutLogEvents"],
               [names.log_group_arn(names.function_log_group(role)) + ":*" for role in ROLES]),
        _allow("ListBucket", ["s3:ListBucket"], [names.bucket_arn]),
        _allow("ReadObjects", ["s3:GetObject"], [f"{names.bucket_arn}/*"]),
        _allow("WriteRunObjects", ["s3:PutObject"], [f"{names.bucket_arn}/{RUNS_PREFIX}*"]),
    )


def states_policy(names: StackNames) -> dict[str, Any]:
    """The state machine: invoke exactly the three functions, run its Distributed Map children, ItemReader/ResultWriter."""
    functions = [names.function_arn(role) for role in ROLES]
    return _doc(
        _allow("InvokeFunctions", ["lambda:InvokeFunction"], functions + [f"{arn}:*" for arn in functions]),
        _allow("StartMapChildren", ["states:StartExecution"], [names.state_machine_arn]),
        _allow("ManageMapChildren", ["states:DescribeExecution", "states:StopExecution"],
               [f"{names.execution_arn_prefix}/*"]),
        _allow("ItemReaderResultWriter",
               ["s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
               [f"{names.bucket_arn}/{RUNS_PREFIX}*"]),
    )


def ecr_repository_arn(image_uri: str, names: StackNames) -> str | None:
    """The ECR repository ARN of a private-ECR image URI (None for other registries)."""
    host, _, rest = image_uri.partition("/")
    parts = host.split(".")
    if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"] or not rest:
        return None
    account, region = parts[0], parts[3]
    repo = rest.split("@", 1)[0]  # drop a digest
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]  # drop a tag
    return f"arn:{names.partition}:ecr:{region}:{account}:repository/{repo}"


def ecs_execution_policy(names: StackNames, image_uri: str) -> dict[str, Any]:
    """Fargate's agent: pull the rendezvous image, write the task's log group, read the shared secret.

    ``ssm:GetParameters`` on the one parameter is what ECS needs for a container
    ``secrets`` entry; the AWS managed ``aws/ssm`` key needs no ``kms:Decrypt`` grant.
    """
    statements = [
        _allow("Logs", ["logs:CreateLogStream", "logs:PutLogEvents"],
               [names.log_group_arn(names.rendezvous_log_group) + ":*"]),
        _allow("ReadRendezvousSecret", ["ssm:GetParameters"], [names.rendezvous_secret_parameter_arn]),
    ]
    repo_arn = ecr_repository_arn(image_uri, names)
    if repo_arn:
        # GetAuthorizationToken has no resource-level permissions: "*" is the only valid resource.
        statements.append(_allow("EcrAuth", ["ecr:GetAuthorizationToken"], ["*"]))
        statements.append(_allow("PullImage", ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
                                               "ecr:BatchGetImage"], [repo_arn]))
    return _doc(*statements)


def ecr_lambda_pull_policy(names: StackNames) -> dict[str, Any]:
    """Repository policy: the Lambda service may pull, only for this stack's functions."""
    return _doc({
        "Sid": "LambdaPull", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "Condition": {"StringLike": {"aws:sourceArn":
                                     f"arn:{names.partition}:lambda:{names.region}:{names.account}:function:{names.stack}-*"}},
    })
