"""What every Lambda backend shares: function configuration, invocation records, errors.

A *Lambda service* is anything with ``invoke(function_name, payload) -> result``
(:class:`LambdaInvoker`). The local process backend (``emulator.lambda_runtime``),
the Docker backend (``emulator.docker``) and boto3 against real AWS all fit it,
so the Step Functions engine drives any of them.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from emulator.contracts import aws
from emulator.contracts.errors import ConfigError


@dataclass(frozen=True)
class FunctionConfig:
    """One Lambda function as deployed: the same fields for every backend."""

    name: str
    handler: str  # "module.function", e.g. "worker.infer.handler"
    memory_mb: int = 128
    timeout_s: float = 3.0
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    ephemeral_storage_mb: int = aws.DEFAULT_EPHEMERAL_STORAGE_MB

    def __post_init__(self) -> None:
        if not (aws.MIN_MEMORY_MB <= self.memory_mb <= aws.MAX_MEMORY_MB):
            raise ConfigError(f"function {self.name}: MemorySize {self.memory_mb} MB is outside "
                              f"Lambda's {aws.MIN_MEMORY_MB}-{aws.MAX_MEMORY_MB} MB range")
        if not (0 < self.timeout_s <= aws.MAX_TIMEOUT_S):
            raise ConfigError(f"function {self.name}: Timeout {self.timeout_s} s must be in (0, {aws.MAX_TIMEOUT_S}]")
        if not (aws.MIN_EPHEMERAL_STORAGE_MB <= self.ephemeral_storage_mb <= aws.MAX_EPHEMERAL_STORAGE_MB):
            raise ConfigError(f"function {self.name}: EphemeralStorage {self.ephemeral_storage_mb} MB is outside "
                              f"Lambda's {aws.MIN_EPHEMERAL_STORAGE_MB}-{aws.MAX_EPHEMERAL_STORAGE_MB} MB range")
        if "." not in self.handler:
            raise ConfigError(f"function {self.name}: handler {self.handler!r} must look like 'module.function'")

    @property
    def vcpus(self) -> float:
        """The CPU share Lambda gives this memory size."""
        return aws.lambda_vcpus(self.memory_mb)


class LambdaFunctionError(Exception):
    """An invocation failed; ``error_type`` is what Step Functions matches in Retry/Catch.

    Handler exceptions carry the exception class name (as Lambda's Python
    runtime reports ``errorType``); platform failures use Lambda's names:
    ``Sandbox.Timedout``, ``Runtime.OutOfMemory``, ``Runtime.ExitError``,
    ``Lambda.TooManyRequestsException``, ``Lambda.ResourceNotFoundException``.
    """

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None,
                 payload: dict[str, Any] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.trace = trace or []
        self.payload = payload

    def to_payload(self) -> dict[str, Any]:
        """The JSON error body Lambda returns for a function error.

        ``payload`` when set: the body exactly as the runtime posted it (the
        Python runtime includes ``requestId``) or as the platform writes it.
        """
        if self.payload is not None:
            return self.payload
        return {"errorType": self.error_type, "errorMessage": self.message, "stackTrace": self.trace}


def platform_error(error_type: str, request_id: str, message: str) -> LambdaFunctionError:
    """An error the Lambda platform itself reports for an invocation (timeout, OOM, runtime exit).

    AWS returns these to the caller as ``{"errorType": ..., "errorMessage":
    "RequestId: <id> Error: <message>"}`` (no stack trace, no ``requestId`` key).
    """
    text = f"RequestId: {request_id} Error: {message}"
    return LambdaFunctionError(error_type, text, None, {"errorType": error_type, "errorMessage": text})


class LambdaInvoker(Protocol):
    """Anything that invokes a Lambda function synchronously (RequestResponse)."""

    def invoke(self, function_name: str, payload: Any) -> Any:
        """Run the function on ``payload``; return its result or raise LambdaFunctionError."""
        ...


def new_request_id() -> str:
    """A request id in Lambda's format (a UUID4)."""
    return str(uuid.uuid4())


@dataclass
class InvocationRecord:
    """One invocation as the run record stores it (times are epoch seconds)."""

    function: str
    request_id: str
    start: float
    end: float
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None
    status: str  # "success" | "error" | "timeout"
    error_type: str | None = None
    log_group: str = ""
    log_stream: str = ""
    init_phase: str | None = None  # how INIT went when this invocation needed one: see InitOutcome

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InvocationRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
