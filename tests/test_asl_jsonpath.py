"""Conformance: the JSONPath query language's documented behaviour, one test per rule.

Each class of differences measured against AWS (issue 12) has its tests here; the page is cited
in each docstring (base: https://docs.aws.amazon.com/step-functions/latest/dg/).
"""

from __future__ import annotations

import base64
import re

import pytest

from emulator.contracts import aws
from emulator.contracts.lambdas import FunctionConfig
from emulator.lambda_runtime.service import LambdaService
from emulator.stepfunctions import DefinitionError, StateMachine, VirtualClock
from tests.asl_helpers import LAMBDA_INVOKE, FunctionTable, fails_with, lambda_task, run


def passes(parameters, data):
    return run({"P": {"Type": "Pass", "Parameters": parameters, "End": True}}, data)


# -- wildcards, slices, filters ------------------------------------------------------------

def test_a_wildcard_on_a_missing_path_is_an_empty_array():
    """amazon-states-language-paths.html: an indefinite path yields an array; nothing matched is []."""
    assert passes({"v.$": "$.items[*]"}, {}).output == {"v": []}
    assert passes({"v.$": "$.items[*].id"}, {"items": [{"id": 1}, {"x": 2}]}).output == {"v": [1]}


def test_filter_expressions():
    """amazon-states-language-paths.html: JsonPath filters such as $.users[?(@.status == 0)]."""
    data = {"users": [{"n": "a", "status": 0}, {"n": "b", "status": 1}, {"n": "c", "status": 0}]}
    assert passes({"v.$": "$.users[?(@.status == 0)].n"}, data).output == {"v": ["a", "c"]}


def test_slices_and_deep_scan():
    """amazon-states-language-paths.html: slices [a:b] and deep scan .. select several values."""
    data = {"a": [1, 2, 3, 4], "x": {"y": {"id": 1}, "z": [{"id": 2}]}}
    assert passes({"s.$": "$.a[1:3]", "d.$": "$..id"}, data).output == {"s": [2, 3], "d": [1, 2]}


def test_a_missing_definite_path_is_a_runtime_error():
    """amazon-states-language-paths.html: a definite path that is not in the input fails with States.Runtime; the cause
    names the path and the field."""
    result = passes({"v.$": "$.nope"}, {"a": 1})
    assert result.status == "FAILED" and result.error == "States.Runtime"
    assert result.cause == ("An error occurred while executing the state 'P' (entered at the event id #2). "
                            "The JSONPath '$.nope' specified for the field 'v.$' could not be found in the input '{\"a\":1}'")


def test_history_carries_compact_json_and_assigned_variables():
    """API_HistoryEvent.html (StateEnteredEventDetails, StateExitedEventDetails): input/output as JSON text,
    assignedVariables with each value as JSON text."""
    result = run({"P": {"Type": "Pass", "Assign": {"x": {"k": [1, 2]}}, "End": True}}, {"a": [1, 2]})
    entered = result.history[1]["stateEnteredEventDetails"]
    exited = result.history[2]["stateExitedEventDetails"]
    assert entered["input"] == '{"a":[1,2]}' and exited["output"] == '{"a":[1,2]}'
    assert exited["assignedVariables"] == {"x": '{"k":[1,2]}'}


@pytest.mark.parametrize("value, expected", [("2024-01-01T00:00:00Z", True), ("2024-01-01T00:00:00.123456789+01:00", True),
                                             ("2024-01-01", False), ("2024-01-01T00:00:00", False), ("2024-01-01 00:00:00Z", False)])
def test_is_timestamp_takes_rfc_3339_with_t_and_zone(value, expected):
    """state-choice.html: timestamps conform to RFC 3339 (uppercase T, a zone); IsTimestamp tests that form."""
    result = run({"C": {"Type": "Choice", "Choices": [{"Variable": "$.t", "IsTimestamp": True, "Next": "Yes"}], "Default": "No"},
                  "Yes": {"Type": "Pass", "Result": True, "End": True}, "No": {"Type": "Pass", "Result": False, "End": True}},
                 {"t": value})
    assert result.output is expected


def test_lambda_error_cause_is_the_function_error_body():
    """connect-lambda.html / concepts-error-handling.html: the error is the function's errorType and the cause its
    error body {"errorMessage", "errorType", "stackTrace"}."""
    result = run({"T": lambda_task(End=True)}, {}, FunctionTable(f=fails_with("ValueError", "bad value")))
    assert result.error == "ValueError"
    assert result.cause == '{"errorMessage": "bad value", "errorType": "ValueError", "stackTrace": []}'


# -- lambda:invoke payload and result shapes -------------------------------------------------

def invoke(params, fn=lambda p: p, data=None):
    fns = FunctionTable(f=fn)
    result = run({"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f", **params}, "End": True}},
                 data if data is not None else {"in": 1}, fns)
    return result, fns


def test_a_string_payload_is_sent_verbatim():
    """connect-lambda.html: Payload is the request body; a JSON string is passed as it is, not re-encoded."""
    _, fns = invoke({"Payload": '{"a": [1, 2]}'})
    assert fns.calls == [("f", {"a": [1, 2]})]


def test_a_null_or_missing_payload_reaches_the_function_as_an_empty_object():
    """connect-lambda.html: without a Payload the function gets {}."""
    _, with_null = invoke({"Payload": None})
    _, without = invoke({})
    assert with_null.calls == [("f", {})] and without.calls == [("f", {})]


def test_the_invoke_result_has_aws_key_names_and_casing():
    """connect-lambda.html: the result is the Invoke response: ExecutedVersion, Payload, SdkHttpMetadata
    (AllHttpHeaders, HttpHeaders, HttpStatusCode), SdkResponseMetadata (RequestId), StatusCode."""
    result, _ = invoke({"Payload.$": "$"})
    out = result.output
    assert set(out) == {"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"}
    assert out["SdkHttpMetadata"]["HttpStatusCode"] == 200 and set(out["SdkHttpMetadata"]) == {"AllHttpHeaders", "HttpHeaders", "HttpStatusCode"}
    assert re.fullmatch(r"[0-9a-f-]{36}", out["SdkResponseMetadata"]["RequestId"])
    assert out["SdkHttpMetadata"]["HttpHeaders"]["x-amzn-RequestId"] == out["SdkResponseMetadata"]["RequestId"]
    assert out["Payload"] == {"in": 1} and out["StatusCode"] == 200 and out["ExecutedVersion"] == "$LATEST"


def test_log_type_tail_adds_log_result_from_the_function_log():
    """connect-lambda.html / Lambda Invoke API: LogType Tail returns the last 4 KB of the execution log, base64, as
    LogResult; the RequestId is the invocation's. Runs the real Lambda runtime emulator."""
    config = FunctionConfig(name="echo", handler="tests.lambda_test_handlers.echo", environment={}, timeout_s=10)
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "End": True, "Parameters": {
        "FunctionName": "echo", "Payload": {"n": 7}, "LogType": "Tail"}}}}
    with LambdaService([config]) as service:
        out = StateMachine(definition).execute({}, invoker=service).output
    log = base64.b64decode(out["LogResult"]).decode()
    assert "echo got {'n': 7}" in log and f"END RequestId: {out['SdkResponseMetadata']['RequestId']}" in log
    assert len(log.encode()) <= 4096


# -- States.Runtime is never caught ----------------------------------------------------------

def test_a_catch_does_not_catch_states_runtime_from_output_path():
    """concepts-error-handling.html: States.Runtime is not retriable and always fails the execution, even with a
    Catch on States.ALL."""
    result = run({"T": lambda_task(OutputPath="$.nope", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "D"}],
                                   Retry=[{"ErrorEquals": ["States.ALL"]}], End=True),
                  "D": {"Type": "Succeed"}}, {}, FunctionTable(f=lambda p: 1))
    assert result.status == "FAILED" and result.error == "States.Runtime"
    assert sum(e["type"] == "TaskScheduled" for e in result.history) == 1


# -- Fail ---------------------------------------------------------------------------------

def test_fail_error_path_and_cause_path_take_intrinsics_and_context_paths():
    """state-fail.html: ErrorPath and CausePath take a path, a context path ($$) or an intrinsic function."""
    result = StateMachine({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "States.Format('E{}', $.code)",
                                                            "CausePath": "$$.Execution.Name"}}}).execute(
        {"code": 7}, invoker=FunctionTable(), name="exec-9")
    assert (result.error, result.cause) == ("E7", "exec-9")


def test_fail_without_error_and_cause_gives_neither():
    """state-fail.html: Error and Cause are optional; without them the failure has no error and no cause."""
    result = run({"F": {"Type": "Fail"}})
    assert result.status == "FAILED" and result.error is None and result.cause is None
    failed = result.history[-1]
    assert failed["type"] == "ExecutionFailed" and failed["executionFailedEventDetails"] == {}


def test_fail_paths_must_resolve_to_strings():
    """state-fail.html: the reference path must select a field that contains a string value."""
    result = run({"F": {"Type": "Fail", "ErrorPath": "$.e"}}, {"e": {"not": "a string"}})
    assert result.status == "FAILED" and result.error == "States.Runtime"


def test_fail_paths_accept_only_string_intrinsics():
    """state-fail.html: CausePath intrinsics: States.Format, JsonToString, ArrayGetItem, Base64Encode/Decode, Hash, UUID."""
    with pytest.raises(DefinitionError, match=r"state 'F': field 'CausePath'"):
        StateMachine({"StartAt": "F", "States": {"F": {"Type": "Fail", "CausePath": "States.ArrayLength($.a)"}}})


# -- Map and Parallel retry history ----------------------------------------------------------

def test_parallel_retried_records_one_failed_event():
    """concepts-error-handling.html / API_HistoryEvent: a retried Parallel records ParallelStateStarted per attempt
    and ParallelStateFailed once, when it finally fails."""
    branch = {"StartAt": "B", "States": {"B": lambda_task(End=True)}}
    result = run({"Par": {"Type": "Parallel", "Branches": [branch], "Retry": [{"ErrorEquals": ["Bad"], "MaxAttempts": 2}], "End": True}},
                 {}, FunctionTable(f=fails_with("Bad")))
    types = [e["type"] for e in result.history]
    assert types.count("ParallelStateStarted") == 3 and types.count("ParallelStateFailed") == 1


def test_a_failed_branch_stops_the_other_branches():
    """state-parallel.html: if any branch fails, the Parallel state fails and all of its branches are stopped."""
    slow = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "Later"},
                                       "Later": {"Type": "Pass", "Next": "Last"}, "Last": {"Type": "Pass", "End": True}}}
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom"}}}
    result = StateMachine({"StartAt": "Par", "States": {"Par": {"Type": "Parallel", "Branches": [slow, failing], "End": True}}}).execute(
        {}, invoker=FunctionTable())
    assert result.error == "Boom"
    assert not any(e.get("stateEnteredEventDetails", {}).get("name") == "Last" for e in result.history)


def test_a_failed_inline_map_iteration_stops_the_others():
    """state-map-inline.html / API_HistoryEvent: when an iteration fails the Map fails; the iterations still running
    stop (MapIterationAborted)."""
    processor = {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.w", "Next": "C"},
                                            "C": {"Type": "Choice", "Choices": [{"Variable": "$.bad", "BooleanEquals": True, "Next": "F"}],
                                                  "Default": "After"},
                                            "F": {"Type": "Fail", "Error": "Bad"}, "After": {"Type": "Pass", "End": True}}}
    result = StateMachine({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}}).execute(
        [{"w": 1, "bad": True}, {"w": 2, "bad": False}], invoker=FunctionTable())
    assert result.error == "Bad"
    types = [e["type"] for e in result.history]
    assert "MapIterationAborted" in types and "MapIterationSucceeded" not in types


def test_map_retried_records_one_failed_event():
    """concepts-error-handling.html / API_HistoryEvent: a retried Map records MapStateFailed once."""
    processor = {"StartAt": "B", "States": {"B": lambda_task(End=True)}}
    result = run({"M": {"Type": "Map", "ItemProcessor": processor, "Retry": [{"ErrorEquals": ["Bad"], "MaxAttempts": 1}], "End": True}},
                 [1], FunctionTable(f=fails_with("Bad")))
    types = [e["type"] for e in result.history]
    assert types.count("MapStateStarted") == 2 and types.count("MapStateFailed") == 1


# -- Wait -----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [{"s": 1.5}, {"s": -1}, {"s": "10"}, {"s": aws.MAX_WAIT_SECONDS + 1}])
def test_wait_seconds_path_must_be_a_whole_number_in_range(data):
    """state-wait.html: Seconds is an integer from 0 to 99999999; a SecondsPath giving anything else fails."""
    result = run({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}, data)
    assert result.status == "FAILED" and result.error == "States.Runtime"


@pytest.mark.parametrize("stamp", ["2024-01-01 00:00:00Z", "2024-01-01T00:00:00", "2024-01-01"])
def test_wait_timestamp_path_needs_t_and_zone(stamp):
    """state-wait.html: timestamps are RFC 3339 with an uppercase T and a zone (Z or an offset)."""
    result = run({"W": {"Type": "Wait", "TimestampPath": "$.t", "End": True}}, {"t": stamp})
    assert result.status == "FAILED" and result.error == "States.Runtime"


def test_wait_timestamp_in_the_past_and_in_range():
    """state-wait.html: a timestamp in the past does not wait."""
    clock = VirtualClock()
    result = StateMachine({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.t", "End": True}}}).execute(
        {"t": "2001-01-01T00:00:00.5+02:00"}, invoker=FunctionTable(), clock=clock)
    assert result.status == "SUCCEEDED" and clock.sleeps == [0.0]


def test_wait_timestamp_more_than_a_year_away_fails():
    """service-quotas.html: a Standard execution lasts at most a year; a Wait past that fails."""
    result = run({"W": {"Type": "Wait", "TimestampPath": "$.t", "End": True}}, {"t": "2099-01-01T00:00:00Z"})
    assert result.status == "FAILED" and result.error == "States.Runtime"


@pytest.mark.parametrize("field, value", [("Timestamp", "2024-01-01 00:00:00"), ("Timestamp", "2024-01-01T00:00:00"),
                                          ("Seconds", -1), ("Seconds", 1.5), ("Seconds", aws.MAX_WAIT_SECONDS + 1)])
def test_wait_literal_fields_are_checked_when_the_definition_is_created(field, value):
    """state-wait.html: a literal Seconds or Timestamp of the wrong form is rejected up front."""
    with pytest.raises(DefinitionError, match=rf"state 'W': field '{field}'"):
        StateMachine({"StartAt": "W", "States": {"W": {"Type": "Wait", field: value, "End": True}}})


# -- intrinsics -----------------------------------------------------------------------------

def test_format_renders_objects_and_arrays_as_aws_does():
    """intrinsic-functions.html: States.Format renders a JSON object argument as {key=value, ...}."""
    out = passes({"v.$": "States.Format('{} and {} and {}', $.o, $.a, $.s)"}, {"o": {"Arg1": 1, "Arg2": []}, "a": [1, "x"], "s": "t"}).output
    assert out == {"v": "{Arg1=1, Arg2=[]} and [1, x] and t"}


def test_format_escaped_braces_are_literal():
    """intrinsic-functions.html: \\{ and \\} are literal braces, not placeholders."""
    assert passes({"v.$": "States.Format('\\{{}\\}', $.x)"}, {"x": 5}).output == {"v": "{5}"}


def test_math_add_rounds_half_up():
    """intrinsic-functions.html: States.MathAdd adds integers; decimal arguments are rounded (half up)."""
    assert passes({"a.$": "States.MathAdd(1.5, 2.4)", "b.$": "States.MathAdd(-1.5, 0)"}, {}).output == {"a": 4, "b": -1}


def test_string_to_json_of_an_empty_string_is_null():
    """intrinsic-functions.html: States.StringToJson('') is null."""
    assert passes({"v.$": "States.StringToJson('')"}, {}).output == {"v": None}


@pytest.mark.parametrize("call", ["States.ArrayGetItem($.a, 5)", "States.ArrayGetItem($.a, -1)",
                                  "States.Base64Encode($.long)", "States.Hash($.long, 'MD5')", "States.Base64Decode('***')"])
def test_intrinsic_argument_limits_fail_with_intrinsic_failure(call):
    """intrinsic-functions.html: ArrayGetItem needs an index in the array; Base64Encode/Decode and Hash take at most
    10,000 characters; a failing intrinsic is States.IntrinsicFailure."""
    result = passes({"v.$": call}, {"a": [1, 2], "long": "x" * 10_001})
    assert result.status == "FAILED" and result.error == "States.IntrinsicFailure"


@pytest.mark.parametrize("text", ["States.Format('bad \\q escape')", "States.Nope(1)", "States.Format('unterminated)"])
def test_intrinsic_syntax_and_escapes_are_checked_when_the_definition_is_created(text):
    """intrinsic-functions.html: only \\' \\{ \\} \\\\ are escapes; unknown functions and bad syntax are definition errors."""
    with pytest.raises(DefinitionError, match=r"state 'P': field 'Parameters'"):
        StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"v.$": text}, "End": True}}})


# -- the 256 KiB payload quota ----------------------------------------------------------------

BIG = "x" * (aws.MAX_PAYLOAD_BYTES + 1)


def test_state_output_over_the_quota_fails_with_data_limit_exceeded():
    """service-quotas.html / concepts-error-handling.html: a state output over 256 KiB fails with States.DataLimitExceeded."""
    result = run({"T": lambda_task(End=True)}, {}, FunctionTable(f=lambda p: BIG))
    assert result.status == "FAILED" and result.error == "States.DataLimitExceeded"
    assert result.cause == ("The state/task 'T' returned a result with a size exceeding the maximum number of bytes "
                            "service limit.")


def test_task_input_over_the_quota_after_parameters_fails():
    """concepts-error-handling.html: States.DataLimitExceeded when a state's input is over the quota after Parameters."""
    fns = FunctionTable(f=lambda p: 1)
    result = run({"T": {"Type": "Task", "Resource": LAMBDA_INVOKE, "End": True,
                        "Parameters": {"FunctionName": "f", "Payload": {"a.$": "$.s", "b.$": "$.s"}}}}, {"s": "x" * 140_000}, fns)
    assert result.status == "FAILED" and result.error == "States.DataLimitExceeded" and fns.calls == []


def test_data_limit_exceeded_is_caught_only_when_named():
    """concepts-error-handling.html: States.ALL does not catch States.DataLimitExceeded; naming it does."""
    states = lambda errors: {"T": lambda_task(Catch=[{"ErrorEquals": errors, "Next": "D"}], End=True), "D": {"Type": "Succeed"}}
    fns = FunctionTable(f=lambda p: BIG)
    assert run(states(["States.ALL"]), {}, fns).status == "FAILED"
    assert run(states(["States.DataLimitExceeded"]), {}, fns).status == "SUCCEEDED"


def test_execution_input_over_the_quota_fails():
    """service-quotas.html: execution input is limited to 256 KiB."""
    result = run({"P": {"Type": "Pass", "End": True}}, {"s": BIG})
    assert result.status == "FAILED" and result.error == "States.DataLimitExceeded"


def test_map_output_over_the_quota_fails():
    """service-quotas.html: a Map's output is a state output and obeys the quota."""
    result = run({"M": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "y" * 100_000, "End": True}}},
                        "End": True}}, [1, 2, 3])
    assert result.status == "FAILED" and result.error == "States.DataLimitExceeded"


# -- context object, timeouts -----------------------------------------------------------------

def test_context_timestamps_have_milliseconds_and_redrive_count():
    """input-output-contextobject.html: EnteredTime/StartTime like 2019-03-26T20:14:13.192Z; Execution.RedriveCount."""
    out = passes({"s.$": "$$.Execution.StartTime", "e.$": "$$.State.EnteredTime", "r.$": "$$.Execution.RedriveCount"}, {}).output
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["s"]) and re.fullmatch(r".*\.\d{3}Z", out["e"])
    assert out["r"] == 0


def test_a_timeout_has_no_cause():
    """state-task.html / statemachine-structure.html: a Task or execution timeout is States.Timeout without a cause."""
    import time

    def slow(_):
        time.sleep(1.5)
        return 1

    task_result = StateMachine({"StartAt": "T", "States": {"T": lambda_task(TimeoutSeconds=1, End=True)}}).execute(
        {}, invoker=FunctionTable(f=slow))
    machine_result = run({"W": {"Type": "Wait", "Seconds": 100, "End": True}}, {}, TimeoutSeconds=10)
    assert task_result.error == "States.Timeout" and not task_result.cause
    assert machine_result.status == "TIMED_OUT" and machine_result.error == "States.Timeout" and not machine_result.cause
    assert "cause" not in machine_result.history[-1]["executionTimedOutEventDetails"]


# -- robustness: errors, never crashes ----------------------------------------------------------

def test_result_path_indexing_into_an_object_is_a_result_path_match_failure():
    """concepts-error-handling.html: States.ResultPathMatchFailure, "a state's ResultPath field cannot be
    applied to the input the state received"."""
    result = run({"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.a[0]", "End": True}}, {"a": {"k": 1}})
    assert result.status == "FAILED" and result.error == "States.ResultPathMatchFailure"


def test_a_string_timeout_seconds_path_is_a_runtime_error():
    """state-task.html: TimeoutSecondsPath must give a positive integer."""
    result = run({"T": lambda_task(TimeoutSecondsPath="$.t", End=True)}, {"t": "10"}, FunctionTable(f=lambda p: 1))
    assert result.status == "FAILED" and result.error == "States.Runtime"


@pytest.mark.parametrize("retrier", [{"IntervalSeconds": "1"}, {"IntervalSeconds": 0}, {"MaxAttempts": "2"},
                                     {"BackoffRate": "2"}, {"MaxDelaySeconds": 1.5}])
def test_retrier_field_types_are_checked_when_the_definition_is_created(retrier):
    """concepts-error-handling.html: IntervalSeconds and MaxDelaySeconds are positive integers, MaxAttempts a
    non-negative integer, BackoffRate a number >= 1."""
    with pytest.raises(DefinitionError, match=r"state 'T': field 'Retry\[0\]'"):
        StateMachine({"StartAt": "T", "States": {"T": lambda_task(Retry=[{"ErrorEquals": ["States.ALL"], **retrier}], End=True)}})


def test_result_path_must_be_a_reference_path():
    """input-output-resultpath.html: ResultPath is a reference path (no wildcards, filters or $$)."""
    for path in ("$.a[*]", "$$.Execution", "$..a"):
        with pytest.raises(DefinitionError, match=r"state 'P': field 'ResultPath'"):
            StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": path, "End": True}}})


@pytest.mark.parametrize("state", [
    {"Type": "Pass", "Next": ["Z"]}, {"Type": "Pass", "Next": {}}, {"Type": "Pass", "End": "yes"},
    {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": True, "End": True},
    {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f"}, "Retry": 1, "End": True},
    {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f"}, "Catch": {}, "End": True},
    {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "Z"}], "Default": {}},
    {"Type": "Map", "ItemProcessor": ["x"], "End": True},
])
def test_malformed_definitions_are_definition_errors_not_crashes(state):
    """statemachine-structure.html: field types are part of the definition; a wrong one is reported, never a crash."""
    with pytest.raises(DefinitionError, match=r"state 'A': field"):
        StateMachine({"StartAt": "A", "States": {"A": state, "Z": {"Type": "Succeed"}}})


# -- unsupported features: rejected up front, naming state and field ------------------------------

@pytest.mark.parametrize("state, field", [
    ({"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True}, "Resource"),
    ({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "End": True}, "Resource"),
    ({"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f"}, "Credentials": {"RoleArn": "r"}, "End": True}, "Credentials"),
])
def test_unsupported_features_are_rejected_naming_state_and_field(state, field):
    """docs/stepfunctions.md lists what the engine does not run; each is a definition error naming state and field."""
    with pytest.raises(DefinitionError, match=rf"state 'X': field '{field}'"):
        StateMachine({"StartAt": "X", "States": {"X": state}})
