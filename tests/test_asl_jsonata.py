"""Conformance: the JSONata query language, one test per documented rule.

Source pages are cited in each docstring (base: https://docs.aws.amazon.com/step-functions/latest/dg/).
"""

from __future__ import annotations

import re

import pytest

from emulator.stepfunctions import DefinitionError, StateMachine
from tests.asl_helpers import LAMBDA_INVOKE, FunctionTable, fails_with, jsonata, run

ECHO = FunctionTable(f=lambda p: p)


def task(**fields):
    return {"Type": "Task", "Resource": LAMBDA_INVOKE, **fields}


def test_arguments_and_output_replace_the_five_jsonpath_fields():
    """transforming-data.html: a JSONata Task takes Arguments and returns Output; $states.result is the result."""
    fns = FunctionTable(f=lambda p: {"double": p["n"] * 2})
    result = jsonata({"T": task(Arguments={"FunctionName": "f", "Payload": {"n": "{% $states.input.value %}"}},
                                Output={"got": "{% $states.result.Payload.double %}", "static": "x"}, End=True)},
                     {"value": 21}, fns)
    assert result.status == "SUCCEEDED" and result.output == {"got": 42, "static": "x"}
    assert fns.calls == [("f", {"n": 21})]


def test_default_output_is_the_result_for_a_task_and_the_input_for_a_pass():
    """transforming-data.html: without Output, a Task's output is its result and a Pass's its input."""
    result = jsonata({"P": {"Type": "Pass", "Next": "T"},
                      "T": task(Arguments={"FunctionName": "f", "Payload": "{% $states.input %}"}, End=True)},
                     {"a": 1}, FunctionTable(f=lambda p: p))
    assert result.output["Payload"] == {"a": 1} and result.output["StatusCode"] == 200


def test_query_language_per_state_in_a_jsonpath_machine():
    """transforming-data.html: a state may set "QueryLanguage": "JSONata" in a JSONPath state machine."""
    result = run({"A": {"Type": "Pass", "Parameters": {"v.$": "$.v"}, "Next": "B"},
                  "B": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.v + 1 %}", "End": True}},
                 {"v": 1})
    assert result.output == 2


def test_a_jsonpath_state_in_a_jsonata_machine_is_rejected():
    """transforming-data.html: with a JSONata top-level QueryLanguage, states cannot use JSONPath."""
    with pytest.raises(DefinitionError, match=r"state 'A': field 'QueryLanguage'"):
        StateMachine({"QueryLanguage": "JSONata", "StartAt": "A",
                      "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}}})


@pytest.mark.parametrize("field, value", [("InputPath", "$.a"), ("Parameters", {}), ("ResultSelector", {}),
                                          ("ResultPath", "$.r"), ("OutputPath", "$")])
def test_jsonpath_fields_are_rejected_in_a_jsonata_state(field, value):
    """transforming-data.html: JSONata states have Arguments and Output instead of the five JSONPath fields."""
    with pytest.raises(DefinitionError, match=rf"state 'T': field '{field}': a JSONPath field"):
        StateMachine({"QueryLanguage": "JSONata", "StartAt": "T", "States": {
            "T": task(Arguments={"FunctionName": "f"}, End=True, **{field: value})}})


def test_jsonata_fields_are_rejected_in_a_jsonpath_state():
    """transforming-data.html: Arguments/Output belong to JSONata states."""
    with pytest.raises(DefinitionError, match=r"state 'P': field 'Output': a JSONata field"):
        StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": 1, "End": True}}})


def test_an_invalid_expression_is_rejected_when_the_definition_is_created():
    """transforming-data.html: expressions are checked when the state machine is created."""
    with pytest.raises(DefinitionError, match=r"state 'P': field 'Output'.*not a valid JSONata expression"):
        StateMachine({"QueryLanguage": "JSONata", "StartAt": "P",
                      "States": {"P": {"Type": "Pass", "Output": "{% 1 + %}", "End": True}}})


def test_only_exact_delimiters_make_an_expression():
    """transforming-data.html: a string is an expression only when it starts with {% and ends with %}."""
    result = jsonata({"P": {"Type": "Pass", "Output": {"lit": " {% 1 %}", "expr": "{% 1 + 1 %}", "plain": "$x"}, "End": True}})
    assert result.output == {"lit": " {% 1 %}", "expr": 2, "plain": "$x"}


def test_states_context_is_the_context_object():
    """transforming-data.html / input-output-contextobject.html: $states.context holds Execution, State, StateMachine."""
    result = StateMachine({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
        "Type": "Pass", "Output": {"name": "{% $states.context.Execution.Name %}", "state": "{% $states.context.State.Name %}"},
        "End": True}}}).execute({}, invoker=ECHO, name="run-7")
    assert result.output == {"name": "run-7", "state": "P"}


def test_error_output_in_a_catcher_output_and_assign():
    """transforming-data.html: in a Catch, $states.errorOutput is {"Error", "Cause"}; Output and Assign may use it."""
    result = jsonata({
        "T": task(Arguments={"FunctionName": "f"}, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Done",
                                                           "Output": {"e": "{% $states.errorOutput.Error %}"},
                                                           "Assign": {"cause": "{% $states.errorOutput.Cause %}"}}], End=True),
        "Done": {"Type": "Pass", "Output": {"e": "{% $states.input.e %}", "c": "{% $parse($cause).errorMessage %}"}, "End": True}},
        {}, FunctionTable(f=fails_with("Oops", "bad thing")))
    assert result.output == {"e": "Oops", "c": "bad thing"}


def test_catcher_without_output_passes_the_error_output():
    """transforming-data.html: a JSONata Catcher's default output is the error output."""
    result = jsonata({"T": task(Arguments={"FunctionName": "f"}, Catch=[{"ErrorEquals": ["Oops"], "Next": "D"}], End=True),
                      "D": {"Type": "Succeed"}}, {}, FunctionTable(f=fails_with("Oops", "m")))
    assert result.output["Error"] == "Oops" and "errorMessage" in result.output["Cause"]


def test_aws_provided_functions():
    """transforming-data.html: $partition, $range, $hash, $random(seed), $uuid, $parse."""
    result = jsonata({"P": {"Type": "Pass", "Output": {
        "partition": "{% $partition([1,2,3,4,5], 2) %}", "range": "{% $range(0, 10, 5) %}",
        "hash": "{% $hash('abc', 'SHA-256') %}", "r1": "{% $random(7) %}", "r2": "{% $random(7) %}",
        "uuid": "{% $uuid() %}", "parsed": "{% $parse('{\"k\": [1]}') %}"}, "End": True}})
    out = result.output
    assert out["partition"] == [[1, 2], [3, 4], [5]] and out["range"] == [0, 5, 10]
    assert out["hash"].startswith("ba7816bf") and out["r1"] == out["r2"] and 0 <= out["r1"] < 1
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", out["uuid"])
    assert out["parsed"] == {"k": [1]}


def test_eval_is_not_supported():
    """transforming-data.html: use $parse; $eval is not available."""
    result = jsonata({"P": {"Type": "Pass", "Output": "{% $eval('1') %}", "End": True}})
    assert result.status == "FAILED" and result.error == "States.QueryEvaluationError"


def test_undefined_result_is_a_query_evaluation_error():
    """transforming-data.html: an expression must yield a JSON value; undefined fails with States.QueryEvaluationError."""
    result = jsonata({"P": {"Type": "Pass", "Output": "{% $states.input.missing %}", "End": True}}, {"a": 1})
    assert result.status == "FAILED" and result.error == "States.QueryEvaluationError"


def test_an_evaluation_failure_is_recorded_in_the_history():
    """API_HistoryEvent.html: a JSONata evaluation error records EvaluationFailed (state, error, cause)."""
    result = jsonata({"P": {"Type": "Pass", "Output": "{% $states.input.missing %}", "End": True}}, {})
    failed = [e for e in result.history if e["type"] == "EvaluationFailed"]
    assert len(failed) == 1 and failed[0]["evaluationFailedEventDetails"]["state"] == "P"
    assert failed[0]["evaluationFailedEventDetails"]["error"] == "States.QueryEvaluationError"


def test_item_reader_takes_arguments_in_jsonata():
    """state-map.html / input-output-itemreader.html: a JSONata ItemReader has Arguments, not Parameters."""
    with pytest.raises(DefinitionError, match=r"state 'M': field 'ItemReader.Parameters'"):
        StateMachine({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                              "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, "End": True}}})


def test_query_evaluation_error_is_catchable():
    """concepts-error-handling.html: States.QueryEvaluationError is an ordinary error that Catch can handle."""
    result = jsonata({"T": task(Arguments={"FunctionName": "f", "Payload": "{% $states.input.nope %}"},
                                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "D"}], End=True),
                      "D": {"Type": "Pass", "Output": "{% $states.input.Error %}", "End": True}}, {}, ECHO)
    assert result.output == "States.QueryEvaluationError"


def test_choice_condition():
    """state-choice.html: a JSONata rule has Condition; the first true one wins, else Default."""
    states = {"C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n > 10 %}", "Next": "Big"}], "Default": "Small"},
              "Big": {"Type": "Pass", "Output": "big", "End": True}, "Small": {"Type": "Pass", "Output": "small", "End": True}}
    assert jsonata(states, {"n": 11}).output == "big" and jsonata(states, {"n": 1}).output == "small"


def test_choice_condition_must_be_boolean():
    """state-choice.html: Condition must evaluate to a boolean."""
    result = jsonata({"C": {"Type": "Choice", "Choices": [{"Condition": "{% 'yes' %}", "Next": "D"}]},
                      "D": {"Type": "Succeed"}})
    assert result.error == "States.QueryEvaluationError"


def test_choice_rule_output():
    """state-choice.html: a matched JSONata rule's Output is the state's output; unknown rule fields are rejected."""
    result = jsonata({"C": {"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "D", "Output": {"via": "rule"}}]},
                      "D": {"Type": "Succeed"}}, {"x": 1})
    assert result.output == {"via": "rule"}
    with pytest.raises(DefinitionError, match=r"state 'C': field 'Choices\[0\]'.*Variable"):
        StateMachine({"QueryLanguage": "JSONata", "StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "D", "Variable": "$.x"}]}, "D": {"Type": "Succeed"}}})


def test_choice_state_and_rule_assign_both_apply():
    """state-choice.html: a rule's Assign applies when it matches; the state-level Assign applies whichever rule matches."""
    states = {"C": {"Type": "Choice", "Assign": {"seen": True, "path": "state"},
                    "Choices": [{"Condition": "{% $states.input.n > 1 %}", "Next": "D", "Assign": {"path": "rule"}}], "Default": "D"},
              "D": {"Type": "Pass", "Output": {"seen": "{% $seen %}", "path": "{% $path %}"}, "End": True}}
    assert jsonata(states, {"n": 5}).output == {"seen": True, "path": "rule"}
    assert jsonata(states, {"n": 0}).output == {"seen": True, "path": "state"}


def test_distributed_map_jsonata_batcher_and_concurrency_expressions():
    """state-map-distributed.html: in JSONata, ItemBatcher fields and MaxConcurrency may be expressions."""
    result = jsonata({"M": {"Type": "Map", "Items": "{% $states.input %}", "MaxConcurrency": "{% 2 %}",
                            "ItemBatcher": {"MaxItemsPerBatch": "{% 2 %}", "BatchInput": {"tag": "{% 't' %}"}},
                            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                                              "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                            "End": True}}, [1, 2, 3])
    assert result.status == "SUCCEEDED"
    assert result.output == [{"Items": [1, 2], "BatchInput": {"tag": "t"}}, {"Items": [3], "BatchInput": {"tag": "t"}}]


def test_distributed_map_item_reader_arguments_on_real_s3(s3_server, bucket):
    """input-output-itemreader.html: in JSONata the ItemReader takes Arguments (and ReaderConfig) with expressions."""
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="items.json", Body=b'[10, 20, 30]')
    definition = {"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"MaxItems": "{% 2 %}"},
                       "Arguments": {"Bucket": "{% $states.input.bucket %}", "Key": "items.json"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input + 1 %}", "End": True}}}}}}
    result = StateMachine(definition).execute({"bucket": bucket}, invoker=ECHO, s3_client=s3)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [11, 21]


def test_map_items_literal_array():
    """state-map.html: Items may be a JSON array."""
    result = jsonata({"M": {"Type": "Map", "Items": [4, 5],
                            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, "End": True}})
    assert result.output == [4, 5]


def test_map_items_not_an_array_fails():
    """state-map.html: Items must evaluate to an array."""
    result = jsonata({"M": {"Type": "Map", "Items": "{% $states.input %}",
                            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, "End": True}}, {"a": 1})
    assert result.status == "FAILED" and result.error == "States.QueryEvaluationError"


def test_parallel_arguments_and_output():
    """state-parallel.html: Arguments is each branch's input; Output sees $states.result (the branch outputs)."""
    def branch(name):  # state names are unique in the whole machine
        return {"StartAt": name, "States": {name: {"Type": "Pass", "Output": "{% $states.input.k %}", "End": True}}}
    result = jsonata({"Par": {"Type": "Parallel", "Arguments": {"k": "{% $states.input.v %}"}, "Branches": [branch("B1"), branch("B2")],
                              "Output": "{% $sum($states.result) %}", "End": True}}, {"v": 4})
    assert result.output == 8


def test_wait_seconds_and_timestamp_expressions():
    """state-wait.html: Seconds and Timestamp may be JSONata expressions."""
    result = jsonata({"W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "Next": "W2"},
                      "W2": {"Type": "Wait", "Timestamp": "{% '2000-01-01T00:00:00Z' %}", "End": True}}, {"s": 5})
    assert result.status == "SUCCEEDED"


def test_fail_error_and_cause_expressions():
    """state-fail.html: in JSONata, Error and Cause may be expressions."""
    result = jsonata({"F": {"Type": "Fail", "Error": "{% 'E' & $string($states.input.code) %}", "Cause": "{% $states.input.why %}"}},
                     {"code": 42, "why": "because"})
    assert (result.error, result.cause) == ("E42", "because")


def test_task_timeout_seconds_expression_and_retry():
    """state-task.html / concepts-error-handling.html: TimeoutSeconds may be an expression; Retry applies to JSONata tasks."""
    calls = []

    def flaky(p):
        calls.append(p)
        if len(calls) < 2:
            raise fails_with("Transient")(p)
        return "ok"

    result = jsonata({"T": task(Arguments={"FunctionName": "f"}, TimeoutSeconds="{% 5 %}",
                                Retry=[{"ErrorEquals": ["Transient"], "IntervalSeconds": 1}], End=True)},
                     {}, FunctionTable(f=flaky))
    assert result.status == "SUCCEEDED" and result.output["Payload"] == "ok" and len(calls) == 2
