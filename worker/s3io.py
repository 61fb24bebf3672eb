"""S3 access for the handlers, through boto3 only.

boto3 itself honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, so the same
code talks to real S3 on AWS and to the local endpoint in lambdatwin; nothing
here sets an endpoint. Every failure a user can fix becomes an
:class:`S3AccessError` whose message names the bucket or object.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

# Standard retries back off (with jitter) on S3's 503 SlowDown when a thousand ranks read at once.
_CONFIG = Config(retries={"max_attempts": 6, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                 max_pool_connections=32)
# Variables that change which client is right; a warm Lambda keeps its client.
_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
_clients: dict[tuple[str | None, ...], Any] = {}
_lock = threading.Lock()

_MISSING_KEY_CODES = ("NoSuchKey", "404", "NotFound")


class S3AccessError(RuntimeError):
    """An S3 call failed in a way the user can fix (missing bucket or key, no access, no endpoint)."""


def s3_client() -> Any:
    """A boto3 S3 client with bounded retries, reused while the AWS environment is unchanged.

    Endpoint, region and credentials come from the environment (boto3's own rules).
    """
    env = tuple(os.environ.get(k) for k in _ENV_KEYS)
    with _lock:
        if env not in _clients:
            _clients[env] = boto3.session.Session().client("s3", config=_CONFIG)
        return _clients[env]


def _explain(exc: Exception, bucket: str, key: str | None = None) -> S3AccessError:
    """An actionable message for a boto3 failure on ``bucket``/``key``."""
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    if isinstance(exc, EndpointConnectionError):
        return S3AccessError(f"cannot reach S3 at {exc.kwargs.get('endpoint_url')} for {where}; "
                             "is the endpoint (AWS_ENDPOINT_URL) running?")
    if isinstance(exc, NoCredentialsError):
        return S3AccessError(f"no AWS credentials to access {where}; set AWS_ACCESS_KEY_ID or a role")
    if not isinstance(exc, ClientError):
        return S3AccessError(f"S3 request for {where} failed: {exc}")
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code == "NoSuchBucket":
        return S3AccessError(f"bucket {bucket!r} does not exist; create it or pass the right bucket")
    if code in _MISSING_KEY_CODES:
        return S3AccessError(f"{where} does not exist")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return S3AccessError(f"access denied to {where}; the function's role needs s3 permissions on it")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return S3AccessError(f"S3 rejected the credentials for {where} ({code}); check the AWS credentials")
    return S3AccessError(f"S3 error on {where}: {code} {error.get('Message', '')}".strip())


def list_keys(bucket: str, prefix: str, suffix: str = "", *, client: Any = None) -> list[str]:
    """Every key under ``prefix`` ending in ``suffix``, sorted, across all ListObjectsV2 pages.

    Raises:
        S3AccessError: the bucket does not exist or cannot be listed.
    """
    client = client or s3_client()
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(suffix))
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc, bucket) from exc
    return sorted(keys)


def get_bytes(bucket: str, key: str, *, client: Any = None) -> tuple[bytes, float]:
    """The object's bytes and the seconds the read took (request to last byte).

    Raises:
        S3AccessError: missing bucket or object, no access, endpoint down.
    """
    client = client or s3_client()
    start = time.perf_counter()
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc, bucket, key) from exc
    return body, time.perf_counter() - start


def get_json(bucket: str, key: str, *, client: Any = None) -> Any:
    """A JSON object. Raises S3AccessError when it cannot be read, ValueError when it is not JSON."""
    body, _ = get_bytes(bucket, key, client=client)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"s3://{bucket}/{key} is not valid JSON: {exc}") from exc


def get_json_if_exists(bucket: str, key: str, *, client: Any = None) -> Any | None:
    """Like :func:`get_json`, but None when the object does not exist (one request, no HEAD)."""
    try:
        return get_json(bucket, key, client=client)
    except S3AccessError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in _MISSING_KEY_CODES:
            return None
        raise


def put_json(bucket: str, key: str, value: Any, *, client: Any = None) -> None:
    """Write JSON with one PutObject, which S3 makes visible whole or not at all.

    The body is serialised before anything is sent, so a value that cannot be
    written (NaN, an unknown type) raises ValueError/TypeError and leaves no object.
    """
    body = json.dumps(value, indent=1, allow_nan=False, default=float).encode()  # float: numpy scalars
    client = client or s3_client()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc, bucket, key) from exc


def exists(bucket: str, key: str, *, client: Any = None) -> bool:
    """Whether the object exists (other errors raise S3AccessError)."""
    client = client or s3_client()
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING_KEY_CODES:
            return False
        raise _explain(exc, bucket, key) from exc
    except BotoCoreError as exc:
        raise _explain(exc, bucket, key) from exc
