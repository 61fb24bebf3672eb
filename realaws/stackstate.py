"""The deployed stack's configuration, kept in its own bucket.

Deploy writes ``deploy/stack.json``; run, repoint and teardown read it, so they
know the rendezvous domain, ports and sizes without repeating deploy's flags.
"""

from __future__ import annotations

import json
from typing import Any

from realaws.config import StackConfig, StackNames
from realaws.errors import error_code

STACK_KEY = "deploy/stack.json"


def save_stack_config(s3: Any, names: StackNames, cfg: StackConfig) -> None:
    s3.put_object(Bucket=names.bucket, Key=STACK_KEY, Body=json.dumps(cfg.to_dict(), indent=2).encode(),
                  ContentType="application/json")


def deployed_config(s3: Any, names: StackNames) -> dict[str, Any] | None:
    """The config deploy saved, or None (not deployed, or deployed by an older lambdatwin)."""
    try:
        return json.loads(s3.get_object(Bucket=names.bucket, Key=STACK_KEY)["Body"].read())
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("NoSuchKey", "NoSuchBucket", "404", "AccessDenied", "403"):
            return None
        raise
