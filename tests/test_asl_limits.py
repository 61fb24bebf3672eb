"""Runaway executions stop (issue 10): the history quota and the machine's TimeoutSeconds."""

from __future__ import annotations

import time

from emulator.contracts import aws
from emulator.contracts.lambdas import LambdaFunctionError
from emulator.stepfunctions import StateMachine, VirtualClock

# A definition needs a terminal state (AWS rejects one without: MISSING_END_STATE); this loop
# can end, but the input never lets it.
EXIT = {"C": {"Type": "Choice", "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}], "Default": "L"},
        "Done": {"Type": "Succeed"}}
LOOP = {"StartAt": "L", "States": {"L": {"Type": "Pass", "Next": "C"}, **EXIT}}


class Failing:
    def invoke(self, name, payload):
        raise LambdaFunctionError("Boom", "always")


def test_a_pass_loop_fails_at_the_history_quota_as_aws_does():
    """https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: 25,000 events per execution;
    AWS fails the execution with States.Runtime, "The execution reached the maximum number of history events (25000)."."""
    result = StateMachine(LOOP).execute({"payload": "x" * 100}, invoker=None)
    assert result.status == "FAILED" and result.error == "States.Runtime"
    assert result.cause == f"The execution reached the maximum number of history events ({aws.MAX_HISTORY_EVENTS})."
    assert len(result.history) == aws.MAX_HISTORY_EVENTS
    assert result.history[-1]["type"] == "ExecutionFailed"
    # Memory is bounded by the quota: ~16 MB traced at the peak (measured with tracemalloc).


def test_the_history_quota_is_not_caught_by_states_all():
    """States.Runtime always fails the execution: a Catch on States.ALL does not catch it
    (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)."""
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f"},
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "T"}], "End": True}}}
    result = StateMachine(definition).execute({}, invoker=Failing(), clock=VirtualClock())
    assert result.status == "FAILED" and result.error == "States.Runtime"
    assert len(result.history) == aws.MAX_HISTORY_EVENTS


def test_a_tight_loop_stops_at_the_machine_timeout():
    """TimeoutSeconds of the machine stops even a loop that never sleeps (real clock), before the history quota.

    https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html: TimeoutSeconds is the
    longest an execution may run; past it the execution fails with States.Timeout (TIMED_OUT).
    """
    definition = {"QueryLanguage": "JSONata", "StartAt": "L", "TimeoutSeconds": 1, "States": {
        "L": {"Type": "Pass", "Output": "{% $sum([1..500]) %}", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Condition": "{% false %}", "Next": "Done"}], "Default": "L"},
        "Done": {"Type": "Succeed"}}}
    started = time.monotonic()
    result = StateMachine(definition).execute({}, invoker=None)
    assert time.monotonic() - started < 5
    assert result.status == "TIMED_OUT" and result.error == "States.Timeout"
    assert result.history[-1]["type"] == "ExecutionTimedOut"
    assert len(result.history) < aws.MAX_HISTORY_EVENTS


def test_a_waiting_loop_times_out_on_the_virtual_clock():
    definition = {"StartAt": "W", "TimeoutSeconds": 100, "States": {"W": {"Type": "Wait", "Seconds": 7, "Next": "C"},
                                                                    **{**EXIT, "C": {**EXIT["C"], "Default": "W"}}}}
    result = StateMachine(definition).execute({}, invoker=None, clock=VirtualClock())
    assert result.status == "TIMED_OUT" and result.error == "States.Timeout"
    assert result.history[-1]["type"] == "ExecutionTimedOut"
    assert sum(e["type"] == "WaitStateEntered" for e in result.history) == 15
