"""Helpers for the ASL engine tests: a Lambda stand-in and a one-call runner."""

from __future__ import annotations

import threading
from typing import Any, Callable

from emulator.contracts.lambdas import LambdaFunctionError
from emulator.stepfunctions import ExecutionResult, StateMachine, VirtualClock

DOCS = "https://docs.aws.amazon.com/step-functions/latest/dg/"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


class FunctionTable:
    """Stands in for the Lambda service: calls Python functions, records calls, measures concurrency."""

    def __init__(self, **functions: Callable[[Any], Any]) -> None:
        self.functions = functions
        self.calls: list[tuple[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def invoke(self, name: str, payload: Any) -> Any:
        with self._lock:
            self.calls.append((name, payload))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.functions[name](payload)
        finally:
            with self._lock:
                self.in_flight -= 1


def fails_with(error_type: str, message: str = "boom") -> Callable[[Any], Any]:
    def fn(_payload: Any) -> Any:
        raise LambdaFunctionError(error_type, message)
    return fn


def run(states: dict[str, Any], input: Any = None, fns: FunctionTable | None = None, start: str | None = None,
        **top: Any) -> ExecutionResult:
    """Run a machine made of ``states`` (first state starts) on a virtual clock."""
    definition = {"StartAt": start or next(iter(states)), "States": states, **top}
    return StateMachine(definition).execute(input, invoker=fns or FunctionTable(), clock=VirtualClock())


def jsonata(states: dict[str, Any], input: Any = None, fns: FunctionTable | None = None, **top: Any) -> ExecutionResult:
    """Run a JSONata machine."""
    return run(states, input, fns, QueryLanguage="JSONata", **top)


def lambda_task(fn: str = "f", **fields: Any) -> dict[str, Any]:
    """A JSONPath lambda:invoke Task passing its whole input."""
    return {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": fn, "Payload.$": "$"}, **fields}
