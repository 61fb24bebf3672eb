"""The three Lambda functions: create or update in place, reserved concurrency, the account quota."""

from __future__ import annotations

import base64
from typing import Any

from realaws.config import FunctionSettings, PackageSettings
from realaws.errors import QuotaError, error_code, explain
from realaws.packaging import ZipCode
from realaws.waiters import boto_wait, retry_on

# Lambda keeps 100 concurrent executions unreserved in every account.
MIN_UNRESERVED = 100
FUNCTION_WAIT_S = 300.0
ROLE_PROPAGATION_S = 60.0


def _code_params(handler: str, package: PackageSettings, image_uri: str | None, zip_code: ZipCode | None,
                 bucket: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(code arguments, configuration arguments) for the packaging type."""
    if package.type == "image":
        return {"ImageUri": image_uri}, {"ImageConfig": {"Command": [handler]}}
    assert zip_code is not None
    return ({"S3Bucket": bucket, "S3Key": zip_code.s3_key},
            {"Runtime": package.runtime, "Handler": handler, "Layers": list(zip_code.layers)})


def ensure_function(lam: Any, *, name: str, role_arn: str, handler: str, settings: FunctionSettings,
                    package: PackageSettings, image_uri: str | None, zip_code: ZipCode | None, bucket: str,
                    tags: dict[str, str], wait_s: float = FUNCTION_WAIT_S,
                    environment: dict[str, str] | None = None) -> tuple[str, bool]:
    """Create the function or update its code and configuration in place; returns (ARN, created).

    ``environment`` replaces the function's environment variables (Lambda encrypts them at rest).
    """
    code, config = _code_params(handler, package, image_uri, zip_code, bucket)
    sizing = {"Role": role_arn, "MemorySize": settings.memory_mb, "Timeout": settings.timeout_s,
              "EphemeralStorage": {"Size": settings.ephemeral_storage_mb},
              "Environment": {"Variables": dict(environment or {})}}
    existing = _get(lam, name)
    if existing is not None and existing["Configuration"].get("PackageType", "Zip") != package_type(package):
        # Lambda cannot switch a function between image and zip: replace it.
        lam.delete_function(FunctionName=name)
        existing = None
    if existing is None:
        create = {"FunctionName": name, "PackageType": package_type(package), "Code": code,
                  "Architectures": [package.architecture], "Tags": tags, "Description": f"lambdatwin {handler}",
                  **sizing, **config}
        # A role created seconds ago may not be assumable by Lambda yet (IAM is eventually consistent).
        arn = retry_on(lambda: lam.create_function(**create)["FunctionArn"], codes={"InvalidParameterValueException"},
                       message_contains="assume", timeout_s=ROLE_PROPAGATION_S, interval_s=3.0,
                       what=f"role {role_arn} to be assumable")
        boto_wait(lam, "function_active_v2", FunctionName=name, timeout_s=wait_s, what=f"function {name} to be Active")
        _set_concurrency(lam, name, settings.reserved_concurrency)
        return str(arn), True
    current = existing["Configuration"]
    arn = str(current["FunctionArn"])
    if package.type == "image":
        # Always: Lambda resolves a tag to a digest only when the code is updated.
        lam.update_function_code(FunctionName=name, ImageUri=image_uri)
    elif zip_code is not None and current.get("CodeSha256") != _lambda_sha(zip_code.sha256):
        lam.update_function_code(FunctionName=name, **code)
    boto_wait(lam, "function_updated_v2", FunctionName=name, timeout_s=wait_s, what=f"function {name} code update")
    retry_on(lambda: lam.update_function_configuration(FunctionName=name, **sizing, **config),
             codes={"InvalidParameterValueException", "ResourceConflictException"}, timeout_s=ROLE_PROPAGATION_S,
             interval_s=3.0, what=f"function {name} configuration update")
    boto_wait(lam, "function_updated_v2", FunctionName=name, timeout_s=wait_s, what=f"function {name} configuration")
    lam.tag_resource(Resource=arn, Tags=tags)
    _set_concurrency(lam, name, settings.reserved_concurrency)
    return arn, False


def package_type(package: PackageSettings) -> str:
    return "Image" if package.type == "image" else "Zip"


def _lambda_sha(hex_digest: str) -> str:
    # Lambda reports CodeSha256 as base64 of the raw digest.
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _get(lam: Any, name: str) -> dict[str, Any] | None:
    try:
        return lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return None


def _set_concurrency(lam: Any, name: str, reserved: int | None) -> None:
    try:
        if reserved is None:
            lam.delete_function_concurrency(FunctionName=name)
        else:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
    except Exception as exc:  # noqa: BLE001
        err = explain(exc)
        if isinstance(err, QuotaError) or "UnreservedConcurrentExecution" in str(exc):
            raise QuotaError(f"cannot reserve {reserved} concurrent executions for {name}: the account's "
                             f"concurrency limit must keep {MIN_UNRESERVED} unreserved ({exc}); lower "
                             "reserved_concurrency or request a higher 'Concurrent executions' quota "
                             "(Service Quotas code L-B99A9384)") from None
        raise


def check_concurrency_quota(lam: Any, requested: dict[str, int | None]) -> dict[str, int] | None:
    """Fail before deploying when the reservations cannot fit the account's concurrency limit.

    ``requested`` maps function name to reserved concurrency (None = unreserved).
    Returns the account limits, or None when the account settings are not readable.

    Raises:
        QuotaError: the reservations would leave fewer than 100 unreserved executions.
    """
    try:
        limits = lam.get_account_settings()["AccountLimit"]
    except Exception:  # noqa: BLE001 - the check is advisory; PutFunctionConcurrency enforces it anyway
        return None
    account_limit = int(limits["ConcurrentExecutions"])
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    ours_now = 0
    for name in requested:
        try:
            ours_now += int(lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") or 0)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) != "ResourceNotFoundException":
                raise
    wanted = sum(v or 0 for v in requested.values())
    available = unreserved + ours_now - MIN_UNRESERVED
    if wanted > available:
        detail = ", ".join(f"{name}={v}" for name, v in requested.items() if v)
        raise QuotaError(f"reserved concurrency {wanted} ({detail}) exceeds what the account can reserve: "
                         f"limit {account_limit}, {unreserved} unreserved now, {MIN_UNRESERVED} must stay "
                         f"unreserved, so at most {max(0, available)}; lower reserved_concurrency or request a "
                         "higher 'Concurrent executions' quota (Service Quotas code L-B99A9384)")
    return {"ConcurrentExecutions": account_limit, "UnreservedConcurrentExecutions": unreserved}


def function_stack(lam: Any, name: str, tag: str) -> str | None:
    """The function's value of ``tag`` ('' untagged, None when the function does not exist)."""
    found = _get(lam, name)
    if found is None:
        return None
    return str((found.get("Tags") or {}).get(tag, ""))


def delete_function(lam: Any, name: str) -> bool:
    """Delete the function; False when it was not there."""
    try:
        lam.delete_function(FunctionName=name)
        return True
    except lam.exceptions.ResourceNotFoundException:
        return False
