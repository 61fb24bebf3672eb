"""Conformance, second pass: documented rules found to differ from AWS, one test per rule.

Pages cited in each docstring (base: https://docs.aws.amazon.com/step-functions/latest/dg/).
"""

from __future__ import annotations

import pytest

from emulator.stepfunctions import DefinitionError, StateMachine
from tests.asl_helpers import LAMBDA_INVOKE, FunctionTable, fails_with, run


def at(state: str, cause: str) -> str:
    """AWS's cause for an error the interpreter raises in ``state``, the first state (event #2)."""
    return f"An error occurred while executing the state '{state}' (entered at the event id #2). {cause}"


def passes(parameters, data):
    return run({"P": {"Type": "Pass", "Parameters": parameters, "End": True}}, data)


def choose(rule, data):
    """Run a one-rule Choice: 'yes' when the rule matches, else 'no'."""
    return run({"C": {"Type": "Choice", "Choices": [{**rule, "Next": "Y"}], "Default": "N"},
                "Y": {"Type": "Pass", "Result": "yes", "End": True},
                "N": {"Type": "Pass", "Result": "no", "End": True}}, data)


# -- intrinsic functions (intrinsic-functions.html) --------------------------------------------

@pytest.mark.parametrize("call", [
    "States.ArrayContains($.s, 'b')", "States.ArrayLength($.o)", "States.ArrayUnique($.s)",
    "States.ArrayPartition($.o, 1)", "States.StringToJson($.n)", "States.StringSplit($.n, ',')",
    "States.ArrayPartition($.a, 1.5)",
])
def test_array_and_string_functions_reject_arguments_of_the_wrong_type(call):
    """intrinsic-functions.html: the array functions take a JSON array, StringToJson and StringSplit
    a string, ArrayPartition a positive integer chunk size; anything else is States.IntrinsicFailure
    (not an engine error, and not Python's view of strings and objects as containers)."""
    result = passes({"v.$": call}, {"s": "abc", "o": {"k": 1}, "n": 5, "a": [1, 2]})
    assert (result.status, result.error) == ("FAILED", "States.IntrinsicFailure")


def test_array_contains_and_unique_compare_json_values():
    """intrinsic-functions.html (States.ArrayContains, States.ArrayUnique): values are JSON values,
    so true is not the number 1 and objects equal whatever their key order."""
    data = {"a": [1, 2], "m": [1, True, "1", None, None, {"x": 1, "y": 2}, {"y": 2, "x": 1}]}
    assert passes({"v.$": "States.ArrayContains($.a, true)"}, data).output == {"v": False}
    assert passes({"v.$": "States.ArrayContains($.a, 2)"}, data).output == {"v": True}
    assert passes({"v.$": "States.ArrayUnique($.m)"}, data).output == {"v": [1, True, "1", None, {"x": 1, "y": 2}]}


def test_json_to_string_keeps_unicode_characters():
    """intrinsic-functions.html (States.JsonToString): the JSON text of the value; non-ASCII
    characters stay as they are (AWS's serializer does not escape them)."""
    assert passes({"v.$": "States.JsonToString($.u)"}, {"u": {"x": "é"}}).output == {"v": '{"x":"é"}'}


# -- Choice (state-choice.html) ----------------------------------------------------------------

@pytest.mark.parametrize("pattern,value,expected", [
    ("a\\\\b", "a\\b", "yes"),      # \\ is a literal backslash
    ("a\\*b", "a*b", "yes"),        # \* is a literal star
    ("a\\*b", "axb", "no"),
    ("a*", "a[b]?", "yes"),         # only * is special
    ("log-*.txt", "log-2024.txt", "yes"),
    ("*.txt", "a.txtx", "no"),
])
def test_string_matches_wildcard_and_escapes(pattern, value, expected):
    """state-choice.html (StringMatches): '*' matches zero or more characters; a literal '*' is
    written '\\*' and a literal backslash '\\\\'."""
    assert choose({"Variable": "$.x", "StringMatches": pattern}, {"x": value}).output == expected


# -- paths (amazon-states-language-paths.html) -------------------------------------------------

def test_a_path_may_end_in_length():
    """amazon-states-language-paths.html: Step Functions paths are Jayway JsonPath, whose
    ``length()`` function gives the size of the array (or of an indefinite path's matches)."""
    data = {"l": [1, 2, 3]}
    out = passes({"n.$": "$.l.length()", "m.$": "$.l[?(@ > 1)].length()"}, data).output
    assert out == {"n": 3, "m": 2}
    assert choose({"Variable": "$.l.length()", "NumericGreaterThan": 2}, data).output == "yes"


# -- history events (API_HistoryEvent.html) ----------------------------------------------------

def test_history_details_carry_truncation_flags_and_task_failures_name_the_resource():
    """apireference/API_HistoryEvent.html: ExecutionStarted/Succeeded carry inputDetails /
    outputDetails, TaskSucceeded and LambdaFunctionScheduled/Succeeded their truncation flags,
    TaskFailed names resourceType and resource, LambdaFunctionFailed holds only error and cause."""
    fns = FunctionTable(f=lambda p: p, g=fails_with("Boom"))
    result = run({"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f"}, "Next": "L"},
                  "L": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "Next": "G"},
                  "G": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "g"},
                        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}], "End": True},
                  "H": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:g", "End": True}},
                 {}, fns)
    events = {e["type"]: e for e in result.history}
    assert events["ExecutionStarted"]["executionStartedEventDetails"]["inputDetails"] == {"truncated": False}
    assert events["TaskSucceeded"]["taskSucceededEventDetails"]["outputDetails"] == {"truncated": False}
    assert events["LambdaFunctionScheduled"]["lambdaFunctionScheduledEventDetails"]["inputDetails"] == {"truncated": False}
    assert events["LambdaFunctionSucceeded"]["lambdaFunctionSucceededEventDetails"]["outputDetails"] == {"truncated": False}
    failed = events["TaskFailed"]["taskFailedEventDetails"]
    assert (failed["resourceType"], failed["resource"], failed["error"]) == ("lambda", "invoke", "Boom")
    assert set(events["LambdaFunctionFailed"]["lambdaFunctionFailedEventDetails"]) == {"error", "cause"}


# -- Wait and Choice runtime errors (state-wait.html, state-choice.html) ----------------------

def wait(field, value, data):
    return run({"W": {"Type": "Wait", field: value, "End": True}}, data)


@pytest.mark.parametrize("data,cause", [
    ({"s": "5"}, "The SecondsPath parameter cannot be parsed as a long value: $.s == 5"),
    ({"s": 1.5}, "The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5"),
    ({"s": -1}, "The SecondsPath parameter references a negative value: $.s == -1"),
    ({}, "The SecondsPath parameter does not reference an input value: $.s"),
])
def test_seconds_path_errors_are_runtime_errors_with_aws_causes(data, cause):
    """state-wait.html: SecondsPath must select a non-negative integer; otherwise the execution
    fails with States.Runtime (causes as GetExecutionHistory shows them)."""
    result = wait("SecondsPath", "$.s", data)
    assert (result.status, result.error, result.cause) == ("FAILED", "States.Runtime", at("W", cause))


def test_timestamp_path_errors_are_runtime_errors_with_aws_causes():
    """state-wait.html: TimestampPath must select an ISO-8601 timestamp with T and a zone."""
    result = wait("TimestampPath", "$.t", {"t": "2024-01-01 00:00:00"})
    assert (result.error, result.cause) == (
        "States.Runtime", at("W", "The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
                                  "date-time format string: $.t == 2024-01-01 00:00:00"))


@pytest.mark.parametrize("rule", [
    {"Variable": "$.x", "StringEquals": "a"}, {"Variable": "$.x", "IsNull": False},
    {"Variable": "$.y", "NumericEqualsPath": "$.x"},
])
def test_a_choice_rule_on_a_missing_path_fails_the_execution(rule):
    """state-choice.html: only IsPresent tests whether a path exists; any other rule on a missing
    path is States.Runtime ("Invalid path ... references an invalid value")."""
    result = choose(rule, {"y": 1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause == at("C", "Invalid path '$.x': The choice state's condition path references an invalid value.")
    assert choose({"Variable": "$.x", "IsPresent": False}, {}).output == "yes"


def test_the_first_state_entered_event_has_previous_event_id_zero():
    """apireference/API_GetExecutionHistory.html (as recorded): ExecutionStarted is event 1 and the
    first state's StateEntered, event 2, has previousEventId 0; later events chain to the one before."""
    result = run({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}}, {})
    chain = [(e["id"], e["previousEventId"], e["type"]) for e in result.history]
    assert chain[:4] == [(1, 0, "ExecutionStarted"), (2, 0, "PassStateEntered"), (3, 2, "PassStateExited"),
                         (4, 3, "PassStateEntered")]


# -- definition-time validation (states-language.net, statemachine-structure.html) -------------

@pytest.mark.parametrize("definition", [
    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}, "Foo": 1},
    {"StartAt": "A", "States": {"A": {"Type": "Pass", "Comment": 5, "End": True}}},
    {"StartAt": "A", "Comment": ["x"], "States": {"A": {"Type": "Pass", "End": True}}},
    {"StartAt": "A", "States": {"A": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}]}}},
    {"StartAt": "M", "States": {"M": {"Type": "Map", "Next": "X", "ItemProcessor": {
        "StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}}, "X": {"Type": "Pass", "End": True}}},
])
def test_definitions_aws_rejects_are_rejected(definition):
    """states-language.net/spec.html (Top-level fields; States: "state names MUST be unique within the
    scope of the whole state machine"; Comment is a string): an unknown top-level field, a
    non-string Comment and a state name used twice (across Parallel branches and Map processors
    too) are definition errors."""

    with pytest.raises(DefinitionError):
        StateMachine(definition)


# -- query language inheritance (statemachine-structure.html, transforming-data.html) ----------

def test_nested_states_take_the_state_machines_query_language_not_the_enclosing_states():
    """transforming-data.html: a state without QueryLanguage uses the top-level one. States inside
    a JSONata Map of a JSONPath state machine are JSONPath states (the Map's own Items and
    ItemSelector are JSONata)."""
    inner = {"StartAt": "X", "States": {"X": {"Type": "Pass", "Parameters": {"v.$": "$.n"}, "End": True}}}
    result = run({"M": {"Type": "Map", "QueryLanguage": "JSONata", "Items": "{% $states.input.l %}",
                        "ItemSelector": {"n": "{% $states.context.Map.Item.Value %}"}, "ItemProcessor": inner,
                        "End": True}}, {"l": [1, 2]})
    assert result.output == [{"v": 1}, {"v": 2}]


def test_query_language_on_a_branch_or_processor_object_is_rejected():
    """statemachine-structure.html: QueryLanguage is a field of the state machine and of states;
    a Parallel branch or Map ItemProcessor is neither."""
    branch = {"QueryLanguage": "JSONata", "StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}
    with pytest.raises(DefinitionError):
        StateMachine({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [branch], "End": True}}})


# -- JSONata evaluation errors (transforming-data.html) ----------------------------------------

def jsonata_run(states, data):
    return run(states, data, QueryLanguage="JSONata")


def test_an_undefined_result_names_the_expression_and_its_field():
    """transforming-data.html: an expression that returns nothing fails the state with
    States.QueryEvaluationError; the cause names the expression and the field it is written in
    ("Output/v"), and the EvaluationFailed event carries that location."""
    result = jsonata_run({"P": {"Type": "Pass", "Output": {"v": ["{% $states.input.absent %}"]}, "End": True}}, {})
    assert (result.error, result.cause) == ("States.QueryEvaluationError", at(
        "P", "The JSONata expression '$states.input.absent' specified for the field 'Output/v[0]' returned nothing (undefined)."))
    failed = next(e for e in result.history if e["type"] == "EvaluationFailed")["evaluationFailedEventDetails"]
    assert (failed["state"], failed["location"]) == ("P", "Output/v[0]")
    rule = jsonata_run({"C": {"Type": "Choice", "Default": "D", "Choices": [
        {"Condition": "{% $states.input.a %}", "Next": "D"}]}, "D": {"Type": "Succeed"}}, {})
    assert "for the field 'Choices[0]/Condition'" in rule.cause


def test_a_variable_holding_null_is_null_not_undefined():
    """workflow-variables.html: a variable may hold any JSON value, null included; reading it
    in JSONata gives null (``$type`` "null"), not undefined."""
    result = jsonata_run({"A": {"Type": "Pass", "Assign": {"x": None}, "Next": "B"},
                          "B": {"Type": "Pass", "Output": {"x": "{% $x %}", "t": "{% $type($x) %}"}, "End": True}}, {})
    assert result.output == {"x": None, "t": "null"}


@pytest.mark.parametrize("expression,expected", [
    ("$range(0, 10, 3)", [0, 3, 6, 9]),
    ("$range(-1.7, 2, 1)", [-1, 0, 1, 2]),     # arguments rounded towards zero
    ("$range(1, 1, 1)", 1),                    # a one-value sequence is the bare value
    ("$count($range(1, 2000, 1))", 2000),      # no 1,000 cap (that is States.ArrayRange's)
    ("$partition([1, 2, 3], 2.9)", [[1, 2], [3]]),
])
def test_aws_jsonata_functions_range_and_partition(expression, expected):
    """transforming-data.html (the functions Step Functions adds: $partition, $range): results as
    AWS gives them; edge cases as recorded on AWS (non-integers rounded towards zero, a single
    value returned bare)."""
    assert jsonata_run({"P": {"Type": "Pass", "Output": "{% " + expression + " %}", "End": True}}, {}).output == expected


@pytest.mark.parametrize("expression", ["$range(1, 5)", "$range(5, 1, 1)", "$partition([], 2)", "$partition([1], 0)",
                                        '$hash("a")'])
def test_aws_jsonata_functions_give_undefined_for_degenerate_arguments(expression):
    """transforming-data.html: $range without a step or with a step pointing away from the end,
    $partition of an empty array or by 0, and $hash without an algorithm give undefined, which
    fails the field with States.QueryEvaluationError."""
    result = jsonata_run({"P": {"Type": "Pass", "Output": "{% " + expression + " %}", "End": True}}, {})
    assert result.error == "States.QueryEvaluationError" and "returned nothing (undefined)" in result.cause


def test_interpreter_errors_name_the_state_and_its_entered_event_once():
    """concepts-error-handling.html (causes as GetExecutionHistory shows them): an error the
    interpreter raises (States.Runtime, States.IntrinsicFailure, States.QueryEvaluationError) has
    a cause starting "An error occurred while executing the state 'X' (entered at the event id
    #N). ", added once at the innermost state; a Fail state's and a task's causes are their own."""
    inner = {"StartAt": "Bad", "States": {"Bad": {"Type": "Pass", "Parameters": {"v.$": "States.ArrayLength($.s)"},
                                                  "End": True}}}
    result = run({"Go": {"Type": "Pass", "Next": "Par"},
                  "Par": {"Type": "Parallel", "Branches": [inner], "End": True}}, {"s": "x"})
    entered = next(e["id"] for e in result.history if e["type"] == "PassStateEntered"
                   and e["stateEnteredEventDetails"]["name"] == "Bad")
    assert result.error == "States.IntrinsicFailure"
    assert result.cause.startswith(f"An error occurred while executing the state 'Bad' (entered at the event id #{entered}). ")
    assert result.cause.count("An error occurred") == 1
    fail = run({"F": {"Type": "Fail", "Error": "States.Runtime", "Cause": "mine"}}, {})
    assert fail.cause == "mine"


@pytest.mark.parametrize("output", ["{% phone %}", {"v": "{% $count(items) %}"}, "{% $$ %}",
                                    "{% $map($states.input.a, function($x){ b }) %}", "{% $states.errorOutput %}"])
def test_jsonata_references_aws_refuses_are_definition_errors(output):
    """transforming-data.html: an expression reads the input as $states.input and variables as
    $name; a path from the (absent) top-level context item, $$, and $states.errorOutput outside a
    Catcher are refused when the definition is created (UNSUPPORTED_JSONATA_EXPRESSION)."""
    with pytest.raises(DefinitionError):
        StateMachine({"QueryLanguage": "JSONata", "StartAt": "P",
                      "States": {"P": {"Type": "Pass", "Output": output, "End": True}}})


def test_jsonata_names_inside_filters_and_after_the_first_step_are_allowed():
    """transforming-data.html: only a path's first step reads the top level; names in later
    steps, filters and sort terms read items. $states.errorOutput is allowed in a Catcher."""
    data = {"items": [{"value": 1}, {"value": 5}]}
    result = jsonata_run({"P": {"Type": "Pass", "Output": "{% $states.input.items[value > 3].value %}", "End": True}}, data)
    assert result.output == 5
    StateMachine({"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Arguments": {"FunctionName": "f"}, "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}",
                         "Assign": {"e": "{% $states.errorOutput.Error %}"}, "Next": "D"}]},
        "D": {"Type": "Succeed"}}})


def test_hash_takes_a_string_and_math_random_rounds_its_bounds():
    """intrinsic-functions.html: States.Hash hashes a string (anything else is
    States.IntrinsicFailure); States.MathRandom rounds non-integer start and end to the nearest
    integer (1.6 and 3.4 are 2 and 3, so 1 never comes out)."""
    assert passes({"v.$": "States.Hash($.n, 'SHA-1')"}, {"n": 5}).error == "States.IntrinsicFailure"
    assert passes({"v.$": "States.Hash('abc', 'MD5')"}, {}).output == {"v": "900150983cd24fb0d6963f7d28e17f72"}
    assert {passes({"v.$": "States.MathRandom(1.6, 3.4)"}, {}).output["v"] for _ in range(30)} <= {2, 3}


def test_task_scheduled_carries_literal_timeouts():
    """apireference/API_TaskScheduledEventDetails.html: timeoutInSeconds and heartbeatInSeconds,
    present when the state sets TimeoutSeconds / HeartbeatSeconds."""
    fns = FunctionTable(f=lambda p: p)
    result = run({"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f"},
                        "TimeoutSeconds": 30, "HeartbeatSeconds": 10, "End": True}}, {}, fns)
    details = next(e for e in result.history if e["type"] == "TaskScheduled")["taskScheduledEventDetails"]
    assert (details["timeoutInSeconds"], details["heartbeatInSeconds"]) == (30, 10)


def test_jayway_path_functions():
    """amazon-states-language-paths.html: paths are Jayway JsonPath, whose functions min(), max(),
    avg(), sum() (doubles), first(), last() and keys() may end a path."""
    out = passes({"s.$": "$.l.sum()", "a.$": "$.l.avg()", "mx.$": "$.l.max()", "mn.$": "$.l.min()",
                  "f.$": "$.l.first()", "z.$": "$.l.last()", "k.$": "$.o.keys()"},
                 {"l": [1, 2, 3], "o": {"x": 1, "y": 2}}).output
    assert out == {"s": 6.0, "a": 2.0, "mx": 3.0, "mn": 1.0, "f": 1, "z": 3, "k": ["x", "y"]}


@pytest.mark.parametrize("fields", [
    {"ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}},
     "Iterator": {"StartAt": "Y", "States": {"Y": {"Type": "Pass", "End": True}}}},
    {"ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}, "ItemSelector": {}, "Parameters": {}},
])
def test_map_takes_the_new_field_or_the_legacy_one_not_both(fields):
    """state-map.html: ItemProcessor replaces Iterator and ItemSelector replaces Parameters; a Map
    giving both of a pair is a definition error."""
    with pytest.raises(DefinitionError):
        StateMachine({"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, **fields}}})


def test_item_batcher_paths_may_read_variables():
    """workflow-variables.html: a JSONPath field ending in Path may reference a variable, e.g.
    ItemBatcher's MaxItemsPerBatchPath "$batchSize"."""
    inner = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
             "StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}
    result = run({"A": {"Type": "Pass", "Assign": {"b": 2}, "Next": "M"},
                  "M": {"Type": "Map", "ItemBatcher": {"MaxItemsPerBatchPath": "$b"}, "ItemProcessor": inner,
                        "End": True}}, [1, 2, 3])
    assert result.output == [{"Items": [1, 2]}, {"Items": [3]}]


def test_a_missing_parameters_path_cause_matches_aws():
    """amazon-states-language-paths.html; the cause as AWS records it (AWS Step Functions workshop,
    "Check Address"): prefix, path, field, and the input as compact JSON."""
    result = passes({"address.$": "$.application.address"}, {"flagged": False})
    assert result.cause == at("P", "The JSONPath '$.application.address' specified for the field 'address.$' "
                                   "could not be found in the input '{\"flagged\":false}'")


def test_states_runtime_in_a_branch_fails_the_execution_without_state_failure_events():
    """concepts-error-handling.html (States.Runtime always fails the execution); history as AWS
    records it: ExecutionStarted, ParallelStateEntered, ParallelStateStarted, PassStateEntered,
    ExecutionFailed, with the cause naming the branch state."""
    branch = {"StartAt": "Fast", "States": {"Fast": {"Type": "Pass", "Parameters": {"m.$": "$.nope"}, "End": True}}}
    result = run({"P": {"Type": "Parallel", "Branches": [branch], "End": True}}, {"x": "a"})
    assert [e["type"] for e in result.history] == ["ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted",
                                                   "PassStateEntered", "ExecutionFailed"]
    assert result.cause == ("An error occurred while executing the state 'Fast' (entered at the event id #4). "
                            "The JSONPath '$.nope' specified for the field 'm.$' could not be found in the input "
                            "'{\"x\":\"a\"}'")


def test_previous_event_ids_chain_through_branches_and_iterations_as_aws_records():
    """apireference/API_HistoryEvent.html; the chain as recorded on AWS (us-east-1) for a
    one-branch Parallel then a two-item inline Map: a branch's first state follows
    ParallelStateStarted, each MapIterationStarted follows MapStateStarted, and the Parallel's /
    Map's Exited event follows what its Succeeded event followed."""
    result = run({"P": {"Type": "Parallel", "Next": "M",
                        "Branches": [{"StartAt": "A1", "States": {"A1": {"Type": "Pass", "End": True}}}]},
                  "M": {"Type": "Map", "ItemsPath": "$[0].items", "MaxConcurrency": 1, "End": True,
                        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "I1",
                                          "States": {"I1": {"Type": "Pass", "End": True}}}}},
                 {"items": [1, 2]})
    assert [e["type"] for e in result.history] == [
        "ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted", "PassStateEntered", "PassStateExited",
        "ParallelStateSucceeded", "ParallelStateExited", "MapStateEntered", "MapStateStarted", "MapIterationStarted",
        "PassStateEntered", "PassStateExited", "MapIterationSucceeded", "MapIterationStarted", "PassStateEntered",
        "PassStateExited", "MapIterationSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"]
    assert [e["previousEventId"] for e in result.history] == [0, 0, 2, 3, 4, 5, 5, 7, 8, 9, 10, 11, 12, 9, 14, 15, 16,
                                                              17, 17, 19]
    assert result.output == [1, 2]


# -- branch histories as AWS records them (GetExecutionHistory, us-east-1, via another emulator's
#    AWS-verified tests) ----------------------------------------------------------------------

def test_a_choice_without_a_match_or_default_fails_with_states_runtime():
    """state-choice.html names States.NoChoiceMatched, but AWS records States.Runtime with the cause
    "Failed to transition out of the state. The state does not point to a next state."."""
    result = run({"C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "never", "Next": "D"}]},
                  "D": {"Type": "Pass", "End": True}}, {"x": "a"})
    assert [e["type"] for e in result.history] == ["ExecutionStarted", "ChoiceStateEntered", "ExecutionFailed"]
    assert (result.error, result.cause) == ("States.Runtime", at(
        "C", "Failed to transition out of the state. The state does not point to a next state."))


def test_a_fail_state_in_a_branch_leaves_a_detail_free_parallel_state_failed():
    """A Fail in a branch: FailStateEntered, ParallelStateFailed (no details), ExecutionFailed with
    the Fail state's own error and cause."""
    branch = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "MyError", "Cause": "my cause"}}}
    result = run({"P": {"Type": "Parallel", "Branches": [branch], "End": True}}, {"x": "a"})
    types = [e["type"] for e in result.history]
    assert types == ["ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted", "FailStateEntered",
                     "ParallelStateFailed", "ExecutionFailed"]
    assert [e["previousEventId"] for e in result.history] == [0, 0, 2, 3, 4, 5]
    assert set(result.history[4]) == {"id", "previousEventId", "timestamp", "type"}
    assert (result.error, result.cause) == ("MyError", "my cause")


def test_a_failed_map_iteration_is_passed_by_and_evaluation_failed_carries_the_prefixed_cause():
    """An inline Map iteration failing on a JSONata undefined: EvaluationFailed (cause with the
    state prefix, location), MapIterationFailed, MapStateFailed pointing at the same event as
    MapIterationFailed, ExecutionFailed."""
    result = run({"M": {"Type": "Map", "Items": "{% $states.input.items %}", "MaxConcurrency": 1, "End": True,
                        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Undef", "States": {
                            "Undef": {"Type": "Pass", "Output": {"v": "{% $states.input.missing %}"}, "End": True}}}}},
                 {"items": [1, 2]}, QueryLanguage="JSONata")
    assert [e["type"] for e in result.history] == [
        "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapIterationStarted", "PassStateEntered",
        "EvaluationFailed", "MapIterationFailed", "MapStateFailed", "ExecutionFailed"]
    assert [e["previousEventId"] for e in result.history] == [0, 0, 2, 3, 4, 5, 6, 6, 8]
    cause = ("An error occurred while executing the state 'Undef' (entered at the event id #5). The JSONata "
             "expression '$states.input.missing' specified for the field 'Output/v' returned nothing (undefined).")
    assert result.history[5]["evaluationFailedEventDetails"] == {
        "state": "Undef", "error": "States.QueryEvaluationError", "cause": cause, "location": "Output/v"}
    assert result.cause == cause


def test_a_task_failure_ending_a_branch_is_recorded_as_aborted():
    """A Task whose (uncaught) failure ends its branch: TaskFailed, TaskStateAborted (no details,
    passed by), ParallelStateFailed, then the Parallel's Catch: ParallelStateExited."""
    fns = FunctionTable(f=fails_with("MyError", "nope"))
    branch = {"StartAt": "Send", "States": {"Send": {"Type": "Task", "Resource": LAMBDA_INVOKE,
                                                     "Parameters": {"FunctionName": "f"}, "End": True}}}
    result = run({"P": {"Type": "Parallel", "Branches": [branch], "End": True,
                        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}]},
                  "Handled": {"Type": "Pass", "End": True}}, {"x": "a"}, fns)
    assert [e["type"] for e in result.history] == [
        "ExecutionStarted", "ParallelStateEntered", "ParallelStateStarted", "TaskStateEntered", "TaskScheduled",
        "TaskStarted", "TaskFailed", "TaskStateAborted", "ParallelStateFailed", "ParallelStateExited",
        "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]
    assert [e["previousEventId"] for e in result.history] == [0, 0, 2, 3, 4, 5, 6, 7, 7, 9, 10, 11, 12]


def test_a_distributed_map_exits_from_its_map_run_started_event():
    """Distributed Map: MapStateStarted, MapRunStarted, MapRunSucceeded, MapStateSucceeded, and
    MapStateExited pointing at MapRunStarted (both Succeeded events are passed by)."""
    inner = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
             "StartAt": "I1", "States": {"I1": {"Type": "Pass", "End": True}}}
    result = run({"D": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": inner, "End": True}}, {"items": [1, 2]})
    assert [e["type"] for e in result.history] == [
        "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapRunStarted", "MapRunSucceeded",
        "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"]
    assert [e["previousEventId"] for e in result.history] == [0, 0, 2, 3, 4, 5, 4, 7]


def test_an_index_past_the_end_is_null_in_a_template_but_missing_as_an_intrinsic_argument():
    """amazon-states-language-paths.html; as recorded on AWS (us-east-1): "idx.$": "$.items[5]"
    resolves to null and the state succeeds, while the same path as an intrinsic argument fails
    with States.Runtime, the cause naming the call as written and the argument."""
    assert passes({"idx.$": "$.items[5]"}, {"items": [1, 2]}).output == {"idx": None}
    result = passes({"v.$": "States.Format('{}', $.items[5])"}, {"items": [1, 2]})
    assert (result.error, result.cause) == ("States.Runtime", at(
        "P", "The function 'States.Format('{}', $.items[5])' had the following error: The JsonPath argument for "
             "the field '$.items[5]' could not be found in the input '{\"items\":[1,2]}'"))
    assert passes({"v.$": "States.Format('{}', $.nul)"}, {"nul": None}).output == {"v": "null"}


def test_a_missing_fail_error_path_names_the_field():
    """state-fail.html: ErrorPath/CausePath are paths; a missing one is States.Runtime whose cause
    names the field ('ErrorPath'), like any missing path."""
    result = run({"Boom": {"Type": "Fail", "ErrorPath": "$.nope"}}, {"other": 1})
    assert (result.error, result.cause) == ("States.Runtime", at(
        "Boom", "The JSONPath '$.nope' specified for the field 'ErrorPath' could not be found in the input "
                "'{\"other\":1}'"))


def test_a_machine_without_a_terminal_state_is_rejected():
    """states-language.net (a state machine ends at a terminal state: End, Succeed or Fail); AWS
    rejects a definition none of whose states can end it (MISSING_END_STATE)."""
    with pytest.raises(DefinitionError):
        StateMachine({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}})


@pytest.mark.parametrize("call", ["States.JsonMerge($.a, $.b, 0)", "States.JsonMerge($.l, $.b, false)",
                                  "States.JsonMerge($.a, $.b, true)"])
def test_json_merge_takes_two_objects_and_false(call):
    """intrinsic-functions.html (States.JsonMerge): two JSON objects and a boolean, which must be
    false (Step Functions merges shallowly only)."""
    result = passes({"v.$": call}, {"a": {"x": 1}, "b": {"y": 2}, "l": [1]})
    assert result.error == "States.IntrinsicFailure"


@pytest.mark.parametrize("result_path,data", [("$.x", "just-a-string"), ("$.a.b.c", {"a": {"b": 1}}),
                                              ("$.l[5]", {"l": [0]})])
def test_a_result_path_that_does_not_fit_the_input_is_a_catchable_match_failure(result_path, data):
    """concepts-error-handling.html: States.ResultPathMatchFailure when a ResultPath cannot be
    applied to the state's input (a field of a non-object, an index outside an array); like any
    error other than States.Runtime it can be caught."""
    failed = run({"P": {"Type": "Pass", "Result": 1, "ResultPath": result_path, "End": True}}, data)
    assert failed.error == "States.ResultPathMatchFailure"
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}
    caught = run({"P": {"Type": "Parallel", "Branches": [branch], "ResultPath": result_path, "End": True,
                        "Catch": [{"ErrorEquals": ["States.ResultPathMatchFailure"], "Next": "R"}]},
                  "R": {"Type": "Pass", "End": True}}, data)
    assert caught.status == "SUCCEEDED"
    assert run({"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.new.deep", "End": True}}, {}).output == \
        {"new": {"deep": 1}}
