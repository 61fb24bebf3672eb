"""Distributed Map parity with AWS (issue 13): selector/batcher order, tolerance, Map Run bookkeeping,
ResultWriter WriterConfig, ItemReader formats, EXPRESS children. S3 is a real local endpoint (moto server)."""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import replace

import pytest

from emulator.contracts import aws
from emulator.contracts.lambdas import LambdaFunctionError
from emulator.contracts.runrecord import RunRecord
from emulator.stepfunctions import DefinitionError, StateMachine, VirtualClock
from emulator.stepfunctions.map_state import EXCEEDED_CAUSE, EXPRESS_REDELIVERY_ENV
from sim.model import JobSpec, simulate
from sim.prices import usage_from_record

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
GET_OBJECT = "arn:aws:states:::s3:getObject"
PUT_OBJECT = "arn:aws:states:::s3:putObject"


class Functions:
    """Stands in for the Lambda service: calls Python functions, records the payloads."""

    def __init__(self, **functions):
        self.functions = functions
        self.calls: list[tuple[str, object]] = []
        self._lock = threading.Lock()

    def invoke(self, name, payload):
        with self._lock:
            self.calls.append((name, payload))
        return self.functions[name](payload)


def odd_fails(p):
    if p % 2:
        raise LambdaFunctionError("OddError", f"{p} is odd")
    return p


def task(fn="f"):
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": fn, "Payload.$": "$"}, "OutputPath": "$.Payload", "End": True}


def dmap(states=None, execution_type="STANDARD", **fields):
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
                 "StartAt": next(iter(states or {"T": 0})), "States": states or {"T": task()}}
    return {"Type": "Map", "End": True, "ItemProcessor": processor, **fields}


def machine(state, **top):
    return StateMachine({"StartAt": "M", "States": {"M": state}, **top})


def types(result):
    return [e["type"] for e in result.history]


# -- ItemSelector, then ItemBatcher ---------------------------------------------------------

def test_item_selector_applies_to_each_item_before_batching():
    fns = Functions(f=lambda p: p)
    sm = machine(dmap(ItemsPath="$.xs", ItemSelector={"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                      ItemBatcher={"MaxItemsPerBatch": 2, "BatchInput": {"job.$": "$.job"}}))
    result = sm.execute({"xs": [10, 20, 30], "job": "j1"}, invoker=fns)
    assert result.status == "SUCCEEDED", result.cause
    assert sorted(fns.calls, key=lambda c: c[1]["Items"][0]["i"]) == [
        ("f", {"Items": [{"v": 10, "i": 0}, {"v": 20, "i": 1}], "BatchInput": {"job": "j1"}}),
        ("f", {"Items": [{"v": 30, "i": 2}], "BatchInput": {"job": "j1"}}),
    ]


# -- tolerated failures ------------------------------------------------------------------------

def test_the_map_fails_when_either_threshold_is_exceeded():
    def run(**fields):
        return machine(dmap(ItemsPath="$.xs", **fields)).execute({"xs": list(range(10))}, invoker=Functions(f=odd_fails))

    for fields in ({"ToleratedFailurePercentage": 60, "ToleratedFailureCount": 2},   # only the count exceeded
                   {"ToleratedFailurePercentage": 40, "ToleratedFailureCount": 9}):  # only the percentage exceeded
        result = run(**fields)  # 5 of 10 items fail
        assert (result.status, result.error, result.cause) == ("FAILED", "States.ExceedToleratedFailureThreshold", EXCEEDED_CAUSE)
        assert types(result)[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]
    assert run(ToleratedFailurePercentage=50, ToleratedFailureCount=5).status == "SUCCEEDED"  # neither exceeded


def test_tolerance_counts_the_items_of_a_failed_batch():
    def fail_batch_with_seven(p):
        if 7 in p["Items"]:
            raise LambdaFunctionError("Seven", "a seven")
        return len(p["Items"])

    sm = machine(dmap(ItemsPath="$.xs", ItemBatcher={"MaxItemsPerBatch": 5}, ToleratedFailureCount=4))
    result = sm.execute({"xs": list(range(10))}, invoker=Functions(f=fail_batch_with_seven))
    assert result.status == "FAILED" and result.error == "States.ExceedToleratedFailureThreshold"
    run = result.map_runs[0]
    assert run["item_counts"]["failed"] == 5 and run["item_counts"]["succeeded"] == 5
    assert run["execution_counts"]["failed"] == 1 and run["execution_counts"]["succeeded"] == 1


@pytest.mark.parametrize("fields, value", [
    ({"ToleratedFailurePercentagePath": "$.v"}, 150),
    ({"ToleratedFailurePercentagePath": "$.v"}, "ten"),
    ({"ToleratedFailureCountPath": "$.v"}, -1),
    ({"MaxConcurrencyPath": "$.v"}, 2.5),
])
def test_bad_path_parameters_fail_before_the_map_run_starts(fields, value):
    result = machine(dmap(ItemsPath="$.xs", **fields)).execute({"xs": [2, 4], "v": value}, invoker=Functions(f=odd_fails))
    assert result.status == "FAILED" and result.error == "States.Runtime"
    assert next(iter(fields)) in result.cause
    assert "MapRunStarted" not in types(result) and result.map_runs == []


@pytest.mark.parametrize("field, value", [("ToleratedFailureCount", -1),
                                          ("MaxConcurrency", 1.5), ("Label", "has space"), ("Label", "x" * 41)])
def test_bad_literal_parameters_are_rejected_at_definition_time(field, value):
    with pytest.raises(DefinitionError, match=f"'M'.*'{field}'"):
        machine(dmap(ItemsPath="$.xs", **{field: value}))


def test_failed_children_appear_in_the_output_with_error_and_cause():
    result = machine(dmap(ItemsPath="$.xs", ToleratedFailureCount=1)).execute({"xs": [2, 3, 4]}, invoker=Functions(f=odd_fails))
    assert result.status == "SUCCEEDED", result.cause
    assert result.output[0] == 2 and result.output[2] == 4
    failed = result.output[1]
    assert failed["Error"] == "OddError" and json.loads(failed["Cause"])["errorMessage"] == "3 is odd"


# -- Map Run bookkeeping ------------------------------------------------------------------------

def test_map_run_counts_items_and_executions_separately():
    sm = machine(dmap(ItemsPath="$.xs", ItemBatcher={"MaxItemsPerBatch": 3}))
    result = sm.execute({"xs": list(range(7))}, invoker=Functions(f=lambda p: len(p["Items"])))
    run = result.map_runs[0]
    assert run["item_counts"]["total"] == 7 and run["item_counts"]["succeeded"] == 7
    assert run["execution_counts"]["total"] == 3 and run["execution_counts"]["succeeded"] == 3
    assert result.output == [3, 3, 1]


def test_default_label_is_a_generated_uuid_and_a_given_label_is_used():
    result = machine(dmap(ItemsPath="$.xs")).execute({"xs": [2]}, invoker=Functions(f=odd_fails))
    prefix = re.escape(f"arn:aws:states:{aws.REGION}:{aws.ACCOUNT_ID}:mapRun:lambdatwin/")
    run = result.map_runs[0]
    assert re.fullmatch(prefix + UUID + ":" + UUID, run["map_run_arn"]), run["map_run_arn"]
    assert run["label"] != "M" and f"/{run['label']}:" in run["children"][0]["execution_arn"]
    again = machine(dmap(ItemsPath="$.xs")).execute({"xs": [2]}, invoker=Functions(f=odd_fails))
    assert again.map_runs[0]["label"] == run["label"]  # the label identifies the Map state, the run id the run
    labelled = machine(dmap(ItemsPath="$.xs", Label="Ranks")).execute({"xs": [2]}, invoker=Functions(f=odd_fails))
    assert ":mapRun:lambdatwin/Ranks:" in labelled.map_runs[0]["map_run_arn"]


def test_map_state_started_length_is_zero_with_an_item_reader(s3_server, bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="items.json", Body=json.dumps([2, 4, 6]).encode())
    sm = machine(dmap(ItemReader={"Resource": GET_OBJECT, "Parameters": {"Bucket": bucket, "Key": "items.json"}}))
    result = sm.execute({}, invoker=Functions(f=odd_fails), s3_client=s3)
    assert result.output == [2, 4, 6]
    started = next(e for e in result.history if e["type"] == "MapStateStarted")
    assert started["mapStateStartedEventDetails"] == {"length": 0}
    inline = machine(dmap(ItemsPath="$.xs")).execute({"xs": [2, 4]}, invoker=Functions(f=odd_fails))
    assert next(e for e in inline.history if e["type"] == "MapStateStarted")["mapStateStartedEventDetails"] == {"length": 2}


def test_map_run_aborted_when_the_execution_times_out():
    waits = {"W": {"Type": "Wait", "Seconds": 100, "End": True}}
    sm = machine(dmap(waits, ItemsPath="$.xs", MaxConcurrency=1), TimeoutSeconds=150)
    result = sm.execute({"xs": [1, 2, 3]}, invoker=Functions(), clock=VirtualClock())
    assert result.status == "TIMED_OUT"
    assert "MapRunAborted" in types(result) and "MapRunSucceeded" not in types(result)
    counts = result.map_runs[0]["item_counts"]
    assert counts["succeeded"] == 1 and counts["aborted"] == 2


# -- ResultWriter WriterConfig --------------------------------------------------------------------

def test_writer_config_without_resource_reshapes_the_output():
    pairs = Functions(f=lambda p: [p, p * 10])
    flat = machine(dmap(ItemsPath="$.xs", ResultWriter={"WriterConfig": {"Transformation": "FLATTEN"}}))
    assert flat.execute({"xs": [1, 2]}, invoker=pairs).output == [1, 10, 2, 20]
    compact = machine(dmap(ItemsPath="$.xs", ResultWriter={"WriterConfig": {"Transformation": "COMPACT"}}))
    assert compact.execute({"xs": [1, 2]}, invoker=pairs).output == [[1, 10], [2, 20]]
    full = machine(dmap(ItemsPath="$.xs", ResultWriter={"WriterConfig": {"Transformation": "NONE"}}))
    entries = full.execute({"xs": [1]}, invoker=pairs).output
    assert entries[0]["Status"] == "SUCCEEDED" and json.loads(entries[0]["Output"]) == [1, 10]


def test_writer_config_jsonl_compact_files_on_s3(s3_server, bucket):
    s3 = s3_server.client()
    sm = machine(dmap(ItemsPath="$.xs", ToleratedFailurePercentage=50, ResultWriter={
        "Resource": PUT_OBJECT, "Parameters": {"Bucket": bucket, "Prefix": "out"},
        "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"}}))
    result = sm.execute({"xs": [2, 3, 4]}, invoker=Functions(f=odd_fails), s3_client=s3)
    assert result.status == "SUCCEEDED", result.cause
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=result.output["ResultWriterDetails"]["Key"])["Body"].read())
    key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
    assert key.endswith("SUCCEEDED_0.jsonl")
    lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in lines] == [2, 4]
    failed = s3.get_object(Bucket=bucket, Key=manifest["ResultFiles"]["FAILED"][0]["Key"])["Body"].read().decode()
    assert json.loads(failed.splitlines()[0])["Error"] == "OddError"
    assert result.map_runs[0]["item_counts"]["resultsWritten"] == 3


@pytest.mark.parametrize("writer, field", [
    ({"Resource": PUT_OBJECT, "WriterConfig": {"OutputType": "CSV"}}, "ResultWriter.WriterConfig.OutputType"),
    ({"WriterConfig": {"Transformation": "SQUASH"}}, "ResultWriter.WriterConfig.Transformation"),
    ({"Parameters": {"Bucket": "b"}}, "ResultWriter"),
])
def test_bad_writer_config_is_rejected_at_definition_time(writer, field):
    with pytest.raises(DefinitionError, match=re.escape(f"state 'M': field '{field}'")):
        machine(dmap(ItemsPath="$.xs", ResultWriter=writer))


# -- ItemReader formats ---------------------------------------------------------------------------------

def reader(bucket, key, **config):
    return {"Resource": GET_OBJECT, "ReaderConfig": config, "Parameters": {"Bucket": bucket, "Key": key}}


def test_jsonl_reader(s3_server, bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="items.jsonl", Body=b'{"n": 1}\n{"n": 2}\n\n{"n": 3}\n')
    sm = machine(dmap(ItemReader=reader(bucket, "items.jsonl", InputType="JSONL"), ItemSelector={"x.$": "$$.Map.Item.Value.n"}))
    result = sm.execute({}, invoker=Functions(f=lambda p: p["x"]), s3_client=s3)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [1, 2, 3]


def test_s3_inventory_manifest_reader(s3_server, bucket):
    s3 = s3_server.client()
    rows = [f'"{bucket}","data/part-{i}.bin","{100 + i}"' for i in range(3)]
    s3.put_object(Bucket=bucket, Key="inv/files/a.csv.gz", Body=gzip.compress("\n".join(rows[:2]).encode()))
    s3.put_object(Bucket=bucket, Key="inv/files/b.csv.gz", Body=gzip.compress(rows[2].encode()))
    manifest = {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}", "version": "2016-11-30",
                "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size",
                "files": [{"key": "inv/files/a.csv.gz", "size": 1, "MD5checksum": "x"},
                          {"key": "inv/files/b.csv.gz", "size": 1, "MD5checksum": "y"}]}
    s3.put_object(Bucket=bucket, Key="inv/manifest.json", Body=json.dumps(manifest).encode())
    sm = machine(dmap(ItemReader=reader(bucket, "inv/manifest.json", InputType="MANIFEST")))
    result = sm.execute({}, invoker=Functions(f=lambda p: p), s3_client=s3)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [{"Bucket": bucket, "Key": f"data/part-{i}.bin", "Size": str(100 + i)} for i in range(3)]


def test_unsupported_reader_format_is_rejected_at_definition_time():
    with pytest.raises(DefinitionError, match=re.escape("state 'M': field 'ItemReader.ReaderConfig.InputType'") + ".*JSONL.*MANIFEST"):
        machine(dmap(ItemReader=reader("b", "k.parquet", InputType="PARQUET")))


def test_csv_short_rows_are_padded_and_max_items_path_is_honoured(s3_server, bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="rows.csv", Body=b"a,b,c\n1,2\n3,4,5\n6,7,8\n")
    sm = machine(dmap(ItemReader=reader(bucket, "rows.csv", InputType="CSV", MaxItemsPath="$.limit")))
    result = sm.execute({"limit": 2}, invoker=Functions(f=lambda p: p), s3_client=s3)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "4", "c": "5"}]


def test_csv_duplicate_headers_are_rejected(s3_server, bucket):
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="dup.csv", Body=b"a,b,a\n1,2,3\n")
    sm = machine(dmap(ItemReader=reader(bucket, "dup.csv", InputType="CSV")))
    result = sm.execute({}, invoker=Functions(f=lambda p: p), s3_client=s3)
    assert result.status == "FAILED" and result.error == "States.ItemReaderFailed" and "'a'" in result.cause
    with pytest.raises(DefinitionError, match=re.escape("field 'ItemReader.ReaderConfig.CSVHeaders'")):
        machine(dmap(ItemReader=reader(bucket, "dup.csv", InputType="CSV", CSVHeaderLocation="GIVEN", CSVHeaders=["x", "x"])))


# -- EXPRESS children -------------------------------------------------------------------------------------

def waits(wait_first):
    """A child that waits ``$.wait`` seconds, then calls ``f``."""
    return {"W": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "T"}, "T": task()} if wait_first else None


def test_express_children_time_out_after_five_minutes():
    sm = machine(dmap(waits(True), "EXPRESS", ItemsPath="$.xs", ToleratedFailureCount=1, MaxConcurrency=1))
    items = {"xs": [{"wait": 200, "n": 1}, {"wait": aws.EXPRESS_MAX_DURATION_S + 60, "n": 2}]}
    result = sm.execute(items, invoker=Functions(f=lambda p: p["n"]), clock=VirtualClock())
    assert result.status == "SUCCEEDED", result.cause
    assert result.output[0] == 1 and result.output[1]["Error"] == "States.Timeout"
    run = result.map_runs[0]
    assert run["item_counts"]["timedOut"] == 1 and run["children"][1]["status"] == "TIMED_OUT"
    strict = machine(dmap(waits(True), "EXPRESS", ItemsPath="$.xs", MaxConcurrency=1))
    assert strict.execute(items, invoker=Functions(f=lambda p: p["n"]), clock=VirtualClock()).error == "States.ExceedToleratedFailureThreshold"
    standard = machine(dmap(waits(True), "STANDARD", ItemsPath="$.xs", MaxConcurrency=1))  # Standard children have no such limit
    assert standard.execute(items, invoker=Functions(f=lambda p: p["n"]), clock=VirtualClock()).output == [1, 2]


def test_express_billing_is_recorded_and_billed_by_sim():
    sm = machine(dmap(waits(True), "EXPRESS", ItemsPath="$.xs", MaxConcurrency=1))  # one virtual clock
    # Wait seconds are whole numbers on AWS (state-wait.html); 1 s is billed as 1.0 s.
    result = sm.execute({"xs": [{"wait": 1, "n": i} for i in range(4)]}, invoker=Functions(f=lambda p: p["n"]),
                        clock=VirtualClock())
    assert result.status == "SUCCEEDED", result.cause
    run = result.map_runs[0]
    assert all(":express:lambdatwin/" in c["execution_arn"] for c in run["children"])
    billing = run["express_billing"]
    assert billing["requests"] == 4 and billing["billed_duration_s"] == pytest.approx(4 * 1.0)
    assert billing["gb_seconds"] == pytest.approx(4 * 1.0 * 64 / 1024)
    record = RunRecord("r", "local", history=result.history, map_runs=result.map_runs)
    usage = usage_from_record(record)
    parent_transitions = sum(1 for e in result.history if e["type"].endswith("StateEntered"))
    assert usage.sfn_transitions == parent_transitions == 1
    assert usage.sfn_express_requests == 4 and usage.sfn_express_gb_hours == pytest.approx(billing["gb_seconds"] / 3600)


def test_express_children_are_at_least_once_when_redelivery_is_asked_for(monkeypatch):
    monkeypatch.setenv(EXPRESS_REDELIVERY_ENV, "1")
    fns = Functions(f=lambda p: p * 2)
    result = machine(dmap(None, "EXPRESS", ItemsPath="$.xs")).execute({"xs": [1, 2, 3]}, invoker=fns)
    assert result.output == [2, 4, 6]
    assert sorted(p for _, p in fns.calls) == [1, 1, 2, 2, 3, 3]
    run = result.map_runs[0]
    assert run["express_billing"]["requests"] == 6 and run["execution_counts"]["total"] == 6
    assert run["item_counts"]["total"] == 3
    monkeypatch.setenv(EXPRESS_REDELIVERY_ENV, "0")
    once = Functions(f=lambda p: p * 2)
    machine(dmap(None, "EXPRESS", ItemsPath="$.xs")).execute({"xs": [1, 2, 3]}, invoker=once)
    assert len(once.calls) == 3


def test_sim_bills_express_children_and_still_the_parents_transitions():
    spec = JobSpec(data_size_bytes=8 * 25_000_000, workers=8)
    standard = simulate(spec, seed=1)
    express = simulate(replace(spec, express_children=True), seed=1)
    worker_transitions = len(express.invocations) - sum(1 for i in express.invocations if i["function"] != "worker")
    assert express.usage.sfn_express_requests == 8
    assert express.usage.sfn_transitions == standard.usage.sfn_transitions - worker_transitions > 0


def test_a_result_writer_failure_fails_the_map_run(s3_server):
    sm = machine(dmap(ItemsPath="$.xs", ResultWriter={"Resource": PUT_OBJECT, "Parameters": {"Bucket": "no-such-bucket-x1"}}))
    result = sm.execute({"xs": [2]}, invoker=Functions(f=odd_fails), s3_client=s3_server.client())
    assert result.status == "FAILED" and result.error == "States.ResultWriterFailed"
    assert types(result)[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]
