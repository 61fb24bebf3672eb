"""Runners of the flow states: Pass, Choice, Wait, Succeed, Fail.

Rules: https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html (``Result``, else
the ``Parameters`` output, else the input), state-choice.html (first matching rule wins, else
``Default``, else ``States.NoChoiceMatched``), state-wait.html (``Seconds``/``SecondsPath``,
``Timestamp``/``TimestampPath``), state-succeed.html, state-fail.html.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from emulator.stepfunctions import errors as E
from emulator.stepfunctions.choice import evaluate_rule
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step


def run_pass(execution: ExecutionPort, step: Step) -> Outcome:
    """Pass: ``Result`` if given, else the state's arguments."""
    if "Result" in step.state:
        return Outcome(step.state["Result"])
    return Outcome(step.lang.arguments(step))


def run_choice(execution: ExecutionPort, step: Step) -> Outcome:
    """Choice: the first rule that matches names the next state."""
    for rule in step.state["Choices"]:
        if evaluate_rule(rule, step.input, step.ctx):
            return Outcome(step.input, rule["Next"], chooses_next=True)
    default = step.state.get("Default")
    if default is None:
        raise E.StatesError(E.NO_CHOICE, f"No Choice rule matched in state {step.name!r} and it has no Default")
    return Outcome(step.input, default, chooses_next=True)


def run_wait(execution: ExecutionPort, step: Step) -> Outcome:
    """Wait: sleep on the execution's clock for a duration or until a timestamp."""
    state = step.state
    if "Seconds" in state or "SecondsPath" in state:
        seconds = step.lang.value(step, "Seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise E.StatesError(E.RUNTIME, f"state {step.name!r}: wait seconds must be a non-negative number, got {seconds!r}")
    else:
        stamp = step.lang.value(step, "Timestamp")
        try:
            until = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise E.StatesError(E.RUNTIME, f"state {step.name!r}: {stamp!r} is not an ISO 8601 timestamp") from exc
        seconds = max(0.0, until - execution.clock.now())
    execution.sleep(seconds)
    return Outcome(step.input)


def run_succeed(execution: ExecutionPort, step: Step) -> Outcome:
    """Succeed: ends this (sub-)machine with its input."""
    return Outcome(step.input, None, chooses_next=True)


def run_fail(execution: ExecutionPort, step: Step) -> Outcome:
    """Fail: ends the execution with ``Error`` and ``Cause``."""
    state = step.state
    error = state.get("Error") or (step.lang.path(step, state["ErrorPath"], step.raw) if "ErrorPath" in state else "States.Failed")
    cause: Any = state.get("Cause") or (step.lang.path(step, state["CausePath"], step.raw) if "CausePath" in state else "")
    raise E.StatesError(str(error), cause if isinstance(cause, str) else json.dumps(cause))
