"""The interpreter: runs a validated definition against a Lambda invoker."""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from emulator.contracts import aws
from emulator.contracts.aws import function_name_of
from emulator.contracts.lambdas import LambdaFunctionError, LambdaInvoker
from emulator.stepfunctions import errors as E
from emulator.stepfunctions.choice import evaluate_rule
from emulator.stepfunctions.clock import RealClock
from emulator.stepfunctions.definition import LAMBDA_INVOKE, validate_machine
from emulator.stepfunctions.history import History, as_json
from emulator.stepfunctions.retry import RetryCounter, find_catcher, retriers_of
from emulator.stepfunctions.paths import apply_input_path, apply_result_path, evaluate, resolve_template

_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


@dataclass
class ExecutionResult:
    """What an execution ended with, plus its history and map runs."""

    name: str
    execution_arn: str
    status: str  # SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start: float = 0.0
    stop: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    map_runs: list[dict[str, Any]] = field(default_factory=list)


def substitute(text: str, substitutions: dict[str, str]) -> str:
    """Replace ``${Name}`` placeholders; every placeholder must have a value.

    Raises:
        DefinitionError: naming the placeholders that have none.
    """
    missing = sorted({m for m in _SUBSTITUTION.findall(text) if m not in substitutions})
    if missing:
        raise E.DefinitionError(f"definition substitutions missing for: {', '.join(missing)}")
    return _SUBSTITUTION.sub(lambda m: substitutions[m.group(1)], text)


class StateMachine:
    """A validated definition, ready to run any number of executions.

    Args:
        definition: the ASL document (dict or JSON text).
        substitutions: values for ``${Name}`` placeholders.
        name: the state machine's name (in ARNs).

    Raises:
        DefinitionError: the definition is invalid or unsupported.
    """

    def __init__(self, definition: dict[str, Any] | str, substitutions: dict[str, str] | None = None,
                 name: str = "lambdatwin") -> None:
        text = definition if isinstance(definition, str) else json.dumps(definition)
        text = substitute(text, substitutions or {})
        try:
            self.definition = json.loads(text)
        except json.JSONDecodeError as exc:
            raise E.DefinitionError(f"the definition is not valid JSON: {exc}") from exc
        validate_machine(self.definition)
        self.name = name
        self.arn = aws.state_machine_arn(name)

    def execute(self, input: Any, *, invoker: LambdaInvoker, s3_client: Any = None, name: str | None = None,
                on_event: Callable[[dict[str, Any]], None] | None = None, clock: Any = None,
                rng: random.Random | None = None, stop: threading.Event | None = None,
                arn: str | None = None) -> ExecutionResult:
        """Run one execution to its end and return the result (never raises for runtime errors).

        Setting ``stop`` (StopExecution) ends it as ABORTED; ``arn`` overrides the
        execution ARN (an Express execution's ``...:express:...`` ARN).
        """
        execution = Execution(self, input, invoker=invoker, s3_client=s3_client, name=name or str(uuid.uuid4()),
                              history=History(on_event, clock), clock=clock or RealClock(), rng=rng or random.Random(),
                              stop=stop, arn=arn)
        return execution.run()


class Execution:
    """One execution (or a Distributed Map child execution, which has its own history)."""

    def __init__(self, machine: StateMachine, input: Any, *, invoker: LambdaInvoker, s3_client: Any, name: str,
                 history: History, clock: Any, rng: random.Random, stop: threading.Event | None = None,
                 arn: str | None = None, definition: dict[str, Any] | None = None) -> None:
        self.machine = machine
        self.input = input
        self.invoker = invoker
        self.s3 = s3_client
        self.name = name
        self.arn = arn or aws.execution_arn(machine.name, name)
        self.history = history
        self.clock = clock
        self.rng = rng
        self.stop = stop or threading.Event()
        self.definition = definition or machine.definition
        self.start_time = clock.now()
        self.deadline: float | None = None
        self.map_runs: list[dict[str, Any]] = []
        self._map_lock = threading.Lock()

    # -- top level ------------------------------------------------------------
    def run(self) -> ExecutionResult:
        """Run to completion, honouring the machine-level TimeoutSeconds."""
        self.history.add("ExecutionStarted", {"input": as_json(self.input), "roleArn": aws.role_arn("lambdatwin")})
        timeout = self.definition.get("TimeoutSeconds")
        if timeout:
            self.deadline = self.start_time + timeout
        outcome: dict[str, Any] = {}

        def body() -> None:
            try:
                outcome["output"] = self.run_machine(self.definition, self.input)
            except E.StatesError as exc:
                outcome["error"] = exc
            except E.ExecutionStopped as exc:
                outcome["stopped"] = str(exc)

        worker = threading.Thread(target=body, name=f"execution-{self.name}", daemon=True)
        worker.start()
        worker.join(timeout if timeout and isinstance(self.clock, RealClock) else None)
        result = ExecutionResult(self.name, self.arn, "SUCCEEDED", start=self.start_time)
        if worker.is_alive() or outcome.get("stopped") == "timeout":
            self.stop.set()  # running states unwind at their next step
            result.status, result.error = "TIMED_OUT", E.TIMEOUT
            result.cause = f"The execution ran longer than its TimeoutSeconds ({timeout} s)"
            self.history.add("ExecutionTimedOut", {"error": result.error, "cause": result.cause})
        elif "error" in outcome:
            exc = outcome["error"]
            result.status, result.error, result.cause = "FAILED", exc.error, exc.cause
            self.history.add("ExecutionFailed", {"error": exc.error, "cause": exc.cause})
        elif "stopped" in outcome:
            result.status = "ABORTED"
            self.history.add("ExecutionAborted", {})
        else:
            result.output = outcome["output"]
            self.history.add("ExecutionSucceeded", {"output": as_json(result.output)})
        result.stop = self.clock.now()
        result.history = list(self.history.events)
        result.map_runs = list(self.map_runs)
        return result

    def check_running(self) -> None:
        """Unwind when the execution was stopped or ran past its deadline."""
        if self.stop.is_set():
            raise E.ExecutionStopped("stopped")
        if self.deadline is not None and self.clock.now() > self.deadline:
            raise E.ExecutionStopped("timeout")

    def context(self, state_name: str, entered: float, retry_count: int = 0, item: dict | None = None) -> dict[str, Any]:
        """The context object (``$$``)."""
        ctx: dict[str, Any] = {
            "Execution": {"Id": self.arn, "Name": self.name, "Input": self.input,
                          "StartTime": _iso(self.start_time), "RoleArn": aws.role_arn("lambdatwin")},
            "State": {"Name": state_name, "EnteredTime": _iso(entered), "RetryCount": retry_count},
            "StateMachine": {"Id": self.machine.arn, "Name": self.machine.name},
        }
        if item is not None:
            ctx["Map"] = {"Item": item}
        return ctx

    # -- interpretation ---------------------------------------------------------
    def run_machine(self, machine: dict[str, Any], data: Any, item: dict | None = None) -> Any:
        """Run a (sub-)machine from StartAt to a terminal state; returns its output."""
        name = machine["StartAt"]
        states = machine["States"]
        while True:
            self.check_running()
            state = states[name]
            data, name = self.run_state(name, state, data, item)
            if name is None:
                return data

    def run_state(self, name: str, state: dict[str, Any], raw: Any, item: dict | None) -> tuple[Any, str | None]:
        """Run one state; returns (output, next state name or None at the end)."""
        kind = state["Type"]
        entered = self.clock.now()
        self.history.add(f"{kind}StateEntered", {"name": name, "input": as_json(raw)})
        if kind == "Fail":
            self._fail(state, raw)
        nxt = None if state.get("End") else state.get("Next")
        try:
            if kind in ("Task", "Parallel", "Map"):
                output, nxt = self._with_retry_catch(name, state, raw, item, entered, nxt)
            else:
                output, nxt = self._run_simple(name, kind, state, raw, item, entered, nxt)
        except E.StatesError:
            raise
        self.history.add(f"{kind}StateExited", {"name": name, "output": as_json(output)})
        return output, nxt

    def _run_simple(self, name: str, kind: str, state: dict, raw: Any, item: dict | None, entered: float,
                    nxt: str | None) -> tuple[Any, str | None]:
        ctx = self.context(name, entered, item=item)
        data = apply_input_path(state.get("InputPath", "$"), raw, ctx)
        if kind == "Pass":
            if "Parameters" in state:
                data = resolve_template(state["Parameters"], data, ctx)
            result = state["Result"] if "Result" in state else data
            output = apply_result_path(state.get("ResultPath", "$"), raw, result)
        elif kind == "Choice":
            nxt = next((rule["Next"] for rule in state["Choices"] if evaluate_rule(rule, data, ctx)), state.get("Default"))
            if nxt is None:
                raise E.StatesError(E.NO_CHOICE, f"No Choice rule matched in state {name!r} and it has no Default")
            output = data
        elif kind == "Wait":
            self._wait(name, state, data, ctx)
            output = data
        else:  # Succeed
            output, nxt = data, None
        return apply_input_path(state.get("OutputPath", "$"), output, ctx), nxt

    def _wait(self, name: str, state: dict, data: Any, ctx: dict) -> None:
        if "Seconds" in state or "SecondsPath" in state:
            seconds = state.get("Seconds", None)
            if seconds is None:
                seconds = evaluate(state["SecondsPath"], data, ctx)
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
                raise E.StatesError(E.RUNTIME, f"state {name!r}: wait seconds must be a non-negative number, got {seconds!r}")
        else:
            stamp = state.get("Timestamp") or evaluate(state["TimestampPath"], data, ctx)
            try:
                until = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
            except ValueError as exc:
                raise E.StatesError(E.RUNTIME, f"state {name!r}: {stamp!r} is not an ISO 8601 timestamp") from exc
            seconds = max(0.0, until - self.clock.now())
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        if self.deadline is not None:
            seconds = min(seconds, max(0.0, self.deadline - self.clock.now()) + 0.001)
        if self.clock.sleep(seconds, self.stop):
            raise E.ExecutionStopped("stopped")
        self.check_running()

    def _fail(self, state: dict, raw: Any) -> None:
        error = state.get("Error") or (evaluate(state["ErrorPath"], raw) if "ErrorPath" in state else "States.Failed")
        cause = state.get("Cause") or (evaluate(state["CausePath"], raw) if "CausePath" in state else "")
        raise E.StatesError(str(error), cause if isinstance(cause, str) else json.dumps(cause))

    # -- Retry and Catch ------------------------------------------------------------
    def _with_retry_catch(self, name: str, state: dict, raw: Any, item: dict | None, entered: float,
                          nxt: str | None) -> tuple[Any, str | None]:
        counter = RetryCounter(retriers_of(state))
        while True:
            try:
                ctx = self.context(name, entered, counter.total, item)
                return self._run_once(name, state, raw, ctx), nxt
            except E.StatesError as exc:
                delay = counter.next_delay(exc.error, self.rng)
                if delay is not None:
                    self._sleep(delay)
                    continue
                catcher = find_catcher(state, exc.error)
                if catcher is not None:
                    output = apply_result_path(catcher.get("ResultPath", "$"), raw,
                                               {"Error": exc.error, "Cause": exc.cause})
                    return output, catcher["Next"]
                raise

    def _run_once(self, name: str, state: dict, raw: Any, ctx: dict) -> Any:
        data = apply_input_path(state.get("InputPath", "$"), raw, ctx)
        kind = state["Type"]
        if kind == "Task":
            result = self._task(name, state, data, ctx)
        elif kind == "Parallel":
            result = self._parallel(name, state, data, ctx)
        else:
            from emulator.stepfunctions.map_state import run_map

            result = run_map(self, name, state, data, ctx)
        if "ResultSelector" in state:
            result = resolve_template(state["ResultSelector"], result, ctx)
        output = apply_result_path(state.get("ResultPath", "$"), raw, result)
        return apply_input_path(state.get("OutputPath", "$"), output, ctx)

    # -- Task ------------------------------------------------------------------------
    def _task(self, name: str, state: dict, data: Any, ctx: dict) -> Any:
        params = resolve_template(state["Parameters"], data, ctx) if "Parameters" in state else data
        resource = state["Resource"]
        if resource == LAMBDA_INVOKE:
            function = function_name_of(str(params.get("FunctionName", "")))
            payload = params.get("Payload", data)
            self.history.add("TaskScheduled", {"resourceType": "lambda", "resource": "invoke",
                                               "region": aws.REGION, "parameters": as_json(params)})
            self.history.add("TaskStarted", {"resourceType": "lambda", "resource": "invoke"})
        else:
            function, payload = function_name_of(resource), params
            self.history.add("LambdaFunctionScheduled", {"resource": resource, "input": as_json(payload)})
            self.history.add("LambdaFunctionStarted")
        timeout = state.get("TimeoutSeconds")
        if "TimeoutSecondsPath" in state:
            timeout = evaluate(state["TimeoutSecondsPath"], data, ctx)
        try:
            output = self._invoke(function, payload, timeout)
        except E.StatesError as exc:
            prefix = "Task" if resource == LAMBDA_INVOKE else "LambdaFunction"
            kind = "TimedOut" if exc.error == E.TIMEOUT else "Failed"
            self.history.add(f"{prefix}{kind}", {"error": exc.error, "cause": exc.cause, "resourceType": "lambda"})
            raise
        if resource == LAMBDA_INVOKE:
            self.history.add("TaskSucceeded", {"resourceType": "lambda", "resource": "invoke", "output": as_json(output)})
            return {"ExecutedVersion": "$LATEST", "Payload": output, "StatusCode": 200,
                    "SdkHttpMetadata": {"httpStatusCode": 200}, "SdkResponseMetadata": {"requestId": str(uuid.uuid4())}}
        self.history.add("LambdaFunctionSucceeded", {"output": as_json(output)})
        return output

    def _invoke(self, function: str, payload: Any, timeout: float | None) -> Any:
        """Call the invoker; a Task TimeoutSeconds abandons the call as Step Functions does."""
        def call() -> Any:
            try:
                return self.invoker.invoke(function, payload)
            except LambdaFunctionError as exc:
                raise E.StatesError(exc.error_type, json.dumps(exc.to_payload())) from exc

        if not timeout:
            return call()
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = call()
            except E.StatesError as exc:
                box["error"] = exc

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise E.StatesError(E.TIMEOUT, f"the task ran longer than its TimeoutSeconds ({timeout} s)")
        if "error" in box:
            raise box["error"]
        return box["value"]

    # -- Parallel ----------------------------------------------------------------------
    def _parallel(self, name: str, state: dict, data: Any, ctx: dict) -> list[Any]:
        branch_input = resolve_template(state["Parameters"], data, ctx) if "Parameters" in state else data
        self.history.add("ParallelStateStarted")
        results: list[Any] = [None] * len(state["Branches"])
        failures: list[E.StatesError] = []
        stopped: list[E.ExecutionStopped] = []

        def run(i: int, branch: dict) -> None:
            try:
                results[i] = self.run_machine(branch, branch_input)
            except E.StatesError as exc:
                failures.append(exc)
            except E.ExecutionStopped as exc:
                stopped.append(exc)

        threads = [threading.Thread(target=run, args=(i, b), daemon=True) for i, b in enumerate(state["Branches"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if stopped:
            raise stopped[0]
        if failures:
            self.history.add("ParallelStateFailed", {"error": failures[0].error, "cause": failures[0].cause})
            raise failures[0]
        self.history.add("ParallelStateSucceeded")
        return results


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")
