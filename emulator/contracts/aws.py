"""AWS facts the twin must agree on everywhere: identity, ARNs, service limits, error names.

The local cloud has one region and one account (the values moto and LocalStack
use too); real AWS runs take theirs from the session. ARNs are built and split
only here (format: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
"""

from __future__ import annotations

from typing import Final

# -- identity of the local cloud ---------------------------------------------------------
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "000000000000"
PARTITION: Final = "aws"
# CreateBucket there takes no LocationConstraint (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
S3_LOCATIONLESS_REGION: Final = "us-east-1"

# -- Lambda limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html) --
MIN_MEMORY_MB: Final = 128
MAX_MEMORY_MB: Final = 10_240
MB_PER_VCPU: Final = 1_769  # one full vCPU at 1,769 MB, linear up to 6 vCPUs at 10,240 MB
MAX_VCPUS: Final = 6.0
MIN_TIMEOUT_S: Final = 1
MAX_TIMEOUT_S: Final = 900
MIN_EPHEMERAL_STORAGE_MB: Final = 512
MAX_EPHEMERAL_STORAGE_MB: Final = 10_240
DEFAULT_EPHEMERAL_STORAGE_MB: Final = 512
INIT_LIMIT_S: Final = 10.0  # on-demand INIT phase
# Synchronous invocation payloads: 6 MB each way. The response limit Lambda enforces is
# 6,291,556 bytes (6 MiB + 100 bytes of envelope), as its error message states.
MAX_SYNC_REQUEST_BYTES: Final = 6_291_456
MAX_SYNC_RESPONSE_BYTES: Final = 6_291_556
DEFAULT_ACCOUNT_CONCURRENCY: Final = 1_000

# -- Step Functions limits (https://docs.aws.amazon.com/step-functions/latest/dg/limits-overview.html) --
MAX_HISTORY_EVENTS: Final = 25_000  # per Standard execution
MAX_PAYLOAD_BYTES: Final = 262_144  # 256 KiB: state input/output, execution input, Map output
MAX_MAP_CONCURRENCY: Final = 10_000  # Distributed Map child executions at once
EXPRESS_MAX_DURATION_S: Final = 300
STANDARD_MAX_DURATION_S: Final = 31_536_000  # one year
MAX_WAIT_SECONDS: Final = 99_999_999  # a Wait state's Seconds (https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html)

# -- error names (Step Functions and Lambda) --------------------------------------------
STATES_ALL: Final = "States.ALL"
STATES_TIMEOUT: Final = "States.Timeout"
STATES_RUNTIME: Final = "States.Runtime"
STATES_TASK_FAILED: Final = "States.TaskFailed"
STATES_HEARTBEAT_TIMEOUT: Final = "States.HeartbeatTimeout"
STATES_DATA_LIMIT_EXCEEDED: Final = "States.DataLimitExceeded"
STATES_PERMISSIONS: Final = "States.Permissions"
LAMBDA_TIMEOUT: Final = "Sandbox.Timedout"
LAMBDA_OUT_OF_MEMORY: Final = "Runtime.OutOfMemory"
LAMBDA_EXIT_ERROR: Final = "Runtime.ExitError"
LAMBDA_THROTTLED: Final = "Lambda.TooManyRequestsException"
LAMBDA_NOT_FOUND: Final = "Lambda.ResourceNotFoundException"
LAMBDA_RESPONSE_TOO_LARGE: Final = "Function.ResponseSizeTooLarge"
RUNTIME_INVALID_REQUEST_ID: Final = "InvalidRequestID"  # Runtime API 400 for an unknown/answered request id


def lambda_vcpus(memory_mb: int) -> float:
    """The CPU share Lambda gives a function of ``memory_mb``."""
    return min(MAX_VCPUS, memory_mb / MB_PER_VCPU)


def function_arn(name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """``arn:aws:lambda:REGION:ACCOUNT:function:NAME``."""
    return f"arn:{PARTITION}:lambda:{region}:{account}:function:{name}"


def function_name_of(value: str) -> str:
    """A function name from a name, a partial ARN (``ACCOUNT:function:NAME``) or a full ARN; qualifier dropped."""
    if ":function:" in value:
        return value.split(":function:", 1)[1].split(":", 1)[0]
    return value.split(":", 1)[0]


def state_machine_arn(name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """``arn:aws:states:REGION:ACCOUNT:stateMachine:NAME``."""
    return f"arn:{PARTITION}:states:{region}:{account}:stateMachine:{name}"


def execution_arn(machine: str, name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """An execution's ARN; ``machine`` is ``NAME`` or, for Map children, ``NAME/LABEL``."""
    return f"arn:{PARTITION}:states:{region}:{account}:execution:{machine}:{name}"


def express_execution_arn(machine: str, name: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """An Express execution's ARN."""
    return f"arn:{PARTITION}:states:{region}:{account}:express:{machine}:{name}"


def map_run_arn(machine: str, label: str, run_id: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """A Distributed Map run's ARN: ``...:mapRun:MACHINE/LABEL:ID``."""
    return f"arn:{PARTITION}:states:{region}:{account}:mapRun:{machine}/{label}:{run_id}"


def role_arn(name: str, account: str = ACCOUNT_ID) -> str:
    """An IAM role's ARN."""
    return f"arn:{PARTITION}:iam::{account}:role/{name}"


def arn_name(arn: str) -> str:
    """The last resource component of an ARN (after the final ``:`` or ``/``)."""
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]

# -- Lambda scaling (https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html) --
# Each function (not the account) may add 1,000 execution environments every 10 seconds.
SCALING_ENVIRONMENTS_PER_PERIOD: Final = 1_000
SCALING_PERIOD_S: Final = 10.0

def log_group_arn(group: str, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """A CloudWatch Logs group's ARN (DescribeLogGroups' ``arn`` ends in ``:*``; this is without it)."""
    return f"arn:{PARTITION}:logs:{region}:{account}:log-group:{group}"


def layer_version_arn(name: str, version: int = 1, region: str = REGION, account: str = ACCOUNT_ID) -> str:
    """A Lambda layer version's ARN."""
    return f"arn:{PARTITION}:lambda:{region}:{account}:layer:{name}:{version}"


def bucket_arn(name: str) -> str:
    """An S3 bucket's ARN (global: no region or account)."""
    return f"arn:{PARTITION}:s3:::{name}"
