"""Runners of the flow states: Pass, Choice, Wait, Succeed, Fail.

Rules: https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html (``Result``, else
the ``Parameters`` output, else the input), state-choice.html (first matching rule wins, else
``Default``, else ``States.NoChoiceMatched``; the state's ``Assign`` always applies and a matched
rule's own ``Assign`` too; a matched JSONata rule's ``Output`` replaces the state's),
state-wait.html (``Seconds`` an integer from 0 to 99999999; ``Timestamp`` an RFC 3339 time with
``T`` and a zone, e.g. ``2016-03-14T01:59:00Z``), state-succeed.html, state-fail.html (``Error``
and ``Cause`` are optional: without them the execution fails with neither; ``ErrorPath`` and
``CausePath`` must resolve to strings).
"""

from __future__ import annotations

from typing import Any

from emulator.contracts import aws
import emulator.stepfunctions.errors as E
from emulator.stepfunctions.timestamps import parse_timestamp
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step



def run_pass(execution: ExecutionPort, step: Step) -> Outcome:
    """Pass: ``Result`` if given, else the state's arguments."""
    if "Result" in step.state:
        return Outcome(step.state["Result"])
    return Outcome(step.lang.arguments(step))


def run_choice(execution: ExecutionPort, step: Step) -> Outcome:
    """Choice: the first rule that matches names the next state."""
    for rule in step.state["Choices"]:
        if step.lang.condition(step, rule):
            overrides = {"Output": rule["Output"]} if "Output" in rule else {}
            return Outcome(step.input, rule["Next"], chooses_next=True, assign=rule.get("Assign"), overrides=overrides)
    default = step.state.get("Default")
    if default is None:
        raise E.StatesError(E.NO_CHOICE, f"No Choice rule matched in state {step.name!r} and it has no Default")
    return Outcome(step.input, default, chooses_next=True)


def wait_seconds(value: Any, name: str) -> int:
    """A Wait duration: an integer number of seconds from 0 to 99999999, else States.Runtime."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= aws.MAX_WAIT_SECONDS:
        raise E.StatesError(E.RUNTIME, f"State {name!r}: the wait duration {value!r} is not an integer number of "
                                       f"seconds from 0 to {aws.MAX_WAIT_SECONDS}")
    return value


def wait_until(value: Any, name: str) -> float:
    """A Wait timestamp (RFC 3339 with ``T`` and a zone) as epoch seconds, else States.Runtime."""
    moment = parse_timestamp(value)
    if moment is None:
        raise E.StatesError(E.RUNTIME, f"State {name!r}: {value!r} is not an RFC 3339 timestamp such as 2016-03-14T01:59:00Z")
    return moment.timestamp()


def run_wait(execution: ExecutionPort, step: Step) -> Outcome:
    """Wait: sleep on the execution's clock for a duration or until a timestamp."""
    if "Seconds" in step.state or "SecondsPath" in step.state:
        seconds: float = wait_seconds(step.lang.value(step, "Seconds"), step.name)
    else:
        until = wait_until(step.lang.value(step, "Timestamp"), step.name)
        seconds = until - execution.clock.now()
        if seconds > aws.STANDARD_MAX_DURATION_S:
            raise E.StatesError(E.RUNTIME, f"State {step.name!r}: the timestamp is more than a year away, past an "
                                           "execution's maximum duration")
        seconds = max(0.0, seconds)
    execution.sleep(seconds)
    return Outcome(step.input)


def run_succeed(execution: ExecutionPort, step: Step) -> Outcome:
    """Succeed: ends this (sub-)machine with its input."""
    return Outcome(step.input, None, chooses_next=True)


def _fail_field(step: Step, field: str) -> str | None:
    state = step.state
    if f"{field}Path" in state:
        value = step.lang.path(step, state[f"{field}Path"], step.raw)
    elif field in state:
        value = step.lang.value(step, field)
    else:
        return None
    if not isinstance(value, str):
        raise E.StatesError(E.RUNTIME, f"State {step.name!r}: the {field} {value!r} is not a string")
    return value


def run_fail(execution: ExecutionPort, step: Step) -> Outcome:
    """Fail: ends the execution with ``Error`` and ``Cause`` (each may be absent)."""
    raise E.StatesError(_fail_field(step, "Error"), _fail_field(step, "Cause"))
