"""Conformance: workflow variables (Assign), one test per documented rule.

Source: https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html unless a
docstring cites another page.
"""

from __future__ import annotations

import pytest

from emulator.stepfunctions import DefinitionError, StateMachine
from tests.asl_helpers import LAMBDA_INVOKE, FunctionTable, fails_with, jsonata, lambda_task, run

PAGE = "https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html"


def test_a_variable_is_visible_to_later_states_jsonata():
    """workflow-variables.html: Assign stores a value; later states read it as $name."""
    result = jsonata({"A": {"Type": "Pass", "Assign": {"x": "{% $states.input.v %}"}, "Next": "B"},
                      "B": {"Type": "Pass", "Output": {"x": "{% $x %}"}, "End": True}}, {"v": 3})
    assert result.output == {"x": 3}


def test_a_variable_in_jsonpath_paths_and_intrinsics():
    """workflow-variables.html: JSONPath states read variables as $name in paths and intrinsic arguments."""
    result = run({"A": {"Type": "Pass", "Assign": {"user": {"name": "ann"}, "n": 2}, "Next": "B"},
                  "B": {"Type": "Pass", "Parameters": {"name.$": "$user.name", "sum.$": "States.MathAdd($n, 1)"}, "End": True}})
    assert result.output == {"name": "ann", "sum": 3}


def test_assign_sees_the_values_from_state_entry_not_its_own_block():
    """workflow-variables.html: all Assign expressions use the variable values as they were on entering the state."""
    result = jsonata({"A": {"Type": "Pass", "Assign": {"x": 1, "y": 2}, "Next": "Swap"},
                      "Swap": {"Type": "Pass", "Assign": {"x": "{% $y %}", "y": "{% $x %}"},
                               "Output": {"x": "{% $x %}", "y": "{% $y %}"}, "Next": "After"},
                      "After": {"Type": "Pass", "Output": {"before": "{% $states.input %}", "x": "{% $x %}", "y": "{% $y %}"},
                                "End": True}})
    assert result.output == {"before": {"x": 1, "y": 2}, "x": 2, "y": 1}


def test_assign_reads_the_task_result():
    """workflow-variables.html: a Task's Assign reads $states.result (JSONata) / $ = the result after ResultSelector (JSONPath)."""
    fns = FunctionTable(f=lambda p: {"price": 5})
    ja = jsonata({"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Arguments": {"FunctionName": "f"},
                        "Assign": {"p": "{% $states.result.Payload.price %}"}, "Next": "R"},
                  "R": {"Type": "Pass", "Output": "{% $p %}", "End": True}}, {}, fns)
    jp = run({"T": lambda_task(ResultSelector={"price.$": "$.Payload.price"}, Assign={"p.$": "$.price"}, Next="R"),
              "R": {"Type": "Pass", "Parameters": {"p.$": "$p"}, "End": True}}, {}, fns)
    assert ja.output == 5 and jp.output == {"p": 5}


def test_catcher_assign_reads_the_error_output_in_jsonpath():
    """workflow-variables.html: Assign in a Catcher; in JSONPath, $ is the error output."""
    result = run({"T": lambda_task(Catch=[{"ErrorEquals": ["States.ALL"], "Assign": {"err.$": "$.Error"}, "Next": "R"}], End=True),
                  "R": {"Type": "Pass", "Parameters": {"err.$": "$err"}, "End": True}}, {}, FunctionTable(f=fails_with("Bad")))
    assert result.output == {"err": "Bad"}


def test_choice_rule_assign():
    """workflow-variables.html / state-choice.html: a Choice rule may Assign; the matched rule's Assign applies."""
    result = run({"C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Assign": {"size": "big"}, "Next": "R"}],
                        "Default": "R"},
                  "R": {"Type": "Pass", "Parameters": {"size.$": "$size"}, "End": True}}, {"n": 5})
    assert result.output == {"size": "big"}


def test_inner_scope_reads_outer_variables_and_its_own_stay_inside():
    """workflow-variables.html: Parallel branches and Map iterations read outer variables; their own do not leak out."""
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Assign": {"inner": 1}, "Output": "{% $outer %}", "End": True}}}
    result = jsonata({"A": {"Type": "Pass", "Assign": {"outer": 7}, "Next": "Par"},
                      "Par": {"Type": "Parallel", "Branches": [branch], "Next": "Check"},
                      "Check": {"Type": "Pass", "Output": {"r": "{% $states.input %}", "inner": "{% $exists($inner) %}"}, "End": True}})
    assert result.output == {"r": [7], "inner": False}


def test_inline_map_iterations_read_outer_variables():
    """workflow-variables.html: an inline Map's iterations read variables of the outer scope."""
    result = jsonata({"A": {"Type": "Pass", "Assign": {"k": 10}, "Next": "M"},
                      "M": {"Type": "Map", "Items": [1, 2], "ItemProcessor": {"StartAt": "P", "States": {
                          "P": {"Type": "Pass", "Output": "{% $states.input * $k %}", "End": True}}}, "End": True}})
    assert result.output == [10, 20]


def test_distributed_map_children_cannot_read_outer_variables():
    """workflow-variables.html: a Distributed Map's child workflows cannot reference variables of outer scopes."""
    result = jsonata({"A": {"Type": "Pass", "Assign": {"k": 10}, "Next": "M"},
                      "M": {"Type": "Map", "Items": [1], "ItemProcessor": {
                          "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $k %}", "End": True}}},
                          "End": True}})
    assert result.status == "FAILED"
    child = result.map_runs[0]["children"][0]
    assert child["status"] == "FAILED" and child["error"] == "States.QueryEvaluationError"


def test_an_inner_scope_cannot_assign_an_outer_variable():
    """workflow-variables.html: a state in a Parallel branch or Map iteration cannot assign a variable of an outer scope."""
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Assign": {"x": 2}, "End": True}}}
    with pytest.raises(DefinitionError, match=r"state 'B': field 'Assign': \$x is assigned in an outer scope"):
        StateMachine({"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "P"},
                                                 "P": {"Type": "Parallel", "Branches": [branch], "End": True}}})


@pytest.mark.parametrize("name, words", [("states", "reserved"), ("1abc", "not a valid variable name"),
                                         ("a" * 81, "not a valid variable name"), ("a-b", "not a valid variable name")])
def test_variable_names(name, words):
    """workflow-variables.html: names start with a letter or _, at most 80 characters; $states is reserved."""
    with pytest.raises(DefinitionError, match=words):
        StateMachine({"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {name: 1}, "End": True}}})


def test_assign_is_not_allowed_in_succeed_and_fail():
    """workflow-variables.html: Assign is supported by Pass, Task, Map, Parallel, Choice and Wait only."""
    with pytest.raises(DefinitionError, match=r"state 'S': field 'Assign'"):
        StateMachine({"StartAt": "S", "States": {"S": {"Type": "Succeed", "Assign": {"x": 1}}}})


def test_a_variable_over_256_kib_fails():
    """workflow-variables.html: one variable holds at most 256 KiB."""
    result = jsonata({"A": {"Type": "Pass", "Assign": {"big": "{% $states.input.s & $states.input.s %}"}, "Output": 1, "End": True}},
                     {"s": "x" * 135_000})
    assert result.status == "FAILED" and result.error == "States.DataLimitExceeded" and "$big" in result.cause


def test_a_missing_variable_is_an_error():
    """workflow-variables.html: reading a variable that was never assigned fails the state."""
    jp = run({"A": {"Type": "Pass", "Parameters": {"v.$": "$nope"}, "End": True}})
    ja = jsonata({"A": {"Type": "Pass", "Output": "{% $nope %}", "End": True}})
    assert jp.error == "States.Runtime" and ja.error == "States.QueryEvaluationError"
