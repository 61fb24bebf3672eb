"""The ASL engine on its own: states, paths, intrinsics, Retry/Catch, timeouts, Map modes, ResultWriter."""

from __future__ import annotations

import json
import random
import time

import pytest

from emulator.contracts.job import placeholder_substitutions
from emulator.contracts.lambdas import LambdaFunctionError
from emulator.pipeline import DEFINITION_PATH
from emulator.stepfunctions import DefinitionError, StateMachine, VirtualClock
from tests.asl_helpers import FunctionTable, fails_with


def machine(states, start=None, **top):
    return StateMachine({"StartAt": start or next(iter(states)), "States": states, **top})


def task(fn="f", **kw):
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": fn, "Payload.$": "$"}, **kw}


# -- data flow ---------------------------------------------------------------------

def test_paths_parameters_result_selector_and_output():
    fns = FunctionTable(f=lambda p: {"doubled": p["x"] * 2})
    sm = machine({
        "Prep": {"Type": "Pass", "Parameters": {"x.$": "$.input.value", "tag": "t", "name.$": "$$.Execution.Name"},
                 "ResultPath": "$.prepared", "Next": "Call"},
        "Call": {**task(), "InputPath": "$.prepared", "Parameters": {"FunctionName": "f", "Payload.$": "$"},
                 "ResultSelector": {"value.$": "$.Payload.doubled"}, "ResultPath": "$.result",
                 "OutputPath": "$.result", "End": True},
    })
    result = sm.execute({"input": {"value": 21}}, invoker=fns, name="exec-1")
    assert result.status == "SUCCEEDED" and result.output == {"value": 42}
    assert fns.calls == [("f", {"x": 21, "tag": "t", "name": "exec-1"})]


def test_direct_lambda_arn_returns_raw_output_and_history_names_events():
    fns = FunctionTable(f=lambda p: {"ok": True})
    sm = machine({"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": True}})
    result = sm.execute({}, invoker=fns)
    assert result.output == {"ok": True}
    types = [e["type"] for e in result.history]
    assert types == ["ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
                     "LambdaFunctionSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert all(e["previousEventId"] == (0 if e["id"] == 2 else e["id"] - 1) for e in result.history)


def test_intrinsics_in_parameters():
    sm = machine({"P": {"Type": "Pass", "Parameters": {
        "msg.$": "States.Format('{} has {} items', $.name, States.ArrayLength($.items))",
        "chunks.$": "States.ArrayPartition($.items, 2)",
        "json.$": "States.JsonToString($.obj)", "back.$": "States.StringToJson('{\"a\":1}')",
        "sum.$": "States.MathAdd($.n, 5)", "has.$": "States.ArrayContains($.items, 3)",
        "hash.$": "States.Hash('abc', 'SHA-256')", "b64.$": "States.Base64Encode('hi')",
    }, "End": True}})
    out = sm.execute({"name": "job", "items": [1, 2, 3], "obj": {"k": [1]}, "n": 1}, invoker=FunctionTable()).output
    assert out["msg"] == "job has 3 items" and out["chunks"] == [[1, 2], [3]]
    assert out["json"] == '{"k":[1]}' and out["back"] == {"a": 1} and out["sum"] == 6 and out["has"] is True
    assert out["hash"].startswith("ba7816bf") and out["b64"] == "aGk="


def test_choice_rules_and_no_match():
    sm = machine({
        "C": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.n", "NumericGreaterThan": 10}, {"Variable": "$.s", "StringMatches": "lo*"}], "Next": "Big"},
            {"Not": {"Variable": "$.flag", "IsPresent": True}, "Next": "NoFlag"},
            {"Variable": "$.n", "NumericEqualsPath": "$.m", "Next": "Same"},
        ]},
        "Big": {"Type": "Pass", "Result": "big", "End": True},
        "NoFlag": {"Type": "Pass", "Result": "noflag", "End": True},
        "Same": {"Type": "Pass", "Result": "same", "End": True},
    })
    run = lambda data: sm.execute(data, invoker=FunctionTable())
    assert run({"n": 11, "s": "long", "flag": 1}).output == "big"
    assert run({"n": 1, "s": "x"}).output == "noflag"
    assert run({"n": 2, "m": 2, "s": "x", "flag": 1}).output == "same"
    failed = run({"n": 2, "m": 3, "s": "x", "flag": 1})
    # AWS records States.Runtime ("Failed to transition out of the state..."), not States.NoChoiceMatched.
    assert failed.status == "FAILED" and failed.error == "States.Runtime"


def test_fail_state_with_cause_path_and_succeed():
    sm = machine({"F": {"Type": "Fail", "Error": "Custom", "CausePath": "$.why"}})
    result = sm.execute({"why": "because"}, invoker=FunctionTable())
    assert (result.status, result.error, result.cause) == ("FAILED", "Custom", "because")


def test_wait_uses_the_clock():
    clock = VirtualClock()
    sm = machine({"W": {"Type": "Wait", "SecondsPath": "$.s", "Next": "D"}, "D": {"Type": "Succeed"}})
    assert sm.execute({"s": 30}, invoker=FunctionTable(), clock=clock).status == "SUCCEEDED"
    assert clock.sleeps == [30]


# -- Retry and Catch ---------------------------------------------------------------

def test_retry_backoff_cap_and_attempts():
    attempts = []

    def flaky(_):
        attempts.append(1)
        if len(attempts) < 4:
            raise LambdaFunctionError("Lambda.TooManyRequestsException", "slow down")
        return "ok"

    clock = VirtualClock()
    sm = machine({"T": {**task(), "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 2,
                                             "BackoffRate": 3, "MaxAttempts": 5, "MaxDelaySeconds": 10}], "End": True}})
    result = sm.execute({}, invoker=FunctionTable(f=flaky), clock=clock)
    assert result.status == "SUCCEEDED" and result.output["Payload"] == "ok"
    assert clock.sleeps == [2, 6, 10]  # 2*3^0, 2*3^1, 2*3^2=18 capped at 10


def test_retry_exhausted_then_catch_with_result_path():
    clock = VirtualClock()
    fns = FunctionTable(f=fails_with("ValueError", "bad partition"))
    sm = machine({
        "T": {**task(), "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2}],
              "Catch": [{"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Handled"}], "Next": "Never"},
        "Never": {"Type": "Fail", "Error": "X"},
        "Handled": {"Type": "Pass", "End": True},
    })
    result = sm.execute({"keep": 1}, invoker=fns, clock=clock)
    assert result.status == "SUCCEEDED" and len(fns.calls) == 3
    assert result.output["keep"] == 1 and result.output["error"]["Error"] == "ValueError"
    assert "bad partition" in result.output["error"]["Cause"]
    assert clock.sleeps == [1, 2]


def test_full_jitter_stays_within_the_backoff():
    clock = VirtualClock()
    sm = machine({"T": {**task(), "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 4, "MaxAttempts": 3,
                                             "BackoffRate": 2, "JitterStrategy": "FULL"}], "End": True}})
    sm.execute({}, invoker=FunctionTable(f=fails_with("E")), clock=clock, rng=random.Random(7))
    assert len(clock.sleeps) == 3 and all(0 <= s <= cap for s, cap in zip(clock.sleeps, [4, 8, 16]))
    assert len(set(clock.sleeps)) == 3


def test_task_failed_does_not_match_timeout():
    def slow(_):
        time.sleep(1.5)
        return "late"

    # TimeoutSeconds is a positive integer (https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html).
    sm = machine({"T": {**task(), "TimeoutSeconds": 1,
                        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}], "End": True},
                  "Caught": {"Type": "Succeed"}})
    result = sm.execute({}, invoker=FunctionTable(f=slow))
    assert result.status == "FAILED" and result.error == "States.Timeout"


def test_execution_timeout():
    sm = machine({"W": {"Type": "Wait", "Seconds": 30, "End": True}}, TimeoutSeconds=1)
    start = time.monotonic()
    result = sm.execute({}, invoker=FunctionTable())
    assert result.status == "TIMED_OUT" and time.monotonic() - start < 5
    assert result.history[-1]["type"] == "ExecutionTimedOut"


def test_parallel_branches():
    sm = machine({"P": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "End": True}}},
    ]}})
    assert sm.execute({}, invoker=FunctionTable()).output == [1, 2]


# -- Map -----------------------------------------------------------------------------

def inline_map(**kw):
    return {"Type": "Map", "End": True, "ItemProcessor": {"StartAt": "T", "States": {"T": {**task(), "OutputPath": "$.Payload", "End": True}}}, **kw}


def test_inline_map_item_selector_and_concurrency_limit():
    def slow_square(p):
        time.sleep(0.05)
        return p["v"] ** 2 + p["i"] * 0

    fns = FunctionTable(f=slow_square)
    sm = machine({"M": inline_map(ItemsPath="$.xs", MaxConcurrency=2,
                                  ItemSelector={"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"})})
    result = sm.execute({"xs": [1, 2, 3, 4, 5]}, invoker=fns)
    assert result.output == [1, 4, 9, 16, 25] and fns.max_in_flight == 2


def distributed(**kw):
    body = {"Type": "Map", "End": True, "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "T", "States": {"T": {**task(), "OutputPath": "$.Payload", "End": True}}}}
    body.update(kw)
    return body


def odd_fails(p):
    if p % 2:
        raise LambdaFunctionError("OddError", f"{p} is odd")
    return p


def test_distributed_map_tolerated_failures_below_and_above_threshold():
    items = {"xs": list(range(10))}  # 5 of 10 fail
    ok = machine({"M": distributed(ItemsPath="$.xs", ToleratedFailurePercentage=50)}).execute(items, invoker=FunctionTable(f=odd_fails))
    assert ok.status == "SUCCEEDED"
    assert ok.map_runs[0]["item_counts"]["failed"] == 5 and ok.map_runs[0]["item_counts"]["succeeded"] == 5
    over = machine({"M": distributed(ItemsPath="$.xs", ToleratedFailurePercentage=40)}).execute(items, invoker=FunctionTable(f=odd_fails))
    assert over.status == "FAILED" and over.error == "States.ExceedToleratedFailureThreshold"
    counted = machine({"M": distributed(ItemsPath="$.xs", ToleratedFailureCount=4)}).execute(items, invoker=FunctionTable(f=odd_fails))
    assert counted.status == "FAILED"
    none_tolerated = machine({"M": distributed(ItemsPath="$.xs")}).execute({"xs": [2, 3]}, invoker=FunctionTable(f=odd_fails))
    assert none_tolerated.status == "FAILED"
    types = [e["type"] for e in over.history]
    assert "MapRunStarted" in types and "MapRunFailed" in types


def test_distributed_map_reader_batcher_writer_on_real_s3(s3_server, bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="in/items.json", Body=json.dumps([{"n": i} for i in range(7)]).encode())

    def total(p):
        if any(item["n"] == 6 for item in p["Items"]):
            raise LambdaFunctionError("SixError", "no sixes")
        return sum(item["n"] for item in p["Items"]) + p["BatchInput"]["offset"]

    fns = FunctionTable(f=total)
    sm = machine({"M": distributed(
        ItemReader={"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.bucket", "Key": "in/items.json"}},
        ItemBatcher={"MaxItemsPerBatch": 3, "BatchInput": {"offset.$": "$.offset"}},
        MaxConcurrencyPath="$.conc", ToleratedFailureCount=1,
        ResultWriter={"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket.$": "$.bucket", "Prefix": "out"}},
    )})
    result = sm.execute({"bucket": bucket, "offset": 100, "conc": 1}, invoker=fns, s3_client=s3)
    assert result.status == "SUCCEEDED", result.cause
    assert fns.max_in_flight == 1 and len(fns.calls) == 3  # batches [0,1,2] [3,4,5] [6]
    details = result.output["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=details["Key"])["Body"].read())
    assert manifest["MapRunArn"] == result.output["MapRunArn"]
    succeeded = json.loads(s3.get_object(Bucket=bucket, Key=manifest["ResultFiles"]["SUCCEEDED"][0]["Key"])["Body"].read())
    failed = json.loads(s3.get_object(Bucket=bucket, Key=manifest["ResultFiles"]["FAILED"][0]["Key"])["Body"].read())
    assert sorted(json.loads(e["Output"]) for e in succeeded) == [103, 112]
    assert failed[0]["Error"] == "SixError" and json.loads(failed[0]["Input"])["Items"] == [{"n": 6}]


def test_item_reader_missing_object_fails_clearly(s3_server, bucket):
    sm = machine({"M": distributed(ItemReader={"Resource": "arn:aws:states:::s3:getObject",
                                               "Parameters": {"Bucket": bucket, "Key": "nope.json"}})})
    result = sm.execute({}, invoker=FunctionTable(), s3_client=s3_server.client())
    assert result.error == "States.ItemReaderFailed" and "nope.json" in result.cause


# -- the deployed definition -------------------------------------------------------------

def test_the_repository_definition_runs_and_fails_on_a_failed_rank(s3_server, bucket):
    s3 = s3_server.client()
    names = placeholder_substitutions()

    def initialize(event):
        items = [{"rank": r, "bucket": event["bucket"]} for r in range(3)]
        s3.put_object(Bucket=bucket, Key="job/assignment.json", Body=json.dumps(items).encode())
        return {"bucket": bucket, "assignment_key": "job/assignment.json", "max_concurrency": 0,
                "map_results_prefix": "job/map", "world_size": 3}

    def infer(event):
        if event["rank"] == 1:
            raise LambdaFunctionError("PartitionError", "rank 1 has a corrupt partition")
        return {"rank": event["rank"], "rows": 10, "result_key": f"job/{event['rank']}.json"}

    def summarize(event):
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=event["map_run"]["ResultWriterDetails"]["Key"])["Body"].read())
        failed = len(manifest["ResultFiles"]["FAILED"])
        return {"complete": failed == 0, "message": f"{failed} result file(s) of failed ranks"}

    fns = FunctionTable(**{"lambdatwin-initialize": initialize, "lambdatwin-worker": infer, "lambdatwin-summarize": summarize})
    sm = StateMachine(DEFINITION_PATH.read_text(), substitutions=names)
    result = sm.execute({"bucket": bucket}, invoker=fns, s3_client=s3)
    assert result.status == "FAILED" and result.error == "RanksFailed"
    assert result.cause == "1 result file(s) of failed ranks"
    assert [c[0] for c in fns.calls].count("lambdatwin-summarize") == 1


# -- definition errors --------------------------------------------------------------------

@pytest.mark.parametrize("definition, words", [
    ({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": True}}}, ["'A'", "'Type'", "Teleport"]),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}, ["'A'", "'Next'", "'B'"]),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}, ["'A'", "'Next'"]),
    ({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun.sync", "End": True}}}, ["'A'", "'Resource'"]),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, "Assign": {"states": 1}}}}, ["'A'", "'Assign'", "reserved"]),
    ({"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"},
                                       "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}, ["'M'", "'ItemReader'", "DISTRIBUTED"]),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, "Bogus": 1}}}, ["'A'", "'Bogus'"]),
    ({"StartAt": "X", "States": {"A": {"Type": "Pass", "End": True}}}, ["StartAt", "'X'"]),
])
def test_definition_errors_name_state_and_field(definition, words):
    with pytest.raises(DefinitionError) as info:
        StateMachine(definition)
    for word in words:
        assert word in str(info.value)


def test_missing_substitution_is_named():
    with pytest.raises(DefinitionError, match="WorkerFunctionArn"):
        StateMachine(DEFINITION_PATH.read_text(), substitutions={})
