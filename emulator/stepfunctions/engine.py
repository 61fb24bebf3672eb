"""The interpreter: runs a validated definition against a Lambda invoker.

Each state is entered, run by its type's runner (``registry.STATE_TYPES``) through the
query language's data flow, retried and caught per ``retry.py``
(https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html), and
exited; the execution implements ``port.ExecutionPort`` for the runners.
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from emulator.contracts import aws
from emulator.contracts.lambdas import LambdaInvoker
import emulator.stepfunctions.errors as E
from emulator.stepfunctions.clock import RealClock
from emulator.stepfunctions.dataflow import (JSONPATH, LANGUAGES, MAX_EXECUTION_VARIABLE_BYTES, check_assignments,
                                             check_payload)
from emulator.stepfunctions.definition import validate_machine
from emulator.stepfunctions.history import History, as_json
from emulator.stepfunctions.port import ExecutionResult, Step
from emulator.stepfunctions.registry import STATE_TYPES
from emulator.stepfunctions.retry import RetryCounter, find_catcher, retriers_of
from emulator.stepfunctions.variables import Scope

_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


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
        validate_machine(self.definition, STATE_TYPES)
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
                              history=History(on_event, clock, aws.MAX_HISTORY_EVENTS), clock=clock or RealClock(),
                              rng=rng or random.Random(), stop=stop, arn=arn)
        return execution.run()


class Execution:
    """One execution (or a Distributed Map child execution, which has its own history).

    Implements ``port.ExecutionPort``.
    """

    def __init__(self, machine: StateMachine, input: Any, *, invoker: LambdaInvoker, s3_client: Any, name: str,
                 history: History, clock: Any, rng: random.Random, stop: threading.Event | None = None,
                 arn: str | None = None, definition: dict[str, Any] | None = None) -> None:
        self.machine = machine
        self.machine_name = machine.name
        self.machine_arn = machine.arn
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
        self._last_output = threading.local()  # per thread: the JSON text of the last state output

    # -- top level ------------------------------------------------------------
    def run(self) -> ExecutionResult:
        """Run to completion, honouring the machine-level TimeoutSeconds."""
        self.history.add("ExecutionStarted", {"input": as_json(self.input), "inputDetails": {"truncated": False},
                                              "roleArn": aws.role_arn("lambdatwin")}, advance=False)
        timeout = self.definition.get("TimeoutSeconds")
        if timeout:
            self.deadline = self.start_time + timeout
        outcome: dict[str, Any] = {}

        def body() -> None:
            try:
                check_payload(self.input, self.name, "The execution input has a size exceeding the maximum number of "
                                                     "bytes service limit.")
                outcome["output"] = self.run_machine(self.definition, self.input)
            except E.StatesError as exc:
                outcome["error"] = exc
            except E.ExecutionStopped as exc:
                outcome["stopped"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - an engine defect must fail the execution, not the caller
                outcome["error"] = E.StatesError(E.RUNTIME, f"internal error in the ASL engine: {type(exc).__name__}: {exc}")

        worker = threading.Thread(target=body, name=f"execution-{self.name}", daemon=True)
        worker.start()
        worker.join(timeout if timeout and isinstance(self.clock, RealClock) else None)
        result = ExecutionResult(self.name, self.arn, "SUCCEEDED", start=self.start_time)
        if worker.is_alive() or outcome.get("stopped") == "timeout":
            self.stop.set()  # running states unwind at their next step
            result.status, result.error = "TIMED_OUT", E.TIMEOUT
            self.history.add("ExecutionTimedOut", {"error": result.error}, final=True)
        elif "error" in outcome:
            exc = outcome["error"]
            result.status, result.error, result.cause = "FAILED", exc.error, exc.cause
            self.history.add("ExecutionFailed", _error_details(exc), final=True)
        elif "stopped" in outcome:
            result.status = "ABORTED"
            self.history.add("ExecutionAborted", {}, final=True)
        else:
            result.output = outcome["output"]
            self.history.add("ExecutionSucceeded", {"output": as_json(result.output), "outputDetails": {"truncated": False}},
                             final=True)
        result.stop = self.clock.now()
        result.history = list(self.history.events)
        result.map_runs = list(self.map_runs)
        return result

    # -- ExecutionPort ------------------------------------------------------------
    def check_running(self) -> None:
        """Unwind when the execution was stopped or ran past its deadline."""
        if self.stop.is_set():
            raise E.ExecutionStopped("stopped")
        if self.deadline is not None and self.clock.now() > self.deadline:
            raise E.ExecutionStopped("timeout")

    def sleep(self, seconds: float) -> None:
        """Sleep on the clock, no further than the deadline; unwind if stopped meanwhile."""
        if self.deadline is not None:
            seconds = min(seconds, max(0.0, self.deadline - self.clock.now()) + 0.001)
        if self.clock.sleep(seconds, self.stop):
            raise E.ExecutionStopped("stopped")
        self.check_running()

    def record_map_run(self, record: dict[str, Any]) -> None:
        """Keep a Map Run's record for ``ExecutionResult.map_runs``."""
        with self._map_lock:
            self.map_runs.append(record)

    def spawn_child(self, machine: dict[str, Any], data: Any, *, name: str, arn: str, item: dict[str, Any],
                    parent: Step | None = None, max_duration_s: float | None = None) -> ExecutionResult:
        """Run a Distributed Map child execution with its own history and no outer variables.

        ``max_duration_s`` bounds the child (an EXPRESS child's 5 minutes): past it the child
        ends TIMED_OUT (``States.Timeout``). When the parent stops or passes its own deadline
        the child records ExecutionAborted and ends ABORTED; the caller then unwinds (raises
        ExecutionStopped) after its own bookkeeping.
        """
        child = Execution(self.machine, data, invoker=self.invoker, s3_client=self.s3, name=name,
                          history=History(clock=self.clock, max_events=aws.MAX_HISTORY_EVENTS), clock=self.clock,
                          rng=self.rng, stop=self.stop, definition=machine, arn=arn)
        start = self.clock.now()
        child.deadline = self.deadline
        if max_duration_s is not None:
            own = start + max_duration_s
            child.deadline = own if child.deadline is None else min(child.deadline, own)
        run = ExecutionResult(name, arn, "SUCCEEDED", start=start, history=child.history.events)
        child.history.add("ExecutionStarted", {"input": as_json(data), "inputDetails": {"truncated": False}}, advance=False)
        try:
            run.output = child._run_states(machine, data, item, Scope(), self.machine_language())
            child.history.add("ExecutionSucceeded", {"output": as_json(run.output), "outputDetails": {"truncated": False}},
                                  final=True)
        except E.StatesError as exc:
            child.history.add("ExecutionFailed", _error_details(exc), final=True)
            run.status, run.error, run.cause = "FAILED", exc.error, exc.cause
        except E.ExecutionStopped:
            parent_over = self.deadline is not None and self.clock.now() > self.deadline
            if self.stop.is_set() or parent_over or max_duration_s is None:
                child.history.add("ExecutionAborted", {}, final=True)
                run.status = "ABORTED"
                return run
            child.history.add("ExecutionTimedOut", {"error": E.TIMEOUT}, final=True)
            run.status, run.error, run.cause = "TIMED_OUT", E.TIMEOUT, None
        finally:
            run.stop = self.clock.now()
        return run

    def context(self, state_name: str, entered: float, retry_count: int = 0, item: dict | None = None) -> dict[str, Any]:
        """The context object (``$$``)."""
        ctx: dict[str, Any] = {
            "Execution": {"Id": self.arn, "Name": self.name, "Input": self.input, "StartTime": _iso(self.start_time),
                          "RoleArn": aws.role_arn("lambdatwin"), "RedriveCount": 0},
            "State": {"Name": state_name, "EnteredTime": _iso(entered), "RetryCount": retry_count},
            "StateMachine": {"Id": self.machine.arn, "Name": self.machine.name},
        }
        if item is not None:
            ctx["Map"] = {"Item": item}
        return ctx

    # -- interpretation ---------------------------------------------------------
    def run_machine(self, machine: dict[str, Any], data: Any, item: dict | None = None,
                    parent: Step | None = None, cancel: threading.Event | None = None) -> Any:
        """Run a (sub-)machine from StartAt to a terminal state, in an inner variable scope; returns its output."""
        scope = parent.variables.child() if parent is not None else Scope()
        return self._run_states(machine, data, item, scope, self.machine_language(), cancel)

    def machine_language(self) -> str:
        """The state machine's QueryLanguage, which every state without its own inherits, also
        inside Parallel branches and Map processors (not the enclosing state's language)."""
        return self.machine.definition.get("QueryLanguage", JSONPATH)

    def _run_states(self, machine: dict[str, Any], data: Any, item: dict | None, scope: Scope, language: str,
                    cancel: threading.Event | None = None) -> Any:
        name = machine["StartAt"]
        states = machine["States"]
        text: str | None = None  # the JSON of ``data`` when the previous state already made it
        while True:
            self.check_running()
            if cancel is not None and cancel.is_set():
                raise E.BranchStopped(name)
            data, name = self.run_state(name, states[name], data, item, scope, language, text, nested=cancel is not None)
            text = self._last_output.text
            if name is None:
                return data

    def run_state(self, name: str, state: dict[str, Any], raw: Any, item: dict | None, variables: Scope,
                  language: str = JSONPATH, raw_text: str | None = None, nested: bool = False) -> tuple[Any, str | None]:
        """Run one state with its Retry and Catch; returns (output, next state name or None at the end).

        ``nested``: the state is in a Parallel branch or inline Map iteration."""
        kind = state["Type"]
        state_type = STATE_TYPES[kind]
        lang = LANGUAGES[state.get("QueryLanguage", language)]
        entered = self.clock.now()
        # One JSON text serves a state's StateExited and the next state's StateEntered (half the memory).
        entered_id = self.history.add(f"{kind}StateEntered", {"name": name,
                                                              "input": raw_text if raw_text is not None else as_json(raw),
                                                              "inputDetails": {"truncated": False}})
        counter = RetryCounter(retriers_of(state))
        nxt = None if state.get("End") else state.get("Next")
        while True:
            step = Step(name, state, raw, None, self.context(name, entered, counter.total, item), lang, variables, item)
            try:
                step.input = lang.effective_input(step)
                outcome = state_type.runner(self, step)
                if outcome.overrides:
                    step.state = {**state, **outcome.overrides}
                output = lang.shape(step, outcome.result, state_type.shapes_result)
                step.state = state
                assigned = lang.assignments(step, state.get("Assign"), outcome.result, state_type.shapes_result)
                assigned.update(lang.assignments(step, outcome.assign, outcome.result, state_type.shapes_result))
                check_payload(output, name)
                if outcome.chooses_next:
                    nxt = outcome.next
                break
            except E.StatesError as exc:
                innermost = not exc.located  # an inner state's error is recorded and located there
                E.locate(exc, name, entered_id)
                if exc.error == E.QUERY_EVALUATION_ERROR and innermost:
                    self.history.add("EvaluationFailed", {"state": name, **_error_details(exc),
                                                          **({"location": exc.location} if exc.location else {})})
                delay = counter.next_delay(exc.error, self.rng)
                if delay is not None:
                    self.sleep(delay)
                    continue
                if state_type.failed_event and exc.error != E.RUNTIME:
                    # States.Runtime fails the execution at once: no ParallelStateFailed/MapStateFailed.
                    # The event carries no details (the error is on the next Failed/Exited event).
                    self.history.add(state_type.failed_event)
                catcher = find_catcher(state, exc.error)
                if catcher is None:
                    if kind == "Task" and nested and exc.error != E.RUNTIME:
                        # A task whose failure ends its Parallel branch or Map iteration is aborted.
                        self.history.add("TaskStateAborted", advance=False)
                    raise
                error_output = {"Error": exc.error, "Cause": exc.cause}
                output = lang.caught(step, catcher, error_output)
                assigned = lang.caught_assignments(step, catcher, error_output)
                nxt = catcher["Next"]
                break
        check_assignments(assigned, name)
        variables.assign(assigned)
        if assigned and variables.total_size() > MAX_EXECUTION_VARIABLE_BYTES:
            raise E.StatesError(E.DATA_LIMIT_EXCEEDED, f"State {name!r}: the execution's variables exceed "
                                                       f"{MAX_EXECUTION_VARIABLE_BYTES} bytes")
        text = as_json(output)
        details: dict[str, Any] = {"name": name, "output": text, "outputDetails": {"truncated": False}}
        if assigned:  # as GetExecutionHistory shows them: each value as JSON text
            details["assignedVariables"] = {k: as_json(v) for k, v in assigned.items()}
            details["assignedVariablesDetails"] = {"truncated": False}
        self.history.add(f"{kind}StateExited", details)
        self._last_output.text = text
        return output, nxt


def _error_details(exc: E.StatesError) -> dict[str, Any]:
    return {k: v for k, v in (("error", exc.error), ("cause", exc.cause)) if v}


def _iso(ts: float) -> str:
    """A context-object timestamp: ISO 8601 in UTC with milliseconds (``2024-01-01T00:00:00.000Z``)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
