"""``lambdatwin serve`` driven with the AWS CLI (``awscli`` from PyPI) and ``--endpoint-url``:
create the app's resources, start an execution, follow it, read its history and logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from emulator.contracts import aws
from tests.serve_helpers import CREDENTIALS, CSV_REDUCE, ServeProcess, csv_reduce_definition, vendored, zip_dir

ROLE = aws.role_arn("lambdatwin-cli")


@pytest.fixture
def cli(tmp_path):
    server = ServeProcess(tmp_path / "state", tmp_path / "runs").start()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url", server.url, "--output", "json"],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, **CREDENTIALS})
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {proc.stderr}")
        return proc

    def run_json(*args: str) -> dict:
        out = run(*args).stdout
        return json.loads(out) if out.strip() else {}

    run.json = run_json  # type: ignore[attr-defined]
    yield run
    server.stop()


def test_aws_cli_creates_the_app_runs_it_and_reads_history_and_logs(cli, tmp_path):
    bucket = "cli-sales"
    cli("s3", "mb", f"s3://{bucket}")
    cli("s3", "cp", str(CSV_REDUCE / "data" / "sales.csv"), f"s3://{bucket}/input/sales.csv")
    (tmp_path / "batch.zip").write_bytes(zip_dir(CSV_REDUCE / "src" / "batch"))
    deps = vendored(CSV_REDUCE / "src" / "reduce" / "requirements.txt", tmp_path / "vendored")
    (tmp_path / "reduce.zip").write_bytes(zip_dir(CSV_REDUCE / "src" / "reduce", deps))
    env = f"Variables={{CURRENCY=USD,RESULTS_BUCKET={bucket}}}"
    for name, memory in (("SumBatch", "256"), ("Reduce", "512")):
        created = cli.json("lambda", "create-function", "--function-name", name, "--runtime", "python3.11",
                           "--role", ROLE, "--handler", "app.handler", "--zip-file", f"fileb://{name.lower().replace('sumbatch', 'batch')}.zip",
                           "--memory-size", memory, "--timeout", "30", "--environment", env)
        assert created["FunctionArn"] == aws.function_arn(name)
    (tmp_path / "definition.json").write_text(csv_reduce_definition(bucket, batch_size=40))
    machine = cli.json("stepfunctions", "create-state-machine", "--name", "SalesReport", "--role-arn", ROLE,
                       "--definition", "file://definition.json")["stateMachineArn"]
    (tmp_path / "input.json").write_text(json.dumps({"csv_key": "input/sales.csv", "report_key": "reports/cli.json"}))
    arn = cli.json("stepfunctions", "start-execution", "--state-machine-arn", machine, "--name", "cli-run",
                   "--input", "file://input.json")["executionArn"]

    deadline = time.monotonic() + 120
    while (desc := cli.json("stepfunctions", "describe-execution", "--execution-arn", arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert desc["status"] == "SUCCEEDED", desc
    output = json.loads(desc["output"])
    assert (output["rows"], output["batches"], output["currency"]) == (120, 3, "USD")

    # The CLI follows nextToken itself: a page size of 4 still yields the whole history.
    history = cli.json("stepfunctions", "get-execution-history", "--execution-arn", arn, "--page-size", "4")["events"]
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    (map_run,) = cli.json("stepfunctions", "list-map-runs", "--execution-arn", arn)["mapRuns"]
    assert cli.json("stepfunctions", "describe-map-run", "--map-run-arn", map_run["mapRunArn"])["executionCounts"]["total"] == 3

    streams = cli.json("logs", "describe-log-streams", "--log-group-name", "/aws/lambda/Reduce")["logStreams"]
    events = cli.json("logs", "get-log-events", "--log-group-name", "/aws/lambda/Reduce", "--log-stream-name",
                      streams[0]["logStreamName"], "--start-from-head")["events"]
    assert any(e["message"].startswith("region") and "USD" in e["message"] for e in events)
    reports = cli.json("logs", "filter-log-events", "--log-group-name", "/aws/lambda/SumBatch",
                       "--filter-pattern", "REPORT")["events"]
    assert len(reports) == 3

    report = cli("s3", "cp", f"s3://{bucket}/reports/cli.json", "-").stdout
    assert json.loads(report)["totals"] == output["totals"]
    invoked = cli.json("lambda", "invoke", "--function-name", "SumBatch", "--payload",
                       json.dumps({"Items": [{"region": "x", "units": "1", "price": "2.0"}]}), "out.json")
    assert invoked["StatusCode"] == 200
    assert json.loads((tmp_path / "out.json").read_text())["totals"] == {"x": 2.0}


def test_aws_cli_sync_express_and_error_messages(cli, tmp_path):
    (tmp_path / "batch.zip").write_bytes(zip_dir(CSV_REDUCE / "src" / "batch"))
    cli("lambda", "create-function", "--function-name", "SumBatch", "--runtime", "python3.11", "--role", ROLE,
        "--handler", "app.handler", "--zip-file", "fileb://batch.zip", "--environment", "Variables={CURRENCY=EUR}")
    definition = {"StartAt": "Sum", "States": {"Sum": {"Type": "Task", "Resource": aws.function_arn("SumBatch"), "End": True}}}
    (tmp_path / "express.json").write_text(json.dumps(definition))
    machine = cli.json("stepfunctions", "create-state-machine", "--name", "quick", "--role-arn", ROLE, "--type", "EXPRESS",
                       "--definition", "file://express.json")["stateMachineArn"]
    done = cli.json("stepfunctions", "start-sync-execution", "--state-machine-arn", machine, "--input",
                    json.dumps({"Items": [{"region": "n", "units": "3", "price": "1.0"}]}))
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"])["totals"] == {"n": 3.0}

    missing = cli("stepfunctions", "describe-execution", "--execution-arn", aws.execution_arn("quick", "nope"), check=False)
    assert missing.returncode != 0 and "(ExecutionDoesNotExist)" in missing.stderr
    nofn = cli("lambda", "get-function", "--function-name", "nope", check=False)
    assert nofn.returncode != 0 and "(ResourceNotFoundException)" in nofn.stderr
    nogroup = cli("logs", "get-log-events", "--log-group-name", "/aws/lambda/nope", "--log-stream-name", "x", check=False)
    assert nogroup.returncode != 0 and "(ResourceNotFoundException)" in nogroup.stderr
