"""The Lambda platform with real processes: the unmodified awslambdaric client drives handlers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from emulator.contracts.cloudwatch import parse_report_line
from emulator.contracts.lambdas import FunctionConfig, LambdaFunctionError
from emulator.lambda_runtime.service import LambdaService

ROOT = str(Path(__file__).resolve().parent.parent)
ENV: dict[str, str] = {}  # the task root (the project) is on sys.path as on AWS: no PYTHONPATH needed


def fn(name: str, handler: str, **kw) -> FunctionConfig:
    return FunctionConfig(name=name, handler=f"tests.lambda_test_handlers.{handler}", environment=ENV, **kw)


def lines_of(service: LambdaService, function: str) -> list[str]:
    return [line for (group, _), lines in service.log_streams.items() if group == f"/aws/lambda/{function}" for line in lines]


def test_cold_then_warm_reuses_environment_and_reports_like_cloudwatch():
    with LambdaService([fn("echo", "echo", memory_mb=256, timeout_s=10)]) as svc:
        first = svc.invoke("echo", {"n": 1})
        second = svc.invoke("arn:aws:lambda:us-east-1:000000000000:function:echo", {"n": 2})
    assert first["event"] == {"n": 1} and second["event"] == {"n": 2}
    assert first["pid"] == second["pid"], "the warm environment must be reused"
    assert second["warm_count"] == 2 and first["memory_limit"] == "256"
    assert 0 < first["remaining_ms"] <= 10_000
    cold, warm = svc.records
    assert cold.init_duration_ms is not None and cold.init_duration_ms > 0
    assert warm.init_duration_ms is None
    lines = lines_of(svc, "echo")
    assert re.fullmatch(r"INIT_START Runtime Version: python:3\.\d+\.v\d+\tRuntime Version ARN: "
                        r"arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}\t", lines[0])
    assert lines[1] == f"START RequestId: {cold.request_id} Version: $LATEST"
    assert sum(line.startswith("INIT_START") for line in lines) == 1, "a warm invocation has no INIT"
    assert any("echo got {'n': 1}" in line for line in lines)
    reports = [parse_report_line(line) for line in lines if line.startswith("REPORT")]
    assert [r.request_id for r in reports] == [cold.request_id, warm.request_id]
    assert reports[0].init_duration_ms == cold.init_duration_ms
    # Max Memory Used is measured: a Python process is far above 1 MB and below the limit.
    assert 5 < reports[0].max_memory_used_mb < 256
    assert re.fullmatch(
        r"REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 256 MB\t"
        r"Max Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\t",
        next(line for line in lines if line.startswith("REPORT")),
    )
    assert lines.index(f"END RequestId: {cold.request_id}") < lines.index(f"START RequestId: {warm.request_id} Version: $LATEST")


def test_handler_exception_is_a_function_error_and_environment_survives():
    with LambdaService([fn("fail", "fail", timeout_s=10)]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("fail", {"why": "partition missing"})
        assert info.value.error_type == "ValueError"
        assert "partition missing" in info.value.message
        with pytest.raises(LambdaFunctionError):
            svc.invoke("fail", {})
    assert svc.records[0].status == "error" and svc.records[1].init_duration_ms is None


def test_timeout_resets_the_environment_and_reports_status_timeout():
    with LambdaService([fn("sleepy", "sleep", timeout_s=1)]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("sleepy", {"seconds": 30})
        assert info.value.error_type == "Sandbox.Timedout"
        assert info.value.to_payload()["errorMessage"] == (
            f"RequestId: {svc.records[0].request_id} Error: Task timed out after 1.00 seconds")
        assert svc.invoke("sleepy", {"seconds": 0})["slept"] == 0  # the same environment, INIT re-run
    timed_out, again = svc.records
    assert timed_out.status == "timeout" and again.init_phase == "suppressed"
    assert again.log_stream == timed_out.log_stream, "a reset keeps the execution environment"
    report = parse_report_line(next(line for line in lines_of(svc, "sleepy") if line.startswith("REPORT")))
    assert report.status == "timeout" and report.duration_ms == 1000.0


def test_memory_over_limit_is_out_of_memory():
    with LambdaService([fn("hog", "allocate", memory_mb=128, timeout_s=20)]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("hog", {"mb": 400, "hold_s": 2})
    # The caller sees the runtime killed; the REPORT line names the cause.
    assert info.value.error_type == "Runtime.ExitError"
    assert info.value.message.endswith("Error: Runtime exited with error: signal: killed")
    report = parse_report_line(next(line for line in lines_of(svc, "hog") if line.startswith("REPORT")))
    assert report.status == "error" and report.error_type == "Runtime.OutOfMemory"
    assert report.max_memory_used_mb == 128 and svc.records[0].error_type == "Runtime.OutOfMemory"


def test_max_memory_used_tracks_what_the_handler_touched():
    with LambdaService([fn("alloc", "allocate", memory_mb=1024, timeout_s=20)]) as svc:
        svc.invoke("alloc", {"mb": 10})
        svc.invoke("alloc", {"mb": 300})
    small, big = svc.records
    assert big.max_memory_used_mb - small.max_memory_used_mb >= 250


def test_runtime_exit_is_reported_as_exit_error():
    with LambdaService([fn("die", "die", timeout_s=10)]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("die", {})
    assert info.value.error_type == "Runtime.ExitError"


def test_import_error_fails_init_with_lambda_error_type():
    bad = FunctionConfig(name="bad", handler="tests.no_such_module.handler", environment=ENV, timeout_s=10)
    with LambdaService([bad]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("bad", {})
    assert info.value.error_type == "Runtime.ImportModuleError"


def test_unknown_function_and_reserved_concurrency_throttle():
    import threading

    with LambdaService([fn("one", "sleep", timeout_s=10, reserved_concurrency=1)]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("nope", {})
        assert info.value.error_type == "Lambda.ResourceNotFoundException"
        t = threading.Thread(target=svc.invoke, args=("one", {"seconds": 1.5}))
        t.start()
        import time

        deadline = time.monotonic() + 10
        while svc._in_flight["one"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("one", {"seconds": 0})
        t.join()
    assert info.value.error_type == "Lambda.TooManyRequestsException"


def test_boto3_lambda_invoke_against_the_invoke_api():
    import base64
    import json

    import boto3

    from emulator.lambda_runtime.invoke_api import InvokeAPIServer

    functions = [fn("echo", "echo", timeout_s=10), fn("fail", "fail", timeout_s=10)]
    with LambdaService(functions) as svc, InvokeAPIServer(svc) as api:
        client = boto3.client("lambda", endpoint_url=api.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        ok = client.invoke(FunctionName="echo", Payload=json.dumps({"k": 1}), LogType="Tail")
        assert json.loads(ok["Payload"].read())["event"] == {"k": 1}
        assert ok["StatusCode"] == 200 and "FunctionError" not in ok
        assert "REPORT RequestId:" in base64.b64decode(ok["LogResult"]).decode()
        bad = client.invoke(FunctionName="fail", Payload=b'{"why": "x"}')
        assert bad["FunctionError"] == "Unhandled"
        assert json.loads(bad["Payload"].read())["errorType"] == "ValueError"
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="missing", Payload=b"{}")
        assert client.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
