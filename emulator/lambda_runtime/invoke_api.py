"""The Lambda Invoke API (``POST /2015-03-31/functions/<name>/invocations``) over a LambdaService.

So ``boto3.client("lambda", endpoint_url=...).invoke(...)`` works against the
local backends as against AWS: ``RequestResponse`` (result in the body;
function errors as ``X-Amz-Function-Error: Unhandled`` with the error JSON),
``Event`` (202, runs in the background), ``DryRun`` (204),
``LogType=Tail`` (last 4 KB of the invocation's log, base64, in
``X-Amz-Log-Result``) and ``ClientContext`` (``X-Amz-Client-Context``, base64
JSON up to 3,583 bytes, handed to the runtime decoded as
``Lambda-Runtime-Client-Context``).

Source: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from emulator.contracts.aws import MAX_SYNC_REQUEST_BYTES
from emulator.contracts.lambdas import LambdaFunctionError
from emulator.lambda_runtime.service import LambdaService

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations(?:\?.*)?$")
MAX_REQUEST_BYTES = MAX_SYNC_REQUEST_BYTES
MAX_CLIENT_CONTEXT_BYTES = 3583  # Invoke's ClientContext limit (base64-encoded)
_SERVICE_ERRORS = {
    "Lambda.ResourceNotFoundException": (HTTPStatus.NOT_FOUND, "ResourceNotFoundException"),
    "Lambda.TooManyRequestsException": (HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequestsException"),
    "Lambda.ServiceException": (HTTPStatus.INTERNAL_SERVER_ERROR, "ServiceException"),
}


class InvokeAPIServer:
    """Serve the Invoke API for ``service`` on ``host:port`` (port 0 = any free port)."""

    def __init__(self, service: LambdaService, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="invoke-api", daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "InvokeAPIServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "InvokeAPIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self.service

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _service_error(self, status: int, error_type: str, message: str) -> None:
                body = json.dumps({"Type": "User", "message": message}).encode()
                self._send(status, body, {"X-Amzn-ErrorType": error_type})

            def do_POST(self) -> None:
                match = _PATH.match(self.path)
                if match is None:
                    self._service_error(HTTPStatus.NOT_FOUND, "UnknownOperationException", f"no such operation: POST {self.path}")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if length > MAX_REQUEST_BYTES:
                    self._service_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLargeException",
                                        f"request payload {length} bytes exceeds {MAX_REQUEST_BYTES}")
                    return
                try:
                    payload = json.loads(raw) if raw else {}
                except json.JSONDecodeError as exc:
                    self._service_error(HTTPStatus.BAD_REQUEST, "InvalidRequestContentException",
                                        f"Could not parse request body into json: {exc}")
                    return
                name = unquote(match.group("name"))
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                if kind == "DryRun":
                    self._send(HTTPStatus.NO_CONTENT, b"")
                    return
                if kind == "Event":
                    threading.Thread(target=self._invoke_quietly, args=(name, payload), daemon=True).start()
                    self._send(HTTPStatus.ACCEPTED, b"")
                    return
                if kind != "RequestResponse":
                    self._service_error(HTTPStatus.BAD_REQUEST, "InvalidParameterValueException",
                                        f"X-Amz-Invocation-Type {kind!r} must be RequestResponse, Event or DryRun")
                    return
                client_context = None
                encoded = self.headers.get("X-Amz-Client-Context")
                if encoded:
                    try:
                        if len(encoded) > MAX_CLIENT_CONTEXT_BYTES:
                            raise ValueError(f"longer than {MAX_CLIENT_CONTEXT_BYTES} bytes")
                        client_context = base64.b64decode(encoded, validate=True).decode()
                        json.loads(client_context)
                    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
                        self._service_error(HTTPStatus.BAD_REQUEST, "InvalidRequestContentException",
                                            f"ClientContext must be base64-encoded JSON: {exc}")
                        return
                try:
                    done = service.invoke_with_record(name, payload, client_context=client_context)
                except LambdaFunctionError as err:
                    status, error_type = _SERVICE_ERRORS.get(err.error_type, (HTTPStatus.INTERNAL_SERVER_ERROR, "ServiceException"))
                    self._service_error(status, error_type, err.message)
                    return
                headers = {"X-Amz-Executed-Version": "$LATEST"}
                if self.headers.get("X-Amz-Log-Type") == "Tail":
                    tail = ("\n".join(done.log_lines) + "\n").encode()[-4096:]
                    headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
                if done.error is not None:
                    headers["X-Amz-Function-Error"] = "Unhandled"
                    self._send(HTTPStatus.OK, json.dumps(done.error.to_payload()).encode(), headers)
                else:
                    self._send(HTTPStatus.OK, json.dumps(done.payload).encode(), headers)

            @staticmethod
            def _invoke_quietly(name: str, payload: Any) -> None:
                try:
                    service.invoke_with_record(name, payload)
                except LambdaFunctionError:
                    pass  # asynchronous invocations report through logs and records only

        return Handler
