"""The Lambda Runtime API served to one execution environment.

Endpoints (as AWS documents them for custom runtimes)::

    GET  /2018-06-01/runtime/invocation/next            long-polls for the next event
    POST /2018-06-01/runtime/invocation/{id}/response   the handler's result
    POST /2018-06-01/runtime/invocation/{id}/error      a function error
    POST /2018-06-01/runtime/init/error                 initialisation failed

``next`` answers with the event as its body and the headers
``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms``,
``Lambda-Runtime-Invoked-Function-Arn``, ``Lambda-Runtime-Trace-Id``
(``Root=...;Parent=...;Sampled=...``) and, when the caller sent them,
``Lambda-Runtime-Client-Context`` and ``Lambda-Runtime-Cognito-Identity``.

A response or error for a request id that is not the invocation in progress
(unknown, or already answered) gets ``400 InvalidRequestID`` and is dropped, so
nothing is stored for ids the platform is not waiting on. A response body over
6,291,556 bytes (``aws.MAX_SYNC_RESPONSE_BYTES``) gets ``413`` and the caller
``Function.ResponseSizeTooLarge``.

Source: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
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

from emulator.contracts.aws import LAMBDA_RESPONSE_TOO_LARGE, MAX_SYNC_RESPONSE_BYTES, RUNTIME_INVALID_REQUEST_ID

API_PREFIX = "/2018-06-01/runtime"
_INVOCATION_PATH = re.compile(rf"^{API_PREFIX}/invocation/(?P<rid>[^/]+)/(?P<kind>response|error)$")
MAX_RESPONSE_BYTES = MAX_SYNC_RESPONSE_BYTES
_POLL_SLICE_S = 0.5  # how often a blocked `next` re-checks for shutdown
_DRAIN_CHUNK = 1 << 16


@dataclass(frozen=True)
class Invocation:
    """An event queued for the runtime."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    client_context: str | None = None  # JSON, as the runtime receives it (decoded from the Invoke's base64)
    cognito_identity: str | None = None  # JSON


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
        self._in_progress: str | None = None  # the id `next` handed out and nobody answered yet
        self._polling = threading.Event()  # the runtime is blocked in `next`: it finished its work
        self._cond = threading.Condition()
        self._generation = 0  # bumped by reset(): a dead runtime's pending `next` must not take new events
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

    def reset(self) -> None:
        """Forget the previous runtime process (it was stopped): the next one starts INIT afresh."""
        with self._cond:
            self._generation += 1
            self._events = queue.Queue()
            self._outcomes.clear()
            self._in_progress = None
            self._ready.clear()
            self._polling.clear()
            self.init_error = None
            self.ready_at = None
            self._cond.notify_all()

    def submit(self, invocation: Invocation) -> None:
        """Queue an event for the runtime's next ``next`` call."""
        self._events.put(invocation)

    def wait_polling(self, timeout_s: float) -> bool:
        """Block until the runtime is back in ``next`` (its way of saying it is done)."""
        return self._polling.wait(timeout_s)

    def forget(self, request_id: str) -> None:
        """The platform stopped waiting for ``request_id`` (timeout): a late answer is refused."""
        with self._cond:
            self._outcomes.pop(request_id, None)
            if self._in_progress == request_id:
                self._in_progress = None

    @property
    def stored_outcomes(self) -> int:
        """Answers held for the platform (bounded: at most the one invocation in progress)."""
        with self._cond:
            return len(self._outcomes)

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
    def _post_outcome(self, request_id: str, outcome: Outcome) -> bool:
        """File the answer for the invocation in progress; False for any other id."""
        with self._cond:
            if request_id != self._in_progress:
                return False
            self._in_progress = None
            self._outcomes[request_id] = outcome
            self._cond.notify_all()
            return True

    def _next_event(self) -> Invocation | None:
        with self._cond:
            generation, events = self._generation, self._events
            if self.ready_at is None:
                self.ready_at = time.monotonic()
            self._ready.set()
            self._polling.set()
        while not self._closed.is_set() and generation == self._generation:
            try:
                event = events.get(timeout=_POLL_SLICE_S)
            except queue.Empty:
                continue
            with self._cond:
                if generation != self._generation:
                    return None  # the runtime that asked is gone; the event was for the old queue
                self._in_progress = event.request_id
                self._polling.clear()
            return event
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
                    while length > 0:  # drain in chunks so the connection stays usable, holding nothing
                        chunk = self.rfile.read(min(length, _DRAIN_CHUNK))
                        if not chunk:
                            break
                        length -= len(chunk)
                    return None
                return self.rfile.read(length) if length else b""

            def _invalid_request_id(self) -> None:
                self._reply(HTTPStatus.BAD_REQUEST, {"errorMessage": "Invalid request ID", "errorType": RUNTIME_INVALID_REQUEST_ID})

            def do_GET(self) -> None:
                if self.path != f"{API_PREFIX}/invocation/next":
                    self._reply(HTTPStatus.NOT_FOUND, {"errorType": "InvalidRequest", "errorMessage": f"no route {self.path}"})
                    return
                event = api._next_event()
                if event is None:
                    self._reply(HTTPStatus.GONE, {"errorType": "EnvironmentShutdown", "errorMessage": "shutting down"})
                    return
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": event.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": event.function_arn,
                    "Lambda-Runtime-Trace-Id": event.trace_id,
                }
                if event.client_context is not None:
                    headers["Lambda-Runtime-Client-Context"] = event.client_context
                if event.cognito_identity is not None:
                    headers["Lambda-Runtime-Cognito-Identity"] = event.cognito_identity
                self._reply(HTTPStatus.OK, event.payload, headers)

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
                    message = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                    outcome = Outcome(False, json.dumps({"errorMessage": message, "errorType": LAMBDA_RESPONSE_TOO_LARGE}).encode(),
                                      LAMBDA_RESPONSE_TOO_LARGE)
                    if not api._post_outcome(rid, outcome):
                        self._invalid_request_id()
                        return
                    self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"errorMessage": message, "errorType": "RequestEntityTooLarge"})
                    return
                if match.group("kind") == "response":
                    outcome = Outcome(True, body)
                else:
                    error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                    try:
                        error_type = json.loads(body).get("errorType") or error_type
                    except (json.JSONDecodeError, AttributeError):
                        pass
                    outcome = Outcome(False, body, error_type or "Runtime.Unknown")
                if not api._post_outcome(rid, outcome):
                    self._invalid_request_id()
                    return
                self._reply(HTTPStatus.ACCEPTED, {"status": "OK"})

        return Handler
