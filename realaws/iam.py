"""IAM roles with inline policies: create or update in place, delete completely."""

from __future__ import annotations

import json
from typing import Any

from realaws.config import STACK_TAG
from realaws.errors import error_code


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def ensure_role(iam: Any, name: str, trust: dict[str, Any], policies: dict[str, dict[str, Any]],
                tags: dict[str, str], description: str) -> str:
    """Create the role or bring it in line: trust policy, exactly these inline policies, tags. Returns its ARN."""
    try:
        role = iam.get_role(RoleName=name)["Role"]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        iam.tag_role(RoleName=name, Tags=_tags(tags))
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                               Description=description, Tags=_tags(tags), MaxSessionDuration=3600)["Role"]
    for policy_name, document in policies.items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    # Policies from an older deploy would keep permissions this version no longer grants.
    for stale in _inline_policy_names(iam, name):
        if stale not in policies:
            iam.delete_role_policy(RoleName=name, PolicyName=stale)
    return str(role["Arn"])


def _inline_policy_names(iam: Any, name: str) -> list[str]:
    names: list[str] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
        names.extend(page["PolicyNames"])
    return names


def role_stack(iam: Any, name: str) -> str | None:
    """The ``lambdatwin:stack`` tag of a role ('' when untagged, None when there is no such role)."""
    try:
        tags = iam.list_role_tags(RoleName=name)["Tags"]
    except iam.exceptions.NoSuchEntityException:
        return None
    return next((t["Value"] for t in tags if t["Key"] == STACK_TAG), "")


def delete_role(iam: Any, name: str) -> bool:
    """Delete the role with its inline and attached policies and instance profiles; False if it was not there."""
    try:
        for policy in _inline_policy_names(iam, name):
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for attached in page["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
            for profile in page["InstanceProfiles"]:
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        iam.delete_role(RoleName=name)
        return True
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
