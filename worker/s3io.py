"""S3 access for the handlers, through boto3 only.

boto3 itself honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, so the same
code talks to real S3 on AWS and to the local endpoint in lambdatwin.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60)


class S3AccessError(RuntimeError):
    """An S3 call failed in a way the user can fix (missing bucket or key, no access)."""


def s3_client() -> Any:
    """A boto3 S3 client with bounded retries; endpoint and credentials come from the environment."""
    return boto3.client("s3", config=_CONFIG)


def _explain(exc: ClientError, bucket: str, key: str | None = None) -> S3AccessError:
    code = exc.response.get("Error", {}).get("Code", "")
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    if code == "NoSuchBucket":
        return S3AccessError(f"bucket {bucket!r} does not exist; create it or pass the right bucket")
    if code in ("NoSuchKey", "404", "NotFound"):
        return S3AccessError(f"{where} does not exist")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return S3AccessError(f"access denied to {where}; the function's role needs s3 permissions on it")
    return S3AccessError(f"S3 error on {where}: {code} {exc.response.get('Error', {}).get('Message', '')}".strip())


def iter_keys(client: Any, bucket: str, prefix: str, suffix: str = "") -> Iterator[str]:
    """Every key under ``prefix`` ending in ``suffix``, across all ListObjectsV2 pages."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(suffix):
                    yield obj["Key"]
    except ClientError as exc:
        raise _explain(exc, bucket) from exc


def get_bytes(client: Any, bucket: str, key: str) -> tuple[bytes, float]:
    """The object's bytes and the seconds the read took."""
    start = time.perf_counter()
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        raise _explain(exc, bucket, key) from exc
    return body, time.perf_counter() - start


def get_json(client: Any, bucket: str, key: str) -> Any:
    """A JSON object; raises S3AccessError when missing, ValueError when not JSON."""
    body, _ = get_bytes(client, bucket, key)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"s3://{bucket}/{key} is not valid JSON: {exc}") from exc


def put_json(client: Any, bucket: str, key: str, value: Any) -> None:
    """Write JSON with one PutObject: S3 makes it visible whole or not at all."""
    body = json.dumps(value, indent=1, default=float).encode()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except ClientError as exc:
        raise _explain(exc, bucket, key) from exc


def exists(client: Any, bucket: str, key: str) -> bool:
    """Whether the object exists (other errors raise S3AccessError)."""
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise _explain(exc, bucket, key) from exc
