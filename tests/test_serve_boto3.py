"""``lambdatwin serve`` driven with boto3: the app's resources created through the APIs, an execution
followed, its history paged, its logs read; Lambda and Step Functions semantics and error shapes;
state across a restart."""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest

from emulator.cli.main import main
from botocore.config import Config

from emulator.contracts import aws, runrecord
from tests.serve_helpers import CREDENTIALS, CSV_REDUCE, ServeProcess, csv_reduce_definition, vendored, zip_dir

ROLE = aws.role_arn("lambdatwin-test")
ECHO = b"""
import os, time
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    print("echo", event)
    return {"event": event, "version": "v1", "greeting": os.environ.get("GREETING")}
"""


def clients(url: str) -> dict:
    kw = dict(endpoint_url=url, region_name=aws.REGION, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
              aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
              config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))
    return {name: boto3.client(name, **kw) for name in ("s3", "stepfunctions", "lambda", "logs")}


def zip_of(source: bytes, name: str = "app.py") -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, source)
    return buffer.getvalue()


def wait_done(sfn, arn: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        time.sleep(0.2)
    raise AssertionError(f"{arn} still running")


@pytest.fixture
def serve(tmp_path):
    server = ServeProcess(tmp_path / "state", tmp_path / "runs").start()
    yield server
    server.stop()


def test_create_the_app_through_the_apis_run_follow_history_and_logs(serve, tmp_path):
    c = clients(serve.url)
    bucket = "sales-data"
    c["s3"].create_bucket(Bucket=bucket)
    c["s3"].upload_file(str(CSV_REDUCE / "data" / "sales.csv"), bucket, "input/sales.csv")
    env = {"Variables": {"CURRENCY": "EUR", "RESULTS_BUCKET": bucket}}
    c["lambda"].create_function(FunctionName="SumBatch", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                Code={"ZipFile": zip_dir(CSV_REDUCE / "src" / "batch")}, MemorySize=256, Timeout=30,
                                Environment=env)
    deps = vendored(CSV_REDUCE / "src" / "reduce" / "requirements.txt", tmp_path / "vendored")
    c["lambda"].create_function(FunctionName="Reduce", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                Code={"ZipFile": zip_dir(CSV_REDUCE / "src" / "reduce", deps)}, MemorySize=512,
                                Timeout=30, Environment=env)
    c["lambda"].get_waiter("function_active_v2").wait(FunctionName="Reduce")
    machine = c["stepfunctions"].create_state_machine(name="SalesReport", roleArn=ROLE,
                                                      definition=csv_reduce_definition(bucket))["stateMachineArn"]
    assert machine == aws.state_machine_arn("SalesReport")

    arn = c["stepfunctions"].start_execution(stateMachineArn=machine, name="run-1", input=json.dumps(
        {"csv_key": "input/sales.csv", "report_key": "reports/run-1.json"}))["executionArn"]
    desc = wait_done(c["stepfunctions"], arn)
    assert desc["status"] == "SUCCEEDED", desc
    output = json.loads(desc["output"])
    assert output["rows"] == 120 and output["batches"] == 5
    report = json.loads(c["s3"].get_object(Bucket=bucket, Key="reports/run-1.json")["Body"].read())
    assert report["totals"] == output["totals"]

    # History, paged five events at a time by the SDK's paginator, in order.
    pages = list(c["stepfunctions"].get_paginator("get_execution_history").paginate(
        executionArn=arn, PaginationConfig={"PageSize": 5}))
    events = [e for p in pages for e in p["events"]]
    assert len(pages) == -(-len(events) // 5) and len(pages) > 2
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded"
    reverse = c["stepfunctions"].get_execution_history(executionArn=arn, reverseOrder=True, maxResults=1)
    assert reverse["events"][0]["type"] == "ExecutionSucceeded" and "nextToken" in reverse

    # The Distributed Map run and its Express child executions.
    (map_run,) = c["stepfunctions"].list_map_runs(executionArn=arn)["mapRuns"]
    described = c["stepfunctions"].describe_map_run(mapRunArn=map_run["mapRunArn"])
    assert described["itemCounts"]["succeeded"] == 120 and described["status"] == "SUCCEEDED"  # items
    assert described["executionCounts"]["succeeded"] == 5  # one child execution per batch
    assert described["maxConcurrency"] == 4 and described["toleratedFailurePercentage"] == 0.0
    children = c["stepfunctions"].list_executions(mapRunArn=map_run["mapRunArn"])["executions"]
    assert len(children) == 5 and {ch["status"] for ch in children} == {"SUCCEEDED"}
    listed = c["stepfunctions"].list_executions(stateMachineArn=machine)["executions"]
    assert [e["executionArn"] for e in listed] == [arn]

    # Logs: streams, events, filter.
    streams = c["logs"].describe_log_streams(logGroupName="/aws/lambda/Reduce")["logStreams"]
    assert len(streams) == 1
    got = c["logs"].get_log_events(logGroupName="/aws/lambda/Reduce", logStreamName=streams[0]["logStreamName"],
                                   startFromHead=True)
    messages = [e["message"] for e in got["events"]]
    assert messages[0].startswith("INIT_START Runtime Version:")  # a cold start's stream opens with INIT_START
    assert any(m.startswith("START RequestId:") for m in messages) and messages[-1].startswith("REPORT RequestId:")
    assert any(m.startswith("region") for m in messages)
    again = c["logs"].get_log_events(logGroupName="/aws/lambda/Reduce", logStreamName=streams[0]["logStreamName"],
                                     nextToken=got["nextForwardToken"])
    assert again["events"] == [] and again["nextForwardToken"] == got["nextForwardToken"]
    reports = [e for p in c["logs"].get_paginator("filter_log_events").paginate(
        logGroupName="/aws/lambda/SumBatch", filterPattern='"REPORT RequestId"') for e in p["events"]]
    assert len(reports) == 5

    # The run record is the one `lambdatwin run` writes.
    record = runrecord.load(tmp_path / "runs" / "run-1")
    assert record.execution["status"] == "SUCCEEDED" and record.backend == "local"
    assert len(record.invocations) == 6
    assert sum(1 for line in runrecord.read_log_lines(tmp_path / "runs" / "run-1") if line.startswith("REPORT")) == 6


def test_lambda_invoke_kinds_updates_and_errors(serve):
    lam = clients(serve.url)["lambda"]
    created = lam.create_function(FunctionName="echo", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": zip_of(ECHO)}, Timeout=3)
    assert created["State"] == "Active" and created["FunctionArn"] == aws.function_arn("echo")
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_function(FunctionName="echo", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": zip_of(ECHO)})

    out = lam.invoke(FunctionName="echo", Payload=json.dumps({"a": 1}), LogType="Tail")
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    assert json.loads(out["Payload"].read())["version"] == "v1"
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "echo {'a': 1}" in tail and "REPORT RequestId:" in tail

    failed = lam.invoke(FunctionName="echo", Payload=json.dumps({"fail": True}))
    assert failed["StatusCode"] == 200 and failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
    timed_out = lam.invoke(FunctionName="echo", Payload=json.dumps({"sleep": 5}))
    assert json.loads(timed_out["Payload"].read())["errorType"] == "Sandbox.Timedout"

    logs = clients(serve.url)["logs"]

    def reports() -> int:
        return len(logs.filter_log_events(logGroupName="/aws/lambda/echo", filterPattern="REPORT")["events"])

    before = reports()
    assert lam.invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"async": 1}')["StatusCode"] == 202
    deadline = time.monotonic() + 30
    while reports() == before:  # the asynchronous invocation runs after the 202
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert lam.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204

    # New code and configuration take effect on the next invoke (a cold start).
    lam.update_function_code(FunctionName="echo", ZipFile=zip_of(ECHO.replace(b'"v1"', b'"v2"')))
    lam.update_function_configuration(FunctionName="echo", Environment={"Variables": {"GREETING": "hi"}})
    body = json.loads(lam.invoke(FunctionName="echo", Payload=b"{}", LogType="Tail")["Payload"].read())
    assert (body["version"], body["greeting"]) == ("v2", "hi")
    assert lam.get_function(FunctionName="echo")["Configuration"]["Environment"]["Variables"] == {"GREETING": "hi"}

    lam.create_function(FunctionName="other", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": zip_of(ECHO)})
    pages = list(lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}))
    assert [f["FunctionName"] for p in pages for f in p["Functions"]] == ["echo", "other"]

    lam.delete_function(FunctionName="other")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as info:
        lam.invoke(FunctionName="other")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_function(FunctionName="bad", Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                            Code={"ZipFile": zip_of(ECHO)})
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName="echo", Payload=b"{not json")


def test_step_functions_errors_stop_sync_and_validation(serve):
    c = clients(serve.url)
    sfn = c["stepfunctions"]
    c["lambda"].create_function(FunctionName="echo", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                Code={"ZipFile": zip_of(ECHO)})
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        sfn.create_state_machine(name="broken", roleArn=ROLE, definition=json.dumps({"StartAt": "Nope", "States": {}}))
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=aws.state_machine_arn("missing"))
    bad = sfn.validate_state_machine_definition(definition='{"StartAt": 1}')
    assert bad["result"] == "FAIL" and bad["diagnostics"][0]["severity"] == "ERROR"
    ok_def = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}})
    assert sfn.validate_state_machine_definition(definition=ok_def)["result"] == "OK"

    waiting = sfn.create_state_machine(name="waiter", roleArn=ROLE, definition=ok_def)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=waiting, name="w1", input="{}")["executionArn"]
    assert sfn.start_execution(stateMachineArn=waiting, name="w1", input="{}")["executionArn"] == arn  # idempotent
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=waiting, name="w1", input='{"other": 1}')
    deadline = time.monotonic() + 10
    while len(live := sfn.get_execution_history(executionArn=arn)["events"]) < 2:  # readable while it runs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [e["type"] for e in live][:2] == ["ExecutionStarted", "WaitStateEntered"]
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    started = time.monotonic()
    sfn.stop_execution(executionArn=arn, error="Stopped.ByTest", cause="test")
    desc = sfn.describe_execution(executionArn=arn)
    assert desc["status"] == "ABORTED" and time.monotonic() - started < 10
    assert sfn.get_execution_history(executionArn=arn)["events"][-1]["type"] == "ExecutionAborted"
    with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
        sfn.start_sync_execution(stateMachineArn=waiting, input="{}")

    express_def = json.dumps({"StartAt": "Echo", "States": {"Echo": {
        "Type": "Task", "Resource": aws.function_arn("echo"), "End": True}}})
    express = sfn.create_state_machine(name="quick", roleArn=ROLE, definition=express_def, type="EXPRESS")["stateMachineArn"]
    done = sfn.start_sync_execution(stateMachineArn=express, input=json.dumps({"x": 1}))
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"])["event"] == {"x": 1}
    assert ":express:quick:" in done["executionArn"] and done["billingDetails"]["billedDurationInMilliseconds"] >= 100
    failed = sfn.start_sync_execution(stateMachineArn=express, input=json.dumps({"fail": True}))
    assert failed["status"] == "FAILED" and failed["error"] == "ValueError"

    sfn.update_state_machine(stateMachineArn=waiting, definition=express_def)
    assert json.loads(sfn.describe_state_machine(stateMachineArn=waiting)["definition"]) == json.loads(express_def)
    with pytest.raises(sfn.exceptions.InvalidName):
        sfn.start_execution(stateMachineArn=waiting, name="has space")
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(stateMachineArn=waiting, input="{not json")
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(stateMachineArn=waiting, input=json.dumps({"big": "x" * aws.MAX_PAYLOAD_BYTES}))


def test_template_state_persists_across_a_restart(tmp_path):
    server = ServeProcess(tmp_path / "state", tmp_path / "runs", template=CSV_REDUCE / "template.yaml").start()
    try:
        c = clients(server.url)
        assert sorted(f["FunctionName"] for f in c["lambda"].list_functions()["Functions"]) == ["Reduce", "SumBatch"]
        (machine,) = c["stepfunctions"].list_state_machines()["stateMachines"]
        c["s3"].upload_file(str(CSV_REDUCE / "data" / "sales.csv"), "csv-reduce-databucket", "input/sales.csv")
        arn = c["stepfunctions"].start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(
            {"csv_key": "input/sales.csv", "report_key": "reports/a.json"}))["executionArn"]
        assert wait_done(c["stepfunctions"], arn)["status"] == "SUCCEEDED"
        history = c["stepfunctions"].get_execution_history(executionArn=arn, maxResults=1000)["events"]
        c["lambda"].create_function(FunctionName="echo", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                    Code={"ZipFile": zip_of(ECHO)}, Environment={"Variables": {"GREETING": "kept"}})
    finally:
        server.stop()
    assert not server.answers()

    again = ServeProcess(tmp_path / "state", tmp_path / "runs", port=server.port).start()
    try:
        c = clients(again.url)
        assert c["stepfunctions"].describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
        assert c["stepfunctions"].get_execution_history(executionArn=arn, maxResults=1000)["events"] == history
        assert json.loads(c["s3"].get_object(Bucket="csv-reduce-databucket", Key="reports/a.json")["Body"].read())["rows"] == 120
        assert c["logs"].describe_log_streams(logGroupName="/aws/lambda/SumBatch")["logStreams"]
        out = c["lambda"].invoke(FunctionName="SumBatch", Payload=json.dumps(
            {"Items": [{"region": "x", "units": "2", "price": "1.5"}]}))
        assert json.loads(out["Payload"].read())["totals"] == {"x": 3.0}
        echoed = json.loads(c["lambda"].invoke(FunctionName="echo", Payload=b"{}")["Payload"].read())
        assert echoed["greeting"] == "kept"  # a function created through the API survives the restart
    finally:
        again.stop()


def test_malformed_requests_get_error_shapes_not_a_crash(serve):
    import urllib.error
    import urllib.request

    def post(target: str, body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(serve.url + "/", data=body, method="POST", headers={
            "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post("AWSStepFunctions.DescribeExecution", b"{nope") == (400, {
        "__type": "SerializationException", "message": "The request body is not valid JSON"})
    status, body = post("AWSStepFunctions.NoSuchOperation", b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"
    status, body = post("Logs_20140328.GetLogEvents", json.dumps({"logGroupName": "/aws/lambda/none",
                                                                  "logStreamName": "x"}).encode())
    assert status == 400 and body["__type"] == "ResourceNotFoundException"
    status, body = post("DynamoDB_20120810.ListTables", b"{}")
    assert status == 400 and "does not serve DynamoDB_20120810" in body["message"]
    sqs = boto3.client("sqs", endpoint_url=serve.url, region_name=aws.REGION, aws_access_key_id="x",
                       aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(Exception, match="does not serve sqs"):
        sqs.list_queues()
    assert serve.answers()


def test_invoke_command_against_a_running_serve(serve, tmp_path, capsys):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(
        "import boto3\n\ndef handler(event, context):\n"
        "    return sorted(b['Name'] for b in boto3.client('s3').list_buckets()['Buckets'])\n")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Lister:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: fn/, Handler: app.handler, Runtime: python3.11}\n")
    clients(serve.url)["s3"].create_bucket(Bucket="made-through-serve")
    assert main(["invoke", "Lister", "--template", str(tmp_path / "template.yaml"),
                 "--endpoint-url", serve.url, "--state-dir", str(tmp_path / "dev")]) == 0
    assert "made-through-serve" in json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_cosmicai_through_serve_writes_the_run_record_of_lambdatwin_run(tmp_path):
    from worker.datagen import generate_partitions

    from tests.serve_helpers import REPO

    parts = generate_partitions(2_000_000, 1_000_000, 0, tmp_path / "data")
    ex = REPO / "examples" / "cosmicai"
    server = ServeProcess(tmp_path / "state", tmp_path / "runs", template=ex / "template.yaml").start(timeout_s=600)
    try:
        c = clients(server.url)
        for part in parts:
            c["s3"].upload_file(str(part), "lambdatwin-data", f"data/{part.name}")
        execution_input = json.loads((ex / "input.json").read_text())
        arn = c["stepfunctions"].start_execution(stateMachineArn=aws.state_machine_arn("DataParallel"), name="cosmic-1",
                                                 input=json.dumps(execution_input))["executionArn"]
        assert wait_done(c["stepfunctions"], arn, timeout_s=300)["status"] == "SUCCEEDED"
        (map_run,) = c["stepfunctions"].list_map_runs(executionArn=arn)["mapRuns"]
        described = c["stepfunctions"].describe_map_run(mapRunArn=map_run["mapRunArn"])
        assert described["toleratedFailurePercentage"] == 100.0  # as data_parallel.asl.json's Infer state says
    finally:
        server.stop()
    record = runrecord.load(tmp_path / "runs" / "cosmic-1")
    assert record.summary["complete"] is True and len(record.invocations_of("worker")) == 2
    assert {inv.function for inv in record.invocations} == {"Initialize", "Worker", "Summarize"}
    assert record.map_runs[0]["item_counts"]["succeeded"] == 2
