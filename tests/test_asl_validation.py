"""Conformance: definitions AWS rejects are rejected here too, naming the state and field.

Each docstring cites the page that states the rule (base: https://docs.aws.amazon.com/step-functions/latest/dg/).
"""

from __future__ import annotations

import pytest

from emulator.stepfunctions import DefinitionError, StateMachine
from tests.asl_helpers import LAMBDA_INVOKE, lambda_task

END = {"Type": "Succeed"}


def rejects(states, match, start=None):
    with pytest.raises(DefinitionError, match=match):
        StateMachine({"StartAt": start or next(iter(states)), "States": states})


@pytest.mark.parametrize("retry", [
    [{"ErrorEquals": ["States.ALL", "Custom"]}],
    [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["Custom"]}],
])
def test_states_all_must_be_alone_and_last_in_retry(retry):
    """concepts-error-handling.html: States.ALL must appear alone in ErrorEquals and in the last Retrier."""
    rejects({"T": lambda_task(Retry=retry, End=True)}, r"state 'T': field 'Retry\[0\]': States.ALL")


def test_states_all_must_be_last_in_catch():
    """concepts-error-handling.html: States.ALL must appear alone and in the last Catcher."""
    rejects({"T": lambda_task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "D"}, {"ErrorEquals": ["X"], "Next": "D"}], End=True),
             "D": END}, r"state 'T': field 'Catch\[0\]': States.ALL")


def test_unreachable_states_are_rejected():
    """statemachine-structure.html / the States Language: every state must be reachable from StartAt."""
    rejects({"A": {"Type": "Pass", "End": True}, "Orphan": {"Type": "Pass", "End": True}}, r"state 'Orphan'.*not reachable")


def test_states_reached_only_through_catch_or_choice_are_reachable():
    """A Catcher's Next and Choice rules/Default are transitions too."""
    StateMachine({"StartAt": "T", "States": {
        "T": lambda_task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "C"}], End=True),
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "X"}], "Default": "Y"},
        "X": END, "Y": END}})


@pytest.mark.parametrize("rule, words", [
    ({"Variable": "$.a", "Next": "D"}, "exactly one comparison operator"),
    ({"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1, "Next": "D"}, "exactly one comparison operator"),
    ({"StringEquals": "x", "Next": "D"}, "needs 'Variable'"),
    ({"Variable": "$.a", "NumericEquals": "1", "Next": "D"}, "not a valid value"),
    ({"Variable": "$.a", "BooleanEquals": "true", "Next": "D"}, "not a valid value"),
    ({"Variable": "$.a", "TimestampEquals": "yesterday", "Next": "D"}, "not a valid value"),
    ({"Variable": "$.a", "IsPresent": True}, "'Next'"),
    ({"And": [{"Variable": "$.a", "IsPresent": True, "Next": "D"}], "Next": "D"}, "nested Choice rule"),
    ({"Not": [], "Next": "D"}, "JSON object"),
    ({"Variable": "a.b", "IsPresent": True, "Next": "D"}, "'Variable'"),
])
def test_choice_rule_structure(rule, words):
    """state-choice.html: a rule is And/Or/Not or a Variable with exactly one operator of the right type; only
    top-level rules have Next."""
    rejects({"C": {"Type": "Choice", "Choices": [rule]}, "D": END}, rf"state 'C': field 'Choices\[0\]':.*{words}")


def test_heartbeat_must_be_smaller_than_timeout():
    """state-task.html: HeartbeatSeconds must be smaller than TimeoutSeconds."""
    rejects({"T": lambda_task(TimeoutSeconds=10, HeartbeatSeconds=10, End=True)}, r"state 'T': field 'HeartbeatSeconds'")


def test_timeout_and_timeout_path_exclude_each_other():
    """state-task.html: give TimeoutSeconds or TimeoutSecondsPath, not both."""
    rejects({"T": lambda_task(TimeoutSeconds=10, TimeoutSecondsPath="$.t", End=True)}, r"state 'T': field 'TimeoutSecondsPath'")


def test_state_names_are_at_most_80_characters():
    """statemachine-structure.html: state names are at most 80 characters."""
    rejects({"A" * 81: {"Type": "Pass", "End": True}}, r"at most 80 characters")


def test_tolerated_failure_percentage_over_100_is_rejected():
    """state-map-distributed.html: ToleratedFailurePercentage is 0-100."""
    rejects({"M": {"Type": "Map", "ToleratedFailurePercentage": 101, "End": True, "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}, r"state 'M': field 'ToleratedFailurePercentage'")


def test_lambda_invoke_needs_a_function_name():
    """connect-lambda.html: the Invoke request needs FunctionName."""
    rejects({"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"Payload": {}}, "End": True}},
            r"state 'T': field 'Parameters'.*FunctionName")


def test_an_invalid_path_is_rejected():
    """amazon-states-language-paths.html: paths are checked when the definition is created."""
    rejects({"P": {"Type": "Pass", "InputPath": "a.b", "End": True}}, r"state 'P': field 'InputPath'")
