"""Execution environments: one sandbox that runs INIT, then invocations one at a time, frozen in between.

:class:`ExecutionEnvironment` holds what every kind shares, as the Lambda
developer guide describes the lifecycle
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html):

- INIT: ``INIT_START`` is logged; the runtime starts and imports the handler,
  which ends when it first calls ``next``. INIT is limited to 10 s
  (``aws.INIT_LIMIT_S``). If it fails or times out, Lambda logs ``INIT_REPORT
  ... Phase: init Status: error|timeout`` and retries INIT inside the first
  invocation under the function's timeout ("suppressed init"); a failure there
  is logged ``INIT_REPORT ... Phase: invoke`` and is the invocation's error.
- INVOKE: the event goes through the Runtime API; the function's timeout
  counts from the invoke. The runtime says it is done by calling ``next``
  again; then the environment is *frozen* (no background thread runs) until
  the next invoke thaws it.
- A timeout or crash *resets* the environment: the runtime is stopped and INIT
  re-runs in the next invocation, in the same environment (same log stream,
  same ``/tmp``).

The variables the runtime sees are only Lambda's
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime)
plus the function's own; its working directory is the task root.
Subclasses say how the runtime is started, frozen, measured and stopped:
:class:`ProcessEnvironment` (a host process tree, the local backend) and the
Docker backend's container.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from emulator.contracts.aws import (INIT_LIMIT_S, LAMBDA_EXIT_ERROR, LAMBDA_OUT_OF_MEMORY, LAMBDA_TIMEOUT, REGION,
                                    function_arn)
from emulator.contracts.cloudwatch import init_report_line, init_start_line, log_group_name, log_stream_name, start_line
from emulator.contracts.lambdas import FunctionConfig, LambdaFunctionError, platform_error
from emulator.lambda_runtime.cgroups import SandboxCgroup, create_sandbox_cgroup
from emulator.lambda_runtime.loglines import LineSplitter
from emulator.lambda_runtime.runtime_api import Invocation, Outcome, RuntimeAPIServer
from emulator.lambda_runtime.storage import EphemeralStorage

_WATCH_INTERVAL_S = 0.05
_SETTLE_MIN_S = 0.5  # how long, at least, a runtime has to come back to `next` after answering
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the process backend's task root: the project's code

# Lambda's values for the unreserved runtime variables (configuration-envvars.html).
LAMBDA_LANG = "en_US.UTF-8"
LAMBDA_TZ = ":UTC"
XRAY_DAEMON_HOST, XRAY_DAEMON_PORT = "169.254.79.129", "2000"


def trace_id_header(sampled: bool = False) -> str:
    """``Lambda-Runtime-Trace-Id``: ``Root=1-<epoch hex>-<96-bit hex>;Parent=<64-bit hex>;Sampled=0|1`` (X-Ray format)."""
    return (f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};"
            f"Sampled={1 if sampled else 0}")


def runtime_version() -> tuple[str, str]:
    """(Runtime Version, Runtime Version ARN) for ``INIT_START``: the local interpreter, AWS's format.

    AWS names a managed-runtime build ``python:3.12.v38`` with an ARN ending in a
    64-hex build hash; the twin's ``v0`` and hash (of the interpreter's version
    string) say which local build ran, not an AWS one.
    """
    major, minor = sys.version_info[:2]
    digest = hashlib.sha256(sys.version.encode()).hexdigest()
    return f"python:{major}.{minor}.v0", f"arn:aws:lambda:{REGION}::runtime:{digest}"


@dataclass(frozen=True)
class InvokeOutcome:
    """One invocation as the environment saw it."""

    status: str  # "success" | "error" | "timeout"
    payload: Any = None  # the handler's result on success
    error: LambdaFunctionError | None = None
    duration_ms: float = 0.0
    max_memory_used_mb: int = 0
    init_phase: str | None = None  # "suppressed" when INIT re-ran inside this invocation
    platform_failure: bool = False  # INIT failed or the runtime died: REPORT shows Status/Error Type
    report_error_type: str | None = None  # REPORT's Error Type when it differs from the caller's (OOM)


@dataclass(frozen=True)
class InitOutcome:
    """How one INIT went."""

    status: str  # "success" | "error" | "timeout"
    duration_ms: float
    error: LambdaFunctionError | None = None


class ExecutionEnvironment(ABC):
    """A Lambda execution environment; see the module docstring.

    Args:
        function: the function this environment runs.
        runtime_api_bind: address the Runtime API server listens on.
        runtime_api_host: address the runtime inside the environment dials
            (differs from the bind address when the runtime is in a container).
    """

    task_root: str = "/var/task"
    runtime_dir: str = "/var/runtime"
    lang_dir: str = "/var/lang"

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
        self.failed_init: InitOutcome | None = None  # a failed INIT phase, reported with the first invocation
        self.last_used = time.monotonic()
        self.invocations = 0
        self.notes: dict[str, str] = {}  # what this platform could not enforce, for the run record
        self._runtime_up = False  # a runtime finished INIT and waits for events
        self._answered_at: float | None = None  # when the runtime answered the invocation in progress
        self._destroyed = False

    # -- what a kind of environment must provide ----------------------------
    @abstractmethod
    def _launch(self, env: dict[str, str]) -> None:
        """Start the runtime (``python -m awslambdaric <handler>``) with exactly ``env``."""

    @abstractmethod
    def peak_memory_mb(self) -> int:
        """Peak memory of the whole sandbox so far, in MB (MiB, as Lambda reports)."""

    @abstractmethod
    def exit_reason(self) -> str | None:
        """None while the runtime lives; else ``"oom"`` or ``"exit:<code>"``/``"signal <NAME>"``."""

    @abstractmethod
    def _stop_runtime(self) -> None:
        """Stop the runtime and everything it started, at once; the environment (``/tmp``) stays."""

    @abstractmethod
    def _freeze(self) -> None:
        """Stop every process of the sandbox from running (SIGSTOP, cgroup freezer)."""

    @abstractmethod
    def _thaw(self) -> None:
        """Undo :meth:`_freeze`."""

    def _release(self) -> None:
        """Free what the environment holds beyond the runtime (``/tmp``, cgroups, containers)."""

    def _drain_logs(self) -> None:
        """Wait until the runtime's already-written output is in the log stream."""

    # -- the variables Lambda sets -------------------------------------------
    def runtime_environment(self) -> dict[str, str]:
        """Exactly the variables Lambda sets for the Python runtime, then the function's own.

        Reserved: ``_HANDLER``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
        ``AWS_EXECUTION_ENV``, ``AWS_LAMBDA_FUNCTION_NAME``/``_MEMORY_SIZE``/``_VERSION``,
        ``AWS_LAMBDA_INITIALIZATION_TYPE``, ``AWS_LAMBDA_LOG_GROUP_NAME``/``_STREAM_NAME``,
        ``AWS_LAMBDA_RUNTIME_API``, ``LAMBDA_TASK_ROOT``, ``LAMBDA_RUNTIME_DIR``, ``TZ``
        (``AWS_ACCESS_KEY_ID`` & co. come from the function's role: here its environment).
        Unreserved: ``LANG``, ``PATH``, ``LD_LIBRARY_PATH``, ``PYTHONPATH``
        (``$LAMBDA_RUNTIME_DIR``), the X-Ray daemon variables. ``_X_AMZN_TRACE_ID``
        is set per invocation by the runtime from ``Lambda-Runtime-Trace-Id``.
        """
        fn = self.function
        task, runtime, lang = self.task_root, self.runtime_dir, self.lang_dir
        return {
            "_HANDLER": fn.handler,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_RUNTIME_API": f"{self._runtime_api_host}:{self.api.port}",
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": runtime,
            "TZ": LAMBDA_TZ,
            "LANG": LAMBDA_LANG,
            "PATH": f"{lang}/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
            "LD_LIBRARY_PATH": f"{lang}/lib:/lib64:/usr/lib64:{runtime}:{runtime}/lib:{task}:{task}/lib:/opt/lib",
            "PYTHONPATH": runtime,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": f"{XRAY_DAEMON_HOST}:{XRAY_DAEMON_PORT}",
            "_AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON_HOST,
            "_AWS_XRAY_DAEMON_PORT": XRAY_DAEMON_PORT,
            **fn.environment,
        }

    # -- the log stream -----------------------------------------------------
    def log(self, line: str) -> None:
        """Append a line to this environment's log stream."""
        with self._lines_lock:
            self._lines.append(line.rstrip("\n"))

    def take_log_lines(self) -> list[str]:
        """Lines written since the last call (the service files them per stream)."""
        with self._lines_lock:
            lines, self._lines = self._lines, []
        return lines

    # -- INIT -----------------------------------------------------------------
    def init(self) -> InitOutcome:
        """The INIT phase of a new environment, limited to ``INIT_LIMIT_S``.

        On failure or timeout it logs ``INIT_REPORT ... Phase: init`` and leaves
        the runtime stopped: the first :meth:`invoke` re-runs INIT (suppressed init).
        """
        self.log(init_start_line(*runtime_version()))
        outcome = self._run_init(time.monotonic() + INIT_LIMIT_S)
        if outcome.status == "success":
            self.init_duration_ms = outcome.duration_ms
            self._freeze()
        else:
            self.failed_init = outcome
            self.log(init_report_line(outcome.duration_ms, "init", outcome.status,
                                      outcome.error.error_type if outcome.error and outcome.status == "error" else None))
        return outcome

    def _run_init(self, deadline: float) -> InitOutcome:
        """Start a runtime and wait for its first ``next`` until ``deadline`` (monotonic)."""
        self.api.reset()
        started = time.monotonic()
        self._launch(self.runtime_environment())
        while True:
            if self.api.wait_ready(min(0.05, max(0.0, deadline - time.monotonic()))):
                self._runtime_up = True
                return InitOutcome("success", ((self.api.ready_at or time.monotonic()) - started) * 1000.0)
            elapsed_ms = (time.monotonic() - started) * 1000.0
            if self.api.init_error is not None:
                self._drain_logs()
                body = self.api.init_error
                self._stop_runtime()
                err = LambdaFunctionError(body.get("errorType", "Runtime.Unknown"), body.get("errorMessage", ""),
                                          body.get("stackTrace"), body)
                return InitOutcome("error", elapsed_ms, err)
            reason = self.exit_reason()
            if reason is not None:
                self._drain_logs()
                self._stop_runtime()
                return InitOutcome("error", elapsed_ms, self._death_error(reason, "", during_init=True))
            if time.monotonic() >= deadline:
                self._stop_runtime()
                return InitOutcome("timeout", elapsed_ms)

    # -- INVOKE -----------------------------------------------------------------
    def invoke(self, request_id: str, payload: Any, *, client_context: str | None = None,
               cognito_identity: str | None = None) -> InvokeOutcome:
        """Run one invocation under the function's timeout; logs START (after any INIT re-run)."""
        fn = self.function
        started = time.monotonic()
        deadline = started + fn.timeout_s
        self.invocations += 1
        init_phase = None
        if not self._runtime_up:
            init_phase = "suppressed"  # INIT re-runs inside the invocation, under the function's timeout
            if self.invocations > 1 or self.failed_init is None:
                self.log(init_start_line(*runtime_version()))
            init = self._run_init(deadline)
            if init.status != "success":
                self.log(init_report_line(init.duration_ms, "invoke", init.status,
                                          init.error.error_type if init.error and init.status == "error" else None))
                self.log(start_line(request_id))
                if init.status == "timeout":
                    return self._timed_out(request_id, init_phase)
                elapsed_ms = (time.monotonic() - started) * 1000.0
                return InvokeOutcome("error", None, init.error, elapsed_ms, self._memory(), init_phase, True)
        else:
            self._thaw()
        self.log(start_line(request_id))
        self._answered_at = None
        body = json.dumps(payload).encode()
        deadline_ms = int((time.time() + (deadline - time.monotonic())) * 1000)
        self.api.submit(Invocation(request_id, body, deadline_ms, function_arn(fn.name), trace_id_header(),
                                   client_context, cognito_identity))
        outcome = None
        while outcome is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            outcome = self.api.wait_outcome(request_id, min(remaining, 0.05))
            if outcome is None and self.exit_reason() is not None:
                break
        if outcome is not None and self.exit_reason() == "oom":
            # The kernel killed a process of the sandbox at MemorySize while the handler ran (a child
            # can die and the handler still answer): the invocation ends as out of memory, whatever
            # arrived first.
            outcome = None
        if outcome is None and self.exit_reason() is None:
            return self._timed_out(request_id, init_phase)
        if outcome is not None:
            self._settle(deadline)
        elapsed_ms = (time.monotonic() - started) * 1000.0 if outcome is None else self._answered_ms(started)
        memory = self._memory()
        self._drain_logs()
        self.last_used = time.monotonic()
        if outcome is None:
            reason = self.exit_reason() or "exit:unknown"
            self._reset()
            return InvokeOutcome("error", None, self._death_error(reason, request_id), elapsed_ms, memory, init_phase, True,
                                 LAMBDA_OUT_OF_MEMORY if reason == "oom" else None)
        return self._outcome(outcome, elapsed_ms, memory, init_phase)

    def _answered_ms(self, started: float) -> float:
        return ((self._answered_at or time.monotonic()) - started) * 1000.0

    def _settle(self, deadline: float) -> None:
        """After the answer: wait until the runtime is back in ``next``, then freeze; reset it if it died."""
        self._answered_at = time.monotonic()
        limit = max(deadline, self._answered_at + _SETTLE_MIN_S)
        while time.monotonic() < limit:
            if self.api.wait_polling(0.01):
                self._freeze()
                return
            if self.exit_reason() is not None:
                break
        self._reset()  # died after answering, or never came back: the next invoke re-runs INIT

    def _outcome(self, outcome: Outcome, elapsed_ms: float, memory: int, init_phase: str | None) -> InvokeOutcome:
        if outcome.ok:
            try:
                return InvokeOutcome("success", outcome.json(), None, elapsed_ms, memory, init_phase)
            except json.JSONDecodeError:
                err = LambdaFunctionError("Runtime.InvalidResponsePayload", "the handler returned a response that is not JSON")
                return InvokeOutcome("error", None, err, elapsed_ms, memory, init_phase)
        try:
            info = outcome.json() or {}
        except json.JSONDecodeError:
            info = {}
        if not isinstance(info, dict):
            info = {}
        err = LambdaFunctionError(outcome.error_type or "Runtime.Unknown", info.get("errorMessage", ""),
                                  info.get("stackTrace"), info or None)
        return InvokeOutcome("error", None, err, elapsed_ms, memory, init_phase)

    def _timed_out(self, request_id: str, init_phase: str | None) -> InvokeOutcome:
        fn = self.function
        memory = self._memory()
        self.api.forget(request_id)
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        self.log(f"{now}Z {request_id} Task timed out after {fn.timeout_s:.2f} seconds")
        self._reset()
        self.last_used = time.monotonic()
        err = platform_error(LAMBDA_TIMEOUT, request_id, f"Task timed out after {fn.timeout_s:.2f} seconds")
        return InvokeOutcome("timeout", None, err, fn.timeout_s * 1000.0, memory, init_phase)

    def _memory(self) -> int:
        """Max Memory Used: the sandbox's peak, never above Memory Size (the limit stops it there)."""
        return min(self.peak_memory_mb(), self.function.memory_mb)

    def _reset(self) -> None:
        """Stop the runtime; keep the environment. The next invocation re-runs INIT."""
        self._drain_logs()
        self._runtime_up = False
        self._stop_runtime()

    def healthy(self) -> bool:
        """Whether the environment can take another invocation (a reset one can: it re-runs INIT)."""
        return not self._destroyed

    def shutdown(self) -> None:
        """Kill the sandbox, stop its Runtime API server and free its /tmp (idempotent)."""
        if self._destroyed:
            return
        self._destroyed = True
        self._runtime_up = False
        self._stop_runtime()
        self.api.abandon()
        self.api.close()
        self._release()

    def _death_error(self, reason: str, request_id: str, during_init: bool = False) -> LambdaFunctionError:
        """The error a caller gets when the runtime died.

        Out of memory: the kernel kills the runtime, and the caller gets
        ``Runtime.ExitError`` "Runtime exited with error: signal: killed", while
        the REPORT line says ``Error Type: Runtime.OutOfMemory`` (see
        docs/emulator-vs-aws.md for the sources).
        """
        if reason == "oom":
            detail = "signal: killed"
        elif reason.startswith("exit:"):
            detail = f"exit status {reason[5:]}"
        else:
            detail = reason.replace("signal ", "signal: ")
        message, error_type = f"Runtime exited with error: {detail}", LAMBDA_EXIT_ERROR
        if during_init:
            return LambdaFunctionError(error_type, message, None, {"errorType": error_type, "errorMessage": message})
        return platform_error(error_type, request_id, message)


def _tree_rss_kb(session: int) -> int:
    """Resident memory of every process in session ``session`` (the runtime and all it started), in kB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) != session:  # field 6 of stat: session id
                continue
            with open(f"/proc/{entry}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, ValueError, IndexError):
            continue
    return total


def _runtime_dir() -> str:
    """Where ``awslambdaric`` is installed: the process backend's LAMBDA_RUNTIME_DIR (and PYTHONPATH)."""
    spec = importlib.util.find_spec("awslambdaric")
    if spec is None or spec.origin is None:
        return str(Path(sys.executable).resolve().parent)
    return str(Path(spec.origin).resolve().parent.parent)


class ProcessEnvironment(ExecutionEnvironment):
    """An execution environment that is a host process tree running ``awslambdaric``.

    - Task root (cwd, ``LAMBDA_TASK_ROOT``, first on ``sys.path`` as ``python -m``
      puts it): the project directory, or ``task_root``.
    - Memory and CPU: a cgroup per environment (see :mod:`.cgroups`) when the host
      allows it: the kernel enforces MemorySize over the whole tree (children
      included), reports its peak and OOM kills, and gives CPU in proportion to
      memory. Otherwise a watchdog sums the tree's RSS every 50 ms and kills it
      over the limit, CPU is not limited, and :attr:`notes` says so.
    - Freeze: SIGSTOP / SIGCONT of the runtime's process group.
    - ``/tmp``: an :class:`EphemeralStorage` given as ``TMPDIR`` (see there).
    """

    lang_dir = str(Path(sys.base_prefix))

    def __init__(self, function: FunctionConfig, *, task_root: str | Path | None = None, python: str | None = None,
                 python_path: tuple[str, ...] = (), **kwargs: Any) -> None:
        """``task_root``, ``python`` and ``python_path`` give a function its own code directory (the
        working directory, first on ``sys.path``, as ``/var/task``), interpreter (a venv of its own
        requirements) and the directories after it (layers, then the runtime client, as
        ``/opt/python`` and ``/var/runtime``); by default the project on this interpreter."""
        super().__init__(function, **kwargs)
        self.task_root = str(Path(task_root or PROJECT_ROOT).resolve())
        self._python = python or sys.executable
        self.runtime_dir = _runtime_dir()
        self._python_path = python_path
        self.storage = EphemeralStorage(function.ephemeral_storage_mb, prefix=f"lambdatwin-{function.name}-")
        if self.storage.note:
            self.notes["tmp"] = self.storage.note
        self.cgroup: SandboxCgroup | None
        self.cgroup, description = create_sandbox_cgroup(f"lambdatwin-{self.instance_id}", function.memory_mb, function.vcpus)
        if self.cgroup is None:
            self.notes["memory"] = f"MemorySize enforced by sampling the process tree's RSS: {description}"
            self.notes["cpu"] = f"CPU not limited to {function.vcpus:.2f} vCPU: {description}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._peak_kb = 0
        self._oom = False
        self._oom_seen = 0
        self._frozen = False
        self._reader: threading.Thread | None = None
        self._reader_idle = threading.Event()
        self._reader_idle.set()

    def _launch(self, env: dict[str, str]) -> None:
        self._oom = False
        argv = [self._python, "-m", "awslambdaric", self.function.handler]
        if self._python != sys.executable:
            # A function on its own interpreter (a venv of its requirements, which finds the runtime
            # client itself) sees only its layers on PYTHONPATH, never this process's packages.
            env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
            if self._python_path:
                env["PYTHONPATH"] = os.pathsep.join(self._python_path)
        self._proc = subprocess.Popen(
            self.cgroup.command(argv) if self.cgroup is not None else argv,
            env={**env, "TMPDIR": str(self.storage.path)},
            cwd=self.task_root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill or SIGSTOP takes its children too
        )
        self._reader_idle.clear()
        self._reader = threading.Thread(target=self._read_output, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        if self.cgroup is None:
            threading.Thread(target=self._watch_memory, args=(self._proc,), daemon=True).start()

    def _read_output(self, stream: IO[bytes]) -> None:
        # select + os.read rather than readline, so `_reader_idle` says truthfully
        # whether everything read so far has been filed (see _drain_logs).
        fd = stream.fileno()
        lines = LineSplitter(self.log)
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
                chunk = os.read(fd, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                lines.close()
                self._reader_idle.set()
                return
            lines.feed(chunk)

    def _watch_memory(self, proc: subprocess.Popen[bytes]) -> None:
        limit_kb = self.function.memory_mb * 1024
        while proc.poll() is None:
            rss = _tree_rss_kb(proc.pid)
            self._peak_kb = max(self._peak_kb, rss)
            if rss > limit_kb:
                self._oom = True
                self._kill_group(proc)
                return
            time.sleep(_WATCH_INTERVAL_S)

    def _drain_logs(self) -> None:
        # The runtime writes its output before it posts the result, so it is in
        # the pipe already: wait until the reader has read and filed all of it.
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if self._reader is None or not self._reader.is_alive():
                return  # the reader saw end-of-file and filed everything
            try:
                ready, _, _ = select.select([proc.stdout.fileno()], [], [], 0)
            except (OSError, ValueError):
                return
            if not ready and self._reader_idle.is_set():
                return
            time.sleep(0.002)

    def peak_memory_mb(self) -> int:
        if self.cgroup is not None:
            peak_kb = self.cgroup.peak_bytes() // 1024
        else:
            if self._proc is not None and self._proc.poll() is None:
                self._peak_kb = max(self._peak_kb, _tree_rss_kb(self._proc.pid))
            peak_kb = self._peak_kb
        if self._oom:
            peak_kb = max(peak_kb, self.function.memory_mb * 1024)
        return max(1, -(-peak_kb // 1024))

    def exit_reason(self) -> str | None:
        proc = self._proc
        if proc is None:
            return None
        if self.cgroup is not None and not self._oom and self.cgroup.oom_kills() > self._oom_seen:
            # The kernel killed a process of the sandbox at MemorySize: Lambda ends the invocation.
            self._oom = True
            self._kill_group(proc)
        if self._oom:
            return "oom"
        code = proc.poll()
        if code is None:
            return None
        if code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit:{code}"

    def _freeze(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGSTOP)
                self._frozen = True
            except ProcessLookupError:
                pass

    def _thaw(self) -> None:
        if self._frozen and self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self._frozen = False

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stop_runtime(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._kill_group(proc)
        self._frozen = False
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self._reader is not None:
            self._reader.join(timeout=2)
        if proc.stdout is not None:
            proc.stdout.close()
        if self.cgroup is not None:
            self._oom_seen = self.cgroup.oom_kills()

    def _release(self) -> None:
        if self.cgroup is not None:
            self.cgroup.close()
        self.storage.close()
