"""``LambdaService``: synchronous Invoke over a pool of execution environments.

What it does per invocation, as Lambda does:
1. admission: reserved concurrency of the function, else the account's
   unreserved pool; over the limit -> ``Lambda.TooManyRequestsException``;
2. an idle warm environment of that function (not past the idle expiry), or
   a new one (cold start: INIT is timed and reported as ``Init Duration``;
   a failed or over-10-s INIT is logged ``INIT_REPORT`` and re-run inside the
   invocation, see ``environment``);
3. the invocation under the function's timeout;
4. ``START`` / ``END`` / ``REPORT`` lines in the environment's log stream and
   an :class:`~emulator.contracts.lambdas.InvocationRecord`.

Billing: ``Billed Duration`` includes INIT (on-demand functions, since
2025-08-01); a failed INIT phase is billed with the invocation that follows it
(AWS bills INIT since then; how it bills a *failed* INIT phase is not stated in
its documentation: this is the twin's choice, see docs/emulator-vs-aws.md).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from emulator.contracts.cloudwatch import ReportLine, billed_duration_ms, end_line, report_line
from emulator.contracts.lambdas import FunctionConfig, InvocationRecord, LambdaFunctionError, new_request_id
from emulator.lambda_runtime.environment import ExecutionEnvironment, InvokeOutcome, ProcessEnvironment

EnvironmentFactory = Callable[[FunctionConfig], ExecutionEnvironment]

DEFAULT_ACCOUNT_CONCURRENCY = 1000
DEFAULT_IDLE_EXPIRY_S = 300.0


@dataclass(frozen=True)
class CompletedInvocation:
    """An invocation that ran: its record, its result or error, and its log lines."""

    record: InvocationRecord
    payload: Any
    error: LambdaFunctionError | None
    log_lines: list[str]


def _resolve_name(function_name: str) -> str:
    # FunctionName may be a name, a partial ARN (123:function:name) or a full ARN,
    # optionally with a :$LATEST / alias qualifier.
    if ":function:" in function_name:
        rest = function_name.split(":function:", 1)[1]
        return rest.split(":", 1)[0]
    return function_name


class LambdaService:
    """Invoke functions synchronously; thread-safe (the Map calls it from many threads).

    Args:
        functions: the deployed functions.
        environment_factory: makes a new environment for a function (cold start);
            ``ProcessEnvironment`` by default.
        account_concurrency: the account's concurrent executions limit.
        idle_expiry_s: an idle environment older than this is shut down, not reused.
        on_record: called with each finished InvocationRecord (progress displays).
    """

    def __init__(
        self,
        functions: Iterable[FunctionConfig],
        *,
        environment_factory: EnvironmentFactory = ProcessEnvironment,
        account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
        idle_expiry_s: float = DEFAULT_IDLE_EXPIRY_S,
        on_record: Callable[[InvocationRecord], None] | None = None,
    ) -> None:
        self.functions = {fn.name: fn for fn in functions}
        reserved = sum(fn.reserved_concurrency or 0 for fn in self.functions.values())
        if reserved > account_concurrency:
            raise ValueError(f"reserved concurrency ({reserved}) exceeds the account limit ({account_concurrency})")
        self.account_concurrency = account_concurrency
        self.idle_expiry_s = idle_expiry_s
        self._factory = environment_factory
        self._on_record = on_record
        self._lock = threading.Lock()
        self._idle: dict[str, list[ExecutionEnvironment]] = defaultdict(list)
        self._busy: set[ExecutionEnvironment] = set()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._unreserved_in_flight = 0
        self._unreserved_limit = account_concurrency - reserved
        self.records: list[InvocationRecord] = []
        self.log_streams: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.peak_concurrency = 0
        self.platform_notes: dict[str, str] = {}  # what the backend could not enforce ("cpu", "memory", "tmp")
        self._closed = False

    # -- admission ------------------------------------------------------------
    def _admit(self, fn: FunctionConfig) -> None:
        with self._lock:
            if self._closed:
                raise LambdaFunctionError("Lambda.ServiceException", "the Lambda service is shut down")
            if fn.reserved_concurrency is not None:
                if self._in_flight[fn.name] >= fn.reserved_concurrency:
                    raise LambdaFunctionError(
                        "Lambda.TooManyRequestsException",
                        f"Rate Exceeded: {fn.name} is at its reserved concurrency ({fn.reserved_concurrency})",
                    )
            elif self._unreserved_in_flight >= self._unreserved_limit:
                raise LambdaFunctionError(
                    "Lambda.TooManyRequestsException",
                    f"Rate Exceeded: the account's unreserved concurrency ({self._unreserved_limit}) is in use",
                )
            else:
                self._unreserved_in_flight += 1
            self._in_flight[fn.name] += 1
            self.peak_concurrency = max(self.peak_concurrency, sum(self._in_flight.values()))

    def _release(self, fn: FunctionConfig) -> None:
        with self._lock:
            self._in_flight[fn.name] -= 1
            if fn.reserved_concurrency is None:
                self._unreserved_in_flight -= 1

    def _take_warm(self, fn: FunctionConfig) -> ExecutionEnvironment | None:
        now = time.monotonic()
        expired: list[ExecutionEnvironment] = []
        env = None
        with self._lock:
            idle = self._idle[fn.name]
            while idle:
                candidate = idle.pop()  # most recently used first, as Lambda tends to
                if now - candidate.last_used > self.idle_expiry_s or not candidate.healthy():
                    expired.append(candidate)
                    continue
                env = candidate
                break
            if env is not None:
                self._busy.add(env)
        for old in expired:
            self._retire(old)
        return env

    def _retire(self, env: ExecutionEnvironment) -> None:
        env.shutdown()
        self._file_lines(env)

    def _file_lines(self, env: ExecutionEnvironment) -> list[str]:
        lines = env.take_log_lines()
        if lines:
            with self._lock:
                self.log_streams[(env.log_group, env.log_stream)].extend(lines)
        return lines

    # -- invoke -----------------------------------------------------------------
    def invoke(self, function_name: str, payload: Any) -> Any:
        """Invoke a function synchronously; returns its result.

        Raises:
            LambdaFunctionError: function error, timeout, OOM, throttle or unknown function.
        """
        done = self.invoke_with_record(function_name, payload)
        if done.error is not None:
            raise done.error
        return done.payload

    def invoke_with_record(self, function_name: str, payload: Any, *, client_context: str | None = None,
                           cognito_identity: str | None = None) -> "CompletedInvocation":
        """Invoke and return the result or error with its record and log lines.

        ``client_context`` / ``cognito_identity``: JSON the runtime gets in the
        ``Lambda-Runtime-Client-Context`` / ``-Cognito-Identity`` headers.

        Raises:
            LambdaFunctionError: only for errors before the function runs
                (unknown function, throttling).
        """
        name = _resolve_name(function_name)
        fn = self.functions.get(name)
        if fn is None:
            raise LambdaFunctionError(
                "Lambda.ResourceNotFoundException",
                f"Function not found: {name} (deployed: {', '.join(sorted(self.functions)) or 'none'})",
            )
        self._admit(fn)
        try:
            return self._invoke_admitted(fn, payload, client_context, cognito_identity)
        finally:
            self._release(fn)

    def _invoke_admitted(self, fn: FunctionConfig, payload: Any, client_context: str | None,
                         cognito_identity: str | None) -> "CompletedInvocation":
        request_id = new_request_id()
        start_wall = time.time()
        env = self._take_warm(fn)
        init_ms = billed_init_ms = None
        if env is None:
            env = self._factory(fn)
            with self._lock:
                self._busy.add(env)
                for key, note in env.notes.items():
                    self.platform_notes.setdefault(key, note)
            init = env.init()
            if init.status == "success":
                init_ms = init.duration_ms
            else:
                billed_init_ms = init.duration_ms  # INIT_REPORT logged; INIT re-runs inside this invocation
        outcome = env.invoke(request_id, payload, client_context=client_context, cognito_identity=cognito_identity)
        return self._finish(fn, env, request_id, start_wall, outcome, init_ms, billed_init_ms)

    def _finish(self, fn: FunctionConfig, env: ExecutionEnvironment, request_id: str, start_wall: float,
                outcome: InvokeOutcome, init_ms: float | None, failed_init_ms: float | None = None) -> "CompletedInvocation":
        status = None if outcome.status == "success" else outcome.status
        error_type = (outcome.report_error_type or outcome.error.error_type) if outcome.error and outcome.status == "error" else None
        if status == "error" and not outcome.platform_failure:
            status, error_type = None, None  # a handled function error is not a platform status on the REPORT line
        report = ReportLine(
            request_id=request_id,
            duration_ms=outcome.duration_ms,
            billed_duration_ms=billed_duration_ms(outcome.duration_ms, init_ms if init_ms is not None else failed_init_ms),
            memory_size_mb=fn.memory_mb,
            max_memory_used_mb=outcome.max_memory_used_mb,
            init_duration_ms=init_ms,
            status=status,
            error_type=error_type,
        )
        env.log(end_line(request_id))
        env.log(report_line(report))
        record = InvocationRecord(
            function=fn.name,
            request_id=request_id,
            start=start_wall,
            end=time.time(),
            duration_ms=round(outcome.duration_ms, 2),
            billed_duration_ms=report.billed_duration_ms,
            memory_size_mb=fn.memory_mb,
            max_memory_used_mb=outcome.max_memory_used_mb,
            init_duration_ms=round(init_ms, 2) if init_ms is not None else None,
            status=outcome.status,
            error_type=(outcome.report_error_type or outcome.error.error_type) if outcome.error else None,
            log_group=env.log_group,
            log_stream=env.log_stream,
            init_phase=outcome.init_phase,
        )
        lines = self._file_lines(env)
        reusable = env.healthy()  # a timed-out or crashed environment was reset: INIT re-runs on its next use
        with self._lock:
            self.records.append(record)
            self._busy.discard(env)
            if reusable and not self._closed:
                self._idle[fn.name].append(env)
        if not reusable or self._closed:
            self._retire(env)
        if self._on_record is not None:
            self._on_record(record)
        return CompletedInvocation(record, outcome.payload, outcome.error, lines)

    def set_function(self, name: str, fn: FunctionConfig | None) -> None:
        """Deploy or replace (``fn``) or delete (None) a function.

        Idle environments of ``name`` are retired, so the next invocation is a cold
        start with the new code and configuration (busy ones finish on the old).
        """
        with self._lock:
            if fn is None:
                self.functions.pop(name, None)
            else:
                self.functions[name] = fn
            reserved = sum(f.reserved_concurrency or 0 for f in self.functions.values())
            self._unreserved_limit = self.account_concurrency - reserved
            stale = self._idle.pop(name, [])
        for env in stale:
            self._retire(env)

    def shutdown(self) -> None:
        """Stop every environment (idle ones now; busy ones are killed too)."""
        with self._lock:
            self._closed = True
            envs = [env for pool in self._idle.values() for env in pool] + list(self._busy)
            self._idle.clear()
        for env in envs:
            self._retire(env)

    def __enter__(self) -> "LambdaService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
