"""Runners of the flow states: Pass, Choice, Wait, Succeed, Fail.

Rules: https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html (``Result``, else
the ``Parameters`` output, else the input), state-choice.html (first matching rule wins, else
``Default``, else a failure: ``States.Runtime`` "Failed to transition out of the state..." as AWS
records it, where the spec names ``States.NoChoiceMatched``; the state's ``Assign`` always applies and a matched
rule's own ``Assign`` too; a matched JSONata rule's ``Output`` replaces the state's),
state-wait.html (``Seconds`` an integer from 0 to 99999999; ``Timestamp`` an RFC 3339 time with
``T`` and a zone, e.g. ``2016-03-14T01:59:00Z``), state-succeed.html, state-fail.html (``Error``
and ``Cause`` are optional: without them the execution fails with neither; ``ErrorPath`` and
``CausePath`` must resolve to strings).
"""

from __future__ import annotations

import json
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
        # AWS fails the execution with States.Runtime here (recorded on AWS), not the
        # States.NoChoiceMatched that the States Language spec names.
        raise E.StatesError(E.RUNTIME, "Failed to transition out of the state. The state does not point to a next state.")
    return Outcome(step.input, default, chooses_next=True)


def wait_seconds(value: Any, name: str, path: str | None = None) -> int:
    """A Wait duration: an integer number of seconds from 0 to 99999999, else States.Runtime.

    ``path`` is the ``SecondsPath`` the value came from, for AWS's causes ("The SecondsPath
    parameter cannot be parsed as a long value: $.s == 1.5", "... references a negative value ...").
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and 0 <= value <= aws.MAX_WAIT_SECONDS:
        return value
    if path is not None and not whole:
        cause = f"The SecondsPath parameter cannot be parsed as a long value: {path} == {_shown(value)}"
    elif path is not None and value < 0:
        cause = f"The SecondsPath parameter references a negative value: {path} == {value}"
    else:
        cause = (f"State {name!r}: the wait duration {value!r} is not an integer number of "
                 f"seconds from 0 to {aws.MAX_WAIT_SECONDS}")
    raise E.StatesError(E.RUNTIME, cause)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def wait_until(value: Any, name: str, path: str | None = None) -> float:
    """A Wait timestamp (RFC 3339 with ``T`` and a zone) as epoch seconds, else States.Runtime."""
    moment = parse_timestamp(value)
    if moment is None:
        if path is not None:
            raise E.StatesError(E.RUNTIME, "The TimestampPath parameter does not reference a valid ISO-8601 extended "
                                           f"offset date-time format string: {path} == {_shown(value)}")
        raise E.StatesError(E.RUNTIME, f"State {name!r}: {value!r} is not an RFC 3339 timestamp such as 2016-03-14T01:59:00Z")
    return moment.timestamp()


def _wait_value(step: Step, field: str) -> Any:
    """``field`` or ``fieldPath``; a missing path is AWS's "does not reference an input value"."""
    try:
        return step.lang.value(step, field)
    except E.StatesError as exc:
        path = step.state.get(f"{field}Path")
        if path is None or exc.error != E.RUNTIME:
            raise
        raise E.StatesError(E.RUNTIME, f"The {field}Path parameter does not reference an input value: {path}") from exc


def run_wait(execution: ExecutionPort, step: Step) -> Outcome:
    """Wait: sleep on the execution's clock for a duration or until a timestamp."""
    if "Seconds" in step.state or "SecondsPath" in step.state:
        seconds: float = wait_seconds(_wait_value(step, "Seconds"), step.name, step.state.get("SecondsPath"))
    else:
        until = wait_until(_wait_value(step, "Timestamp"), step.name, step.state.get("TimestampPath"))
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
        value = step.lang.path(step, state[f"{field}Path"], step.raw, f"{field}Path")
    elif field in state:
        value = step.lang.value(step, field)
    else:
        return None
    if not isinstance(value, str):
        raise E.StatesError(E.RUNTIME, f"State {step.name!r}: the {field} {value!r} is not a string")
    return value


def run_fail(execution: ExecutionPort, step: Step) -> Outcome:
    """Fail: ends the execution with ``Error`` and ``Cause`` (each may be absent)."""
    failure = E.StatesError(_fail_field(step, "Error"), _fail_field(step, "Cause"))
    failure.located = True  # the Fail state's own error and cause, never prefixed
    raise failure
