"""Errors a user can act on, and the mapping from boto3's exceptions to them.

Every command catches :class:`AwsError` and prints its one-line message; the
mapping below turns the common failures (no credentials, AccessDenied, quota
limits, a mistyped region) into that form, naming the IAM action or quota.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
           "Forbidden", "UnauthorizedAccess", "InsufficientPermissionsException", "403"}
_BAD_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch", "AuthFailure", "InvalidAccessKeyId", "RequestExpired"}
_QUOTA = {"LimitExceededException", "ServiceQuotaExceededException", "TooManyRequestsException",
          "LimitExceeded", "ClientException:Limit", "CodeStorageExceededException"}
_ACTION_IN_MESSAGE = re.compile(r"not authorized to perform:?\s*([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
# S3 operations whose IAM action is not "s3:<Operation>".
_S3_ACTIONS = {
    "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions", "HeadObject": "s3:GetObject",
    "DeleteObjects": "s3:DeleteObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging", "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}

_last_call = threading.local()


class AwsError(Exception):
    """A failure with a message the user can act on; ``exit_code`` for the CLI."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CredentialsError(AwsError):
    """No usable credentials in boto3's chain."""


class AccessDeniedError(AwsError):
    """The caller lacks an IAM permission; ``action`` is the IAM action, e.g. ``states:StartExecution``."""

    def __init__(self, message: str, action: str | None) -> None:
        super().__init__(message)
        self.action = action


class QuotaError(AwsError):
    """An account or service quota stops the request (e.g. Lambda concurrency)."""


class RegionError(AwsError):
    """An unknown or unreachable region."""


class NotDeployedError(AwsError):
    """The stack (or one of its parts) is not there; deploy first."""


def record_call(model: Any = None, **_: Any) -> None:
    """botocore ``before-call`` hook: remember the service and operation (for AccessDenied messages)."""
    if model is not None:
        _last_call.value = (model.service_model.signing_name, model.name)


def iam_action(operation: str, signing_name: str | None) -> str | None:
    """The IAM action for a boto3 operation, e.g. ("StartExecution", "states") -> ``states:StartExecution``."""
    if signing_name is None:
        return None
    if signing_name == "s3" and operation in _S3_ACTIONS:
        return _S3_ACTIONS[operation]
    return f"{signing_name}:{operation}"


def explain(exc: BaseException) -> AwsError:
    """The user-facing error for a boto3/botocore exception (AwsError passes through)."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError("no AWS credentials found: configure boto3's standard chain (AWS_PROFILE or "
                                "--profile, `aws configure`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, "
                                "or an instance/task role)")
    if isinstance(exc, ProfileNotFound):
        return CredentialsError(f"{exc}; list profiles with `aws configure list-profiles`")
    if isinstance(exc, NoRegionError):
        return RegionError("no region: pass --region (or set AWS_REGION / a profile region)")
    if isinstance(exc, EndpointConnectionError):
        return RegionError(f"cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}: check --region "
                           "and the network (is the service offered in this region?)")
    if isinstance(exc, ClientError):
        return _explain_client_error(exc)
    if isinstance(exc, BotoCoreError):
        return AwsError(f"AWS SDK error: {exc}")
    return AwsError(f"{type(exc).__name__}: {exc}")


def _explain_client_error(exc: ClientError) -> AwsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")).strip()
    op = exc.operation_name
    if code in _DENIED or "not authorized to perform" in message:
        found = _ACTION_IN_MESSAGE.search(message)
        signing, last_op = getattr(_last_call, "value", (None, None))
        action = found.group(1) if found else iam_action(op, signing if last_op == op else None)
        what = action or f"the permission for {op}"
        return AccessDeniedError(f"access denied: the caller needs {what} ({op}: {message or code}); "
                                 "add it to the deploying user's/role's policy", action)
    if code in _BAD_CREDENTIALS:
        return CredentialsError(f"AWS rejected the credentials ({code}: {message}); refresh them "
                                "(`aws sso login`, new session token) and retry")
    if code in _QUOTA or "UnreservedConcurrentExecution" in message or "ConcurrentExecutions" in message:
        reason = exc.response.get("Reason") or error.get("Reason")
        detail = f" [{reason}]" if reason else ""
        hint = ""
        if "oncurren" in message or "oncurren" in str(reason):
            hint = (" — lower reserved_concurrency / --max-concurrency, or request a higher 'Concurrent executions'"
                    " quota (Service Quotas code L-B99A9384)")
        return QuotaError(f"quota limit: {op} failed with {code}{detail}: {message}{hint}")
    return AwsError(f"{op} failed: {code}: {message}")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""
