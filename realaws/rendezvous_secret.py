"""The rendezvous shared secret: generated at deploy time, kept in SSM Parameter Store.

AWS rules this follows:
- A ``SecureString`` parameter is encrypted with KMS (the account's ``aws/ssm``
  key by default); a standard parameter costs nothing.
  (https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-securestring.html)
- ECS injects it into the container as an environment variable through the
  container definition's ``secrets`` (``valueFrom`` = the parameter ARN); the
  task *execution* role needs ``ssm:GetParameters`` on it (``kms:Decrypt`` only
  for a customer managed key).
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-ssm-paramstore.html)
- The worker Lambda gets it as an environment variable (encrypted at rest
  with KMS). It is never part of the execution input, so it is in neither the
  execution history nor the run record.

The value is made once and kept across deploys (rotating it would cut off
running jobs); teardown deletes the parameter.
"""

from __future__ import annotations

import secrets
from typing import Any

from realaws.config import STACK_TAG, StackNames
from realaws.errors import error_code

SECRET_BYTES = 32  # 256 bits, the HMAC-SHA256 key size


def ensure_secret(ssm: Any, names: StackNames, tags: dict[str, str]) -> tuple[str, bool]:
    """The stack's secret (made and stored now if absent); returns (value, created)."""
    name = names.rendezvous_secret_parameter
    try:
        value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name,
                                 Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
        return str(value), False
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "ParameterNotFound":
            raise
    value = secrets.token_urlsafe(SECRET_BYTES)
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Tier="Standard",
                      Description=f"lambdatwin {names.stack}: rendezvous shared secret (HMAC key for pairing tokens)",
                      Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
    return value, True


def secret_stack(ssm: Any, names: StackNames) -> str | None:
    """The parameter's ``lambdatwin:stack`` tag ('' untagged, None when absent)."""
    try:
        found = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=names.rendezvous_secret_parameter)
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("InvalidResourceId", "ParameterNotFound"):
            return None
        raise
    return next((t["Value"] for t in found.get("TagList", []) if t["Key"] == STACK_TAG), "")


def delete_secret(ssm: Any, names: StackNames) -> bool:
    """Delete the parameter; False when it was not there."""
    try:
        ssm.delete_parameter(Name=names.rendezvous_secret_parameter)
        return True
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "ParameterNotFound":
            return False
        raise
