"""The Lambda platform as AWS documents it, on the process backend (issue 13, "Lambda platform").

Each test drives the unmodified ``awslambdaric`` in a real process through the
emulator's Runtime API; ``docs/emulator-vs-aws-lambda.md`` maps them to the AWS pages.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from pathlib import Path

import pytest

from emulator.contracts import aws
from emulator.contracts.cloudwatch import parse_report_line
from emulator.contracts.lambdas import FunctionConfig, LambdaFunctionError
from emulator.lambda_runtime.environment import ProcessEnvironment
from emulator.lambda_runtime.runtime_api import API_PREFIX, Invocation, RuntimeAPIServer
from emulator.lambda_runtime.service import LambdaService

ROOT = Path(__file__).resolve().parent.parent


def fn(name: str, handler: str, module: str = "tests.lambda_test_handlers", **kw) -> FunctionConfig:
    return FunctionConfig(name=name, handler=f"{module}.{handler}", **kw)


def lines_of(service: LambdaService, function: str) -> list[str]:
    return [line for (group, _), lines in service.log_streams.items() if group == f"/aws/lambda/{function}" for line in lines]


def reports(service: LambdaService, function: str) -> list:
    return [parse_report_line(line) for line in lines_of(service, function) if line.startswith("REPORT")]


# -- INIT -------------------------------------------------------------------------------------------

def test_init_over_ten_seconds_is_retried_inside_the_invoke_under_the_function_timeout():
    slow = fn("slow", "handler", module="tests.lambda_slow_init", timeout_s=3, environment={"INIT_SLEEP_S": "12"})
    with LambdaService([slow]) as svc:
        started = time.monotonic()
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("slow", {})
        took = time.monotonic() - started
    assert info.value.error_type == aws.LAMBDA_TIMEOUT, "a 12 s INIT with a 3 s timeout must not succeed"
    assert 12.5 < took < 16, "10 s INIT phase, then the 3 s function timeout"
    lines = lines_of(svc, "slow")
    kinds = [line.split(" ", 1)[0] for line in lines if line.split(" ", 1)[0] in ("INIT_START", "INIT_REPORT", "START", "END", "REPORT")]
    assert kinds == ["INIT_START", "INIT_REPORT", "INIT_REPORT", "START", "END", "REPORT"]
    init_phase, invoke_phase = [line for line in lines if line.startswith("INIT_REPORT")]
    assert re.fullmatch(r"INIT_REPORT Init Duration: 10\d\d\d\.\d\d ms\tPhase: init\tStatus: timeout\t", init_phase)
    assert re.fullmatch(r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: invoke\tStatus: timeout\t", invoke_phase)
    report = reports(svc, "slow")[0]
    assert report.status == "timeout" and report.duration_ms == 3000.0 and report.init_duration_ms is None
    assert report.billed_duration_ms >= 13_000, "the failed INIT phase is billed with the invocation"
    assert svc.records[0].init_phase == "suppressed"


def test_suppressed_init_that_fits_the_timeout_succeeds_and_is_counted_in_duration():
    slow = fn("slowok", "handler", module="tests.lambda_slow_init", timeout_s=20, environment={"INIT_SLEEP_S": "10.5"})
    with LambdaService([slow]) as svc:
        assert svc.invoke("slowok", {}) == {"ok": True}
        assert svc.invoke("slowok", {}) == {"ok": True}
    first, second = reports(svc, "slowok")
    assert first.status is None and first.init_duration_ms is None, "suppressed init: no Init Duration field"
    assert first.duration_ms > 10_000, "INIT re-ran inside the invocation's Duration"
    assert second.duration_ms < 1_000 and svc.records[1].init_phase is None
    assert sum("slow init begins" in line for line in lines_of(svc, "slowok")) == 2


def test_failed_init_is_logged_init_report_error_and_retried_in_the_invoke():
    bad = fn("badinit", "handler", module="tests.lambda_slow_init", timeout_s=10, environment={"INIT_FAIL": "1"})
    with LambdaService([bad]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("badinit", {})
    error_type = info.value.error_type  # as the runtime client reports the exception raised at import
    assert error_type == "RuntimeError" and "init failed on purpose" in info.value.message
    lines = lines_of(svc, "badinit")
    init_reports = [line for line in lines if line.startswith("INIT_REPORT")]
    assert len(init_reports) == 2
    assert f"Phase: init\tStatus: error\tError Type: {error_type}\t" in init_reports[0]
    assert f"Phase: invoke\tStatus: error\tError Type: {error_type}\t" in init_reports[1]
    assert lines.index(init_reports[1]) < next(i for i, line in enumerate(lines) if line.startswith("START"))
    report = reports(svc, "badinit")[0]
    assert report.status == "error" and report.error_type == info.value.error_type


# -- freeze ----------------------------------------------------------------------------------------------

def test_background_thread_does_not_run_while_the_environment_is_idle():
    with LambdaService([fn("ticker", "background_counter", timeout_s=10)]) as svc:
        first = svc.invoke("ticker", {})["ticks"]
        time.sleep(1.0)
        second = svc.invoke("ticker", {})["ticks"]
    assert second - first < 10, f"the thread ran {second - first} ticks (10 ms each) while frozen"


# -- environment --------------------------------------------------------------------------------------------

LAMBDA_VARIABLES = {
    "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR", "TZ", "LANG", "PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT",
}
# Set by the runtime client itself / the twin's documented TMPDIR (see storage.py) / Python's own.
RUNTIME_SET = {"_X_AMZN_TRACE_ID", "TMPDIR", "LC_CTYPE"}


def test_only_lambdas_variables_and_the_task_root_as_working_directory(monkeypatch):
    monkeypatch.setenv("HOST_SECRET_SHOULD_NOT_LEAK", "1")
    with LambdaService([fn("env", "environment", timeout_s=10, environment={"MY_SETTING": "x"})]) as svc:
        seen = svc.invoke("env", {})
    env = seen["env"]
    assert set(env) - RUNTIME_SET == LAMBDA_VARIABLES | {"MY_SETTING"}
    assert env["_HANDLER"] == "tests.lambda_test_handlers.environment"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand" and env["TZ"] == ":UTC" and env["LANG"] == "en_US.UTF-8"
    assert env["LAMBDA_TASK_ROOT"] == str(ROOT) and seen["cwd"] == str(ROOT) and seen["sys_path0"] == str(ROOT)
    assert env["PYTHONPATH"] == env["LAMBDA_RUNTIME_DIR"]


def test_tmp_is_per_environment_capped_and_kept_across_warm_invokes_and_a_timeout():
    f = fn("tmp", "tmp_file", timeout_s=3, ephemeral_storage_mb=512)
    with LambdaService([f]) as svc:
        first = svc.invoke("tmp", {"name": "a.bin", "mb": 1})
        assert "a.bin" in svc.invoke("tmp", {})["files"], "kept across warm invocations"
        with pytest.raises(LambdaFunctionError):
            svc.invoke("tmp", {"name": "b.bin", "mb": 1, "sleep": 5})  # times out after writing
        after = svc.invoke("tmp", {})
        assert {"a.bin", "b.bin"} <= set(after["files"]), "a timeout resets the runtime, not /tmp"
        assert svc.invoke("tmp", {"name": "fits.bin", "mb": 400, "allocate": True})["written"] is True
        full = svc.invoke("tmp", {"name": "big.bin", "mb": 600, "allocate": True})
        assert full["written"] is False and full["errno"] == 28, "ENOSPC past EphemeralStorage"
        other = LambdaService([fn("tmp", "tmp_file", timeout_s=3)])
        try:
            assert "a.bin" not in other.invoke("tmp", {})["files"], "another environment has its own /tmp"
        finally:
            other.shutdown()
    assert first["tmp"] != "/tmp" and svc.records[3].init_phase == "suppressed"


# -- CPU and memory --------------------------------------------------------------------------------------

def _cgroups_available() -> bool:
    env = ProcessEnvironment(fn("probe", "echo"))
    try:
        return env.cgroup is not None
    finally:
        env.shutdown()


needs_cgroups = pytest.mark.skipif(not _cgroups_available(), reason="no writable cgroup hierarchy on this host")


@needs_cgroups
def test_cpu_is_in_proportion_to_memory():
    with LambdaService([fn("cpu", "spin", memory_mb=256, timeout_s=30)]) as svc:
        used = svc.invoke("cpu", {"seconds": 1.5, "workers": 2})["cpus"]
    assert used < 1.5 * aws.lambda_vcpus(256) + 0.05, f"256 MB gets {aws.lambda_vcpus(256):.2f} vCPU, used {used:.2f}"


@needs_cgroups
def test_child_processes_count_against_memory_and_in_max_memory_used():
    with LambdaService([fn("kids", "child_allocate", memory_mb=256, timeout_s=20)]) as svc:
        svc.invoke("kids", {"mb": 150, "hold_s": 0.5})
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("kids", {"mb": 300, "hold_s": 2})
    assert info.value.error_type == aws.LAMBDA_EXIT_ERROR and "signal: killed" in info.value.message
    ok, oom = reports(svc, "kids")
    assert 150 <= ok.max_memory_used_mb <= 256, "the child's memory is in Max Memory Used"
    assert oom.max_memory_used_mb == 256 and oom.status == "error" and oom.error_type == aws.LAMBDA_OUT_OF_MEMORY


def test_without_cgroups_the_limits_not_enforced_are_stated(monkeypatch):
    import emulator.lambda_runtime.environment as environment

    monkeypatch.setattr(environment, "create_sandbox_cgroup", lambda *a: (None, "no writable cgroup (test)"))
    with LambdaService([fn("nocg", "child_allocate", memory_mb=128, timeout_s=20)]) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("nocg", {"mb": 300, "hold_s": 3})
    assert info.value.error_type == aws.LAMBDA_EXIT_ERROR, "the process-tree watchdog counts children"
    assert reports(svc, "nocg")[0].error_type == aws.LAMBDA_OUT_OF_MEMORY
    assert "no writable cgroup (test)" in svc.platform_notes["cpu"]
    assert reports(svc, "nocg")[0].max_memory_used_mb == 128, "Max Memory Used never exceeds Memory Size"


# -- Runtime API -----------------------------------------------------------------------------------------

def _post(address: str, path: str, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(address, timeout=10)
    conn.request("POST", path, body)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def test_runtime_api_rejects_unknown_and_answered_request_ids_without_storing_them():
    api = RuntimeAPIServer().start()
    try:
        for i in range(50):
            status, body = _post(api.address, f"{API_PREFIX}/invocation/unknown-{i}/response", b'{"x": 1}')
            assert status == 400 and body["errorType"] == "InvalidRequestID"
        assert api.stored_outcomes == 0
        api.submit(Invocation("rid-1", b"{}", 0, "arn", "Root=1-0-0"))
        conn = http.client.HTTPConnection(api.address, timeout=10)
        conn.request("GET", f"{API_PREFIX}/invocation/next")
        assert conn.getresponse().getheader("Lambda-Runtime-Aws-Request-Id") == "rid-1"
        assert _post(api.address, f"{API_PREFIX}/invocation/rid-1/response", b'"first"')[0] == 202
        status, body = _post(api.address, f"{API_PREFIX}/invocation/rid-1/response", b'"second"')
        assert status == 400 and body["errorType"] == "InvalidRequestID"
        status, _ = _post(api.address, f"{API_PREFIX}/invocation/rid-1/error", b'{"errorType": "X"}')
        assert status == 400
        assert api.wait_outcome("rid-1", 1).json() == "first", "the first answer stands"
    finally:
        api.close()


def test_client_context_cognito_identity_and_trace_header_reach_the_handler():
    context = json.dumps({"client": {"app_title": "demo"}, "custom": {"k": "v"}, "env": {}})
    identity = json.dumps({"cognitoIdentityId": "us-east-1:1234", "cognitoIdentityPoolId": "us-east-1:pool"})
    with LambdaService([fn("ctx", "context_info", timeout_s=10)]) as svc:
        seen = svc.invoke_with_record("ctx", {}, client_context=context, cognito_identity=identity).payload
    assert seen["custom"] == {"k": "v"} and seen["client"] == "demo"
    assert seen["cognito_identity_id"] == "us-east-1:1234"
    match = re.fullmatch(r"Root=1-([0-9a-f]{8})-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]", seen["trace"])
    assert match and abs(int(match.group(1), 16) - time.time()) < 60, "Root carries the epoch second"


def test_handler_error_payload_keeps_request_id_as_the_python_runtime_sends_it():
    with LambdaService([fn("fail", "fail", timeout_s=10)]) as svc:
        done = svc.invoke_with_record("fail", {"why": "x"})
    payload = done.error.to_payload()
    assert payload["requestId"] == done.record.request_id
    assert payload["errorType"] == "ValueError" and payload["stackTrace"]


def test_response_limit_is_exactly_6291556_bytes_and_the_environment_survives_an_oversized_one():
    with LambdaService([fn("big", "big_response", timeout_s=20, memory_mb=512)]) as svc:
        assert len(json.dumps(svc.invoke("big", {"bytes": aws.MAX_SYNC_RESPONSE_BYTES}))) == aws.MAX_SYNC_RESPONSE_BYTES
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("big", {"bytes": aws.MAX_SYNC_RESPONSE_BYTES + 1})
        assert info.value.error_type == aws.LAMBDA_RESPONSE_TOO_LARGE
        assert "(6291556 bytes)" in info.value.message
        assert svc.invoke("big", {"bytes": 10}) == "x" * 8, "the next invocation must not fail with Runtime.ExitError"
        assert svc.invoke("big", {"bytes": 10}) == "x" * 8


# -- logs ------------------------------------------------------------------------------------------------

def test_a_40_mb_line_without_newline_is_captured_in_linear_time():
    with LambdaService([fn("loud", "long_line", timeout_s=60, memory_mb=1024)]) as svc:
        started = time.monotonic()
        svc.invoke("loud", {"mb": 40})
        took = time.monotonic() - started
    big = [line for line in lines_of(svc, "loud") if line.startswith("yyyy")]
    assert len(big) == 1 and len(big[0]) >= 40 * 1024 * 1024
    assert took < 10, f"took {took:.1f} s"


def test_platform_errors_carry_the_request_id_in_the_message_as_aws_returns_them():
    with LambdaService([fn("die", "die", timeout_s=10)]) as svc:
        done = svc.invoke_with_record("die", {})
    assert done.error.to_payload() == {
        "errorType": aws.LAMBDA_EXIT_ERROR,
        "errorMessage": f"RequestId: {done.record.request_id} Error: Runtime exited with error: exit status 3",
    }


def test_idle_environments_are_thawed_by_concurrent_invokes():
    with LambdaService([fn("echo", "echo", timeout_s=10)]) as svc:
        svc.invoke("echo", {})
        results = []
        threads = [threading.Thread(target=lambda: results.append(svc.invoke("echo", {}))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 3


def test_invoke_api_client_context_reaches_the_handler_through_boto3():
    import base64

    import boto3

    from emulator.lambda_runtime.invoke_api import InvokeAPIServer

    with LambdaService([fn("ctx", "context_info", timeout_s=10)]) as svc, InvokeAPIServer(svc) as api:
        client = boto3.client("lambda", endpoint_url=api.endpoint_url, region_name=aws.REGION,
                              aws_access_key_id="x", aws_secret_access_key="x")
        context = base64.b64encode(json.dumps({"custom": {"tenant": "t1"}}).encode()).decode()
        seen = json.loads(client.invoke(FunctionName="ctx", Payload=b"{}", ClientContext=context)["Payload"].read())
    assert seen["custom"] == {"tenant": "t1"}


def test_limits_not_enforced_are_printed_in_the_run_report():
    from rich.console import Console

    from emulator.contracts.runrecord import RunRecord
    from emulator.cli.report import print_run
    from sim.prices import Bill

    record = RunRecord(run_id="r1", backend="local",
                       config={"lambda_platform_not_enforced": {"cpu": "CPU not limited to 0.14 vCPU: no writable cgroup"}})
    console = Console(record=True, width=200)
    print_run(record, "runs/r1", Bill(), console)
    assert "not as on AWS (cpu): CPU not limited to 0.14 vCPU: no writable cgroup" in console.export_text()


def test_init_lines_are_not_mistaken_for_report_lines():
    from emulator.contracts.cloudwatch import init_report_line, init_start_line

    assert parse_report_line(init_report_line(10001.5, "init", "timeout")) is None
    assert parse_report_line(init_start_line("python:3.12.v38", "arn:aws:lambda:us-east-1::runtime:" + "0" * 64)) is None
