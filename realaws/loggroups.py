"""CloudWatch log groups made by deploy (so retention and tags are set, and teardown removes them)."""

from __future__ import annotations

from typing import Any

from realaws.errors import error_code


def ensure_log_group(logs: Any, name: str, retention_days: int, tags: dict[str, str]) -> bool:
    """Create the group unless present, then set retention and tags; True when created."""
    created = False
    try:
        logs.create_log_group(logGroupName=name, tags=tags)
        created = True
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
    if not created:
        arn = next((g["arn"] for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
                    if g["logGroupName"] == name), None)
        if arn:
            logs.tag_resource(resourceArn=arn.removesuffix(":*"), tags=tags)
    return created


def delete_log_group(logs: Any, name: str) -> bool:
    """Delete the group; False when it was not there."""
    try:
        logs.delete_log_group(logGroupName=name)
        return True
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
