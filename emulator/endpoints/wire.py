"""What the AWS SDKs parse: JSON protocol bodies, error shapes, timestamps and page tokens.

* awsJson1.0 (Step Functions) and awsJson1.1 (CloudWatch Logs): ``POST /`` with
  ``X-Amz-Target: <Service>.<Operation>``; errors are HTTP 400 with
  ``{"__type": "<Code>", "message": ...}``; timestamps are epoch seconds.
  https://smithy.io/2.0/aws/protocols/aws-json-1_0-protocol.html
* restJson1 (Lambda): errors carry ``X-Amzn-ErrorType: <Code>`` and
  ``{"Type": "User", "message": ...}`` with the operation's HTTP status.
  https://smithy.io/2.0/aws/protocols/aws-restjson1-protocol.html
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Response


class ApiError(Exception):
    """An error an operation returns to the client."""

    def __init__(self, code: str, message: str, status: int = 400, sender: str = "User") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


def _request_id_headers() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def json_response(body: Any, content_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON protocol response."""
    return Response(json.dumps(body, default=str), status=status, content_type=content_type,
                    headers={**_request_id_headers(), **(headers or {})})


def json_error(err: ApiError, content_type: str) -> Response:
    """An awsJson error: ``__type`` and ``message``."""
    return json_response({"__type": err.code, "message": err.message}, content_type, status=err.status)


def rest_error(err: ApiError) -> Response:
    """A restJson1 error: the code in ``X-Amzn-ErrorType``, the message in the body."""
    return json_response({"Type": err.sender, "message": err.message}, "application/json", status=err.status,
                         headers={"X-Amzn-ErrorType": err.code})


def epoch(value: float | str | None) -> float | None:
    """A timestamp as epoch seconds (the JSON protocols' default format)."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def iso_lambda(ts: float) -> str:
    """Lambda's LastModified format: ``2024-01-31T12:00:00.000+0000``."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def encode_token(offset: int) -> str:
    """An opaque page token for ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_token(token: str | None, field: str = "nextToken") -> int:
    """The offset in a page token (0 for none).

    Raises:
        ApiError: InvalidToken for a token this server did not issue.
    """
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ApiError("InvalidToken", f"Invalid {field}: {token[:40]}") from None


def page(items: list[Any], token: str | None, limit: int | None, default: int, maximum: int,
         token_field: str = "nextToken", error_code: str = "ValidationException") -> tuple[list[Any], str | None]:
    """One page of ``items`` and the token of the next (None on the last page).

    Raises:
        ApiError: a limit outside 1..maximum, or a foreign token.
    """
    if limit is not None and not (isinstance(limit, int) and 0 <= limit <= maximum):
        raise ApiError(error_code, f"1 validation error detected: Value '{limit}' at 'maxResults' failed to satisfy constraint: "
                       f"Member must have value less than or equal to {maximum}")
    size = limit or default
    start = decode_token(token, token_field)
    chunk = items[start:start + size]
    nxt = encode_token(start + size) if start + size < len(items) else None
    return chunk, nxt


def json_object(data: bytes, code: str, not_json: str) -> dict[str, Any]:
    """A request body that must be a JSON object (empty = ``{}``); else ApiError ``code`` (the protocol's own)."""
    try:
        body = json.loads(data or b"{}")
    except json.JSONDecodeError:
        raise ApiError(code, not_json) from None
    if not isinstance(body, dict):
        raise ApiError(code, "The request body must be a JSON object")
    return body


def require(body: dict[str, Any], field: str) -> Any:
    """A required request member.

    Raises:
        ApiError: ValidationException naming the member.
    """
    value = body.get(field)
    if value in (None, ""):
        raise ApiError("ValidationException", f"1 validation error detected: Value null at '{field}' failed to "
                       "satisfy constraint: Member must not be null")
    return value
