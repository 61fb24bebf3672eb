"""Execution environments: one sandbox that runs INIT once and then invocations one at a time.

:class:`ExecutionEnvironment` holds what every kind shares: the Runtime API
server, the environment variables Lambda sets, INIT timing, the invoke/timeout
protocol and the log stream. Subclasses say how the runtime is started, how
peak memory is read, and how it is killed: :class:`ProcessEnvironment` (a host
OS process, the local backend) and the Docker backend's container.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from emulator.contracts.cloudwatch import log_group_name, log_stream_name
from emulator.contracts.aws import INIT_LIMIT_S, REGION, function_arn
from emulator.contracts.lambdas import FunctionConfig, LambdaFunctionError
from emulator.lambda_runtime.runtime_api import Invocation, RuntimeAPIServer

_WATCH_INTERVAL_S = 0.02


@dataclass(frozen=True)
class InvokeOutcome:
    """One invocation as the environment saw it."""

    status: str  # "success" | "error" | "timeout"
    payload: Any = None  # the handler's result on success
    error: LambdaFunctionError | None = None
    duration_ms: float = 0.0
    max_memory_used_mb: int = 0


class ExecutionEnvironment(ABC):
    """A Lambda execution environment; see the module docstring.

    Args:
        function: the function this environment runs.
        runtime_api_bind: address the Runtime API server listens on.
        runtime_api_host: address the runtime inside the environment dials
            (differs from the bind address when the runtime is in a container).
    """

    def __init__(self, function: FunctionConfig, *, runtime_api_bind: str = "127.0.0.1", runtime_api_host: str | None = None) -> None:
        self.function = function
        self.instance_id = uuid.uuid4().hex
        self.created = datetime.now(timezone.utc)
        self.log_group = log_group_name(function.name)
        self.log_stream = log_stream_name(self.created, self.instance_id)
        self.api = RuntimeAPIServer(host=runtime_api_bind).start()
        self._runtime_api_host = runtime_api_host or runtime_api_bind
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self.init_duration_ms: float | None = None
        self.last_used = time.monotonic()
        self.invocations = 0

    # -- what a kind of environment must provide ----------------------------
    @abstractmethod
    def _launch(self, env: dict[str, str]) -> None:
        """Start the runtime (``python -m awslambdaric <handler>``) with ``env``."""

    @abstractmethod
    def peak_memory_mb(self) -> int:
        """Peak memory of the whole sandbox so far, in MB (MiB, as Lambda reports)."""

    @abstractmethod
    def exit_reason(self) -> str | None:
        """None while the runtime lives; else ``"oom"`` or ``"exit:<code>"``."""

    @abstractmethod
    def _kill(self) -> None:
        """Stop the sandbox at once (timeouts, shutdown)."""

    def _drain_logs(self) -> None:
        """Wait until the runtime's already-written output is in the log stream."""

    # -- shared lifecycle ---------------------------------------------------
    def runtime_environment(self) -> dict[str, str]:
        """The environment variables Lambda sets, plus the function's own."""
        fn = self.function
        return {
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_RUNTIME_API": f"{self._runtime_api_host}:{self.api.port}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            **fn.environment,
        }

    def log(self, line: str) -> None:
        """Append a line to this environment's log stream."""
        with self._lines_lock:
            self._lines.append(line.rstrip("\n"))

    def take_log_lines(self) -> list[str]:
        """Lines written since the last call (the service files them per stream)."""
        with self._lines_lock:
            lines, self._lines = self._lines, []
        return lines

    def init(self) -> float:
        """Run INIT; returns the Init Duration in ms.

        Raises:
            LambdaFunctionError: the handler failed to import or the runtime died
                or took longer than Lambda's INIT limit.
        """
        started = time.monotonic()
        self._launch(self.runtime_environment())
        limit = INIT_LIMIT_S + self.function.timeout_s  # Lambda retries a slow INIT inside the invoke
        deadline = started + limit
        while time.monotonic() < deadline:
            if self.api.wait_ready(0.05):
                self.init_duration_ms = (self.api.ready_at - started) * 1000.0
                return self.init_duration_ms
            if self.api.init_error is not None:
                self._drain_logs()
                err = self.api.init_error
                self.shutdown()
                raise LambdaFunctionError(err.get("errorType", "Runtime.Unknown"), err.get("errorMessage", ""), err.get("stackTrace"))
            reason = self.exit_reason()
            if reason is not None:
                self._drain_logs()
                self.shutdown()
                raise self._death_error(reason, "during INIT")
        self.shutdown()
        raise LambdaFunctionError("Sandbox.Timedout", f"INIT did not finish within {limit:.0f} s")

    def invoke(self, request_id: str, payload: Any) -> InvokeOutcome:
        """Run one invocation; enforces the function's timeout.

        The environment is unusable afterwards unless the outcome is success or
        a plain function error (check :meth:`healthy`).
        """
        fn = self.function
        body = json.dumps(payload).encode()
        started = time.monotonic()
        deadline_ms = int((time.time() + fn.timeout_s) * 1000)
        self.api.submit(Invocation(request_id, body, deadline_ms, function_arn(fn.name), f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"))
        self.invocations += 1
        outcome = None
        while outcome is None:
            remaining = fn.timeout_s - (time.monotonic() - started)
            if remaining <= 0:
                break
            outcome = self.api.wait_outcome(request_id, min(remaining, 0.05))
            if outcome is None and self.exit_reason() is not None:
                break
        elapsed_ms = (time.monotonic() - started) * 1000.0
        memory = self.peak_memory_mb()
        self._drain_logs()
        self.last_used = time.monotonic()
        if outcome is not None:
            if outcome.ok:
                try:
                    return InvokeOutcome("success", outcome.json(), None, elapsed_ms, memory)
                except json.JSONDecodeError:
                    err = LambdaFunctionError("Runtime.InvalidResponsePayload", "the handler returned a response that is not JSON")
                    return InvokeOutcome("error", None, err, elapsed_ms, memory)
            try:
                info = outcome.json() or {}
            except json.JSONDecodeError:
                info = {}
            err = LambdaFunctionError(outcome.error_type or "Runtime.Unknown", info.get("errorMessage", ""), info.get("stackTrace"))
            return InvokeOutcome("error", None, err, elapsed_ms, memory)
        reason = self.exit_reason()
        if reason is not None:
            self.shutdown()
            return InvokeOutcome("error", None, self._death_error(reason, "during the invocation"), elapsed_ms, memory)
        # Timed out: Lambda stops the sandbox; the next invoke gets a fresh one.
        self.log(f"{datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z {request_id} Task timed out after {fn.timeout_s:.2f} seconds")
        self.shutdown()
        err = LambdaFunctionError("Sandbox.Timedout", f"Task timed out after {fn.timeout_s:.2f} seconds")
        return InvokeOutcome("timeout", None, err, fn.timeout_s * 1000.0, memory)

    def healthy(self) -> bool:
        """Whether the environment can take another invocation."""
        return self.exit_reason() is None and not self.api._closed.is_set()

    def shutdown(self) -> None:
        """Kill the sandbox and stop its Runtime API server (idempotent)."""
        self._kill()
        self.api.abandon()
        self.api.close()

    def _death_error(self, reason: str, when: str) -> LambdaFunctionError:
        if reason == "oom":
            return LambdaFunctionError(
                "Runtime.OutOfMemory",
                f"Runtime exited with error: signal: killed (memory use exceeded MemorySize {self.function.memory_mb} MB {when})",
            )
        return LambdaFunctionError("Runtime.ExitError", f"Runtime exited {when} with {reason}")


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return rss, hwm


class ProcessEnvironment(ExecutionEnvironment):
    """An execution environment that is one host OS process running ``awslambdaric``.

    Memory: peak RSS is the kernel's VmHWM of the process. MemorySize is
    enforced by a watchdog that kills the process once its RSS exceeds it
    (reported as ``Runtime.OutOfMemory``); the kernel cgroup limit of the
    Docker backend is exact where this samples every 20 ms.
    """

    def __init__(self, function: FunctionConfig, *, python: str | None = None, task_root: str | None = None,
                 python_path: tuple[str, ...] = (), **kwargs: Any) -> None:
        """``python``, ``task_root`` and ``python_path`` give a function its own interpreter (a venv),
        code directory (the working directory, first on ``sys.path``, as ``/var/task``) and layer
        directories; by default the runtime runs on this interpreter from a temporary directory."""
        super().__init__(function, **kwargs)
        self._python = python or sys.executable
        self._task_root = task_root
        self._python_path = python_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir = tempfile.TemporaryDirectory(prefix=f"lambdatwin-{function.name}-")
        self._peak_kb = 0
        self._oom = False
        self._reader: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._reader_idle = threading.Event()

    def _launch(self, env: dict[str, str]) -> None:
        full_env = {**os.environ, **env, "TMPDIR": self._tmpdir.name}
        if self._task_root is not None:
            full_env.pop("PYTHONPATH", None)  # the function's own path only
            full_env["LAMBDA_TASK_ROOT"] = self._task_root
        if self._python_path:
            full_env["PYTHONPATH"] = os.pathsep.join(self._python_path)
        self._proc = subprocess.Popen(
            [self._python, "-m", "awslambdaric", self.function.handler],
            env=full_env,
            cwd=self._task_root or self._tmpdir.name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill takes its children too
        )
        self._reader = threading.Thread(target=self._read_output, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        self._watchdog = threading.Thread(target=self._watch_memory, daemon=True)
        self._watchdog.start()

    def _read_output(self, stream: IO[bytes]) -> None:
        # select + os.read rather than readline, so `_reader_idle` says truthfully
        # whether everything read so far has been filed (see _drain_logs).
        fd = stream.fileno()
        pending = b""
        while True:
            self._reader_idle.set()
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            self._reader_idle.clear()
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    self.log(pending.decode(errors="replace"))
                self._reader_idle.set()
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self.log(line.decode(errors="replace"))

    def _watch_memory(self) -> None:
        proc = self._proc
        limit_kb = self.function.memory_mb * 1024
        while proc is not None and proc.poll() is None:
            rss, hwm = _rss_kb(proc.pid)
            self._peak_kb = max(self._peak_kb, hwm, rss)
            if rss > limit_kb:
                self._oom = True
                self._kill()
                return
            time.sleep(_WATCH_INTERVAL_S)

    def _drain_logs(self) -> None:
        # The runtime writes its output before it posts the result, so it is in
        # the pipe already: wait until the pipe is empty and the reader idle.
        if self._proc is None or self._proc.stdout is None:
            return
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                pending = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")
            except OSError:
                return
            if pending == 0:
                break
            time.sleep(0.002)
        self._reader_idle.wait(1.0)

    def peak_memory_mb(self) -> int:
        if self._proc is not None and self._proc.poll() is None:
            rss, hwm = _rss_kb(self._proc.pid)
            self._peak_kb = max(self._peak_kb, hwm, rss)
        return max(1, -(-self._peak_kb // 1024))

    def exit_reason(self) -> str | None:
        if self._proc is None:
            return None
        if self._oom:
            return "oom"
        code = self._proc.poll()
        if code is None:
            return None
        if code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit:{code}"

    def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def shutdown(self) -> None:
        super().shutdown()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._tmpdir.cleanup()
