"""The Lambda Runtime API served to one execution environment.

Endpoints (as AWS documents them for custom runtimes)::

    GET  /2018-06-01/runtime/invocation/next            long-polls for the next event
    POST /2018-06-01/runtime/invocation/{id}/response   the handler's result
    POST /2018-06-01/runtime/invocation/{id}/error      a function error
    POST /2018-06-01/runtime/init/error                 initialisation failed

``next`` answers with the event as its body and the headers
``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms``,
``Lambda-Runtime-Invoked-Function-Arn`` and ``Lambda-Runtime-Trace-Id``.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_PREFIX = "/2018-06-01/runtime"
_INVOCATION_PATH = re.compile(rf"^{API_PREFIX}/invocation/(?P<rid>[^/]+)/(?P<kind>response|error)$")
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response payload limit
_POLL_SLICE_S = 0.5  # how often a blocked `next` re-checks for shutdown


@dataclass(frozen=True)
class Invocation:
    """An event queued for the runtime."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str


@dataclass(frozen=True)
class Outcome:
    """What the runtime posted back for one invocation."""

    ok: bool
    body: bytes
    error_type: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed mid-request (timeout, OOM) resets its connection;
        # that is expected and reported through the invocation, not here.
        pass


class RuntimeAPIServer:
    """Serve the Runtime API for one execution environment.

    The platform side calls :meth:`wait_ready`, :meth:`submit` and
    :meth:`wait_outcome`; the runtime inside the environment calls the HTTP
    endpoints.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._events: queue.Queue[Invocation] = queue.Queue()
        self._outcomes: dict[str, Outcome] = {}
        self._cond = threading.Condition()
        self._ready = threading.Event()  # first `next` seen: INIT finished
        self._closed = threading.Event()
        self.init_error: dict[str, Any] | None = None
        self.ready_at: float | None = None
        self._httpd = _QuietHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` for ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> "RuntimeAPIServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- platform side -----------------------------------------------------
    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the runtime finished INIT (first ``next``) or posted an init error."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return True
            if self.init_error is not None or self._closed.is_set():
                return False
        return self._ready.is_set()

    def submit(self, invocation: Invocation) -> None:
        """Queue an event for the runtime's next ``next`` call."""
        self._events.put(invocation)

    def wait_outcome(self, request_id: str, timeout_s: float) -> Outcome | None:
        """The runtime's answer for ``request_id``, or None if none came in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while request_id not in self._outcomes:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed.is_set():
                    return None
                self._cond.wait(min(remaining, _POLL_SLICE_S))
            return self._outcomes.pop(request_id)

    def abandon(self) -> None:
        """Stop waiters (e.g. the environment died) so they return at once."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()

    # -- runtime side --------------------------------------------------------
    def _post_outcome(self, request_id: str, outcome: Outcome) -> None:
        with self._cond:
            self._outcomes[request_id] = outcome
            self._cond.notify_all()

    def _next_event(self) -> Invocation | None:
        if self.ready_at is None:
            self.ready_at = time.monotonic()
        self._ready.set()
        while not self._closed.is_set():
            try:
                return self._events.get(timeout=_POLL_SLICE_S)
            except queue.Empty:
                continue
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small request/response pairs: avoid 40 ms delayed-ACK stalls

            def log_message(self, fmt: str, *args: Any) -> None:  # keep the platform's stderr clean
                pass

            def _reply(self, status: HTTPStatus, body: dict[str, Any] | bytes = b"", headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes | None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_RESPONSE_BYTES:
                    self.rfile.read(length)  # drain so the connection stays usable
                    return None
                return self.rfile.read(length) if length else b""

            def do_GET(self) -> None:
                if self.path != f"{API_PREFIX}/invocation/next":
                    self._reply(HTTPStatus.NOT_FOUND, {"errorType": "InvalidRequest", "errorMessage": f"no route {self.path}"})
                    return
                event = api._next_event()
                if event is None:
                    self._reply(HTTPStatus.GONE, {"errorType": "EnvironmentShutdown", "errorMessage": "shutting down"})
                    return
                self._reply(
                    HTTPStatus.OK,
                    event.payload,
                    {
                        "Lambda-Runtime-Aws-Request-Id": event.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": event.function_arn,
                        "Lambda-Runtime-Trace-Id": event.trace_id,
                    },
                )

            def do_POST(self) -> None:
                body = self._body()
                if self.path == f"{API_PREFIX}/init/error":
                    try:
                        api.init_error = json.loads(body or b"{}")
                    except json.JSONDecodeError:
                        api.init_error = {"errorType": "Runtime.Unknown", "errorMessage": (body or b"").decode(errors="replace")}
                    api.init_error.setdefault("errorType", self.headers.get("Lambda-Runtime-Function-Error-Type", "Runtime.Unknown"))
                    self._reply(HTTPStatus.ACCEPTED, {"status": "OK"})
                    return
                match = _INVOCATION_PATH.match(self.path)
                if match is None:
                    self._reply(HTTPStatus.NOT_FOUND, {"errorType": "InvalidRequest", "errorMessage": f"no route {self.path}"})
                    return
                rid = match.group("rid")
                if body is None:
                    # Lambda turns an oversized response into a function error.
                    api._post_outcome(rid, Outcome(False, json.dumps({
                        "errorType": "Function.ResponseSizeTooLarge",
                        "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                    }).encode(), "Function.ResponseSizeTooLarge"))
                    self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"errorType": "RequestEntityTooLarge", "errorMessage": "response too large"})
                    return
                if match.group("kind") == "response":
                    api._post_outcome(rid, Outcome(True, body))
                else:
                    error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                    try:
                        error_type = json.loads(body).get("errorType") or error_type
                    except (json.JSONDecodeError, AttributeError):
                        pass
                    api._post_outcome(rid, Outcome(False, body, error_type or "Runtime.Unknown"))
                self._reply(HTTPStatus.ACCEPTED, {"status": "OK"})

        return Handler
