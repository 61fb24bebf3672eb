"""Lambda execution environments as containers: the unmodified awslambdaric in the worker image drives
the handlers through the emulator's Runtime API, with MemorySize, Timeout and OOM enforced by the container.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from emulator.contracts.cloudwatch import parse_report_line
from emulator.docker.environment import ContainerEnvironment, cpu_share, deployment_archive
from emulator.contracts.lambdas import FunctionConfig, LambdaFunctionError
from emulator.lambda_runtime.service import LambdaService
from tests.docker_helpers import docker, leftovers, topology, worker_image  # noqa: F401  (fixtures)

pytestmark = pytest.mark.docker
HANDLERS = Path(__file__).resolve().parent / "lambda_test_handlers.py"
SLOW_INIT = Path(__file__).resolve().parent / "lambda_slow_init.py"


@pytest.fixture(scope="module")
def task_archive() -> bytes:
    """The test handlers as a deployment package on top of the worker image (/var/task)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / HANDLERS.name).write_bytes(HANDLERS.read_bytes())
        (Path(tmp) / SLOW_INIT.name).write_bytes(SLOW_INIT.read_bytes())
        return deployment_archive(Path(tmp))


@pytest.fixture
def containers(worker_image, docker, task_archive) -> Iterator[functools.partial]:
    """An environment factory: each execution environment a container behind its own cone NAT."""
    with topology(worker_image, docker, nat="cone") as topo:
        yield functools.partial(ContainerEnvironment, topology=topo, image=worker_image, task_archive=task_archive)


def fn(name: str, handler: str, **kw) -> FunctionConfig:
    return FunctionConfig(name=name, handler=f"lambda_test_handlers.{handler}", **kw)


def reports(svc: LambdaService, function: str) -> list:
    return [parse_report_line(line) for (group, _), lines in svc.log_streams.items()
            if group == f"/aws/lambda/{function}" for line in lines if line.startswith("REPORT")]


def test_cold_start_then_warm_reuse_in_one_container(containers, docker):
    with LambdaService([fn("echo", "echo", memory_mb=256, timeout_s=30)], environment_factory=containers) as svc:
        first = svc.invoke("echo", {"n": 1})
        second = svc.invoke("echo", {"n": 2})
    assert first["event"] == {"n": 1} and second["warm_count"] == 2, "the warm container must be reused"
    assert first["memory_limit"] == "256" and 0 < first["remaining_ms"] <= 30_000
    cold, warm = svc.records
    assert cold.init_duration_ms is not None and cold.init_duration_ms > 0 and warm.init_duration_ms is None
    cold_report, warm_report = reports(svc, "echo")
    assert cold_report.init_duration_ms == cold.init_duration_ms and cold_report.memory_size_mb == 256
    assert 5 < cold_report.max_memory_used_mb < 256
    lines = [line for (group, _), ls in svc.log_streams.items() if group == "/aws/lambda/echo" for line in ls]
    assert any("echo got {'n': 1}" in line for line in lines), "the handler's stdout reaches the log stream"


def test_memory_size_sets_the_container_limit_and_cpu_share(worker_image, docker, task_archive):
    with topology(worker_image, docker, nat="cone") as topo:
        env = ContainerEnvironment(fn("echo", "echo", memory_mb=512, timeout_s=30), topology=topo,
                                   image=worker_image, task_archive=task_archive)
        try:
            host = env.container.attrs["HostConfig"]
            assert host["Memory"] == 512 * 1024 * 1024 and host["MemorySwap"] == host["Memory"]
            assert host["NanoCpus"] == int(cpu_share(512) * 1e9)
            assert "NET_ADMIN" in host["CapDrop"], "a function cannot change its own network"
        finally:
            env.shutdown()


def test_max_memory_used_is_the_container_cgroup_peak(worker_image, docker, task_archive):
    """REPORT's Max Memory Used vs the daemon's own reading of the cgroup peak, same container."""
    with topology(worker_image, docker, nat="cone") as topo:
        env = ContainerEnvironment(fn("alloc", "allocate", memory_mb=1024, timeout_s=30), topology=topo,
                                   image=worker_image, task_archive=task_archive)
        try:
            env.init()
            outcome = env.invoke("00000000-0000-0000-0000-000000000001", {"mb": 300, "hold_s": 0.5})
            assert outcome.status == "success", outcome.error
            daemon_peak_mb = docker.api.stats(env.container.id, stream=False)["memory_stats"]["max_usage"] / 2**20
        finally:
            env.shutdown()
    assert outcome.max_memory_used_mb >= 300, "the 300 MB the handler touched must show"
    assert abs(outcome.max_memory_used_mb - daemon_peak_mb) <= 0.10 * daemon_peak_mb, (outcome.max_memory_used_mb, daemon_peak_mb)


def test_timeout_resets_the_environment_keeping_tmp_and_reports_status_timeout(containers, docker):
    with LambdaService([fn("sleepy", "tmp_file", timeout_s=3)], environment_factory=containers) as svc:
        assert svc.invoke("sleepy", {"name": "a.bin", "mb": 1})["tmp"] == "/tmp"
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("sleepy", {"name": "b.bin", "mb": 1, "sleep": 60})
        assert info.value.error_type == "Sandbox.Timedout"
        after = svc.invoke("sleepy", {})
        assert {"a.bin", "b.bin"} <= set(after["files"]), "a timeout resets the runtime, not /tmp"
        full = svc.invoke("sleepy", {"name": "big.bin", "mb": 600, "allocate": True})
        assert full["written"] is False and full["errno"] == 28, "ENOSPC past EphemeralStorage (512 MB)"
        run_id = containers.keywords["topology"].run_id
        live = [c.name for c in docker.containers.list(filters={"label": [f"lambdatwin.run={run_id}",
                                                                           "lambdatwin.role=function"]})]
        assert len(live) == 1, f"the timed-out container must be gone: {live}"
    ok, timed_out, again, _ = svc.records
    assert timed_out.status == "timeout" and again.init_phase == "suppressed" and again.log_stream == ok.log_stream
    report = reports(svc, "sleepy")[1]
    assert report.status == "timeout" and report.duration_ms == 3000.0


def test_memory_over_the_limit_is_out_of_memory(containers):
    with LambdaService([fn("hog", "allocate", memory_mb=128, timeout_s=30)], environment_factory=containers) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("hog", {"mb": 400, "hold_s": 2})
    assert info.value.error_type == "Runtime.ExitError" and "signal: killed" in info.value.message
    report = reports(svc, "hog")[0]
    assert report.status == "error" and report.error_type == "Runtime.OutOfMemory"
    assert report.max_memory_used_mb == 128, "the OOM killer fires at MemorySize"


def test_environment_freeze_and_runtime_api_details_in_a_container(containers):
    """Only Lambda's variables, cwd /var/task, a paused container between invokes, the exact response limit."""
    from emulator.contracts import aws
    from tests.test_lambda_platform import LAMBDA_VARIABLES, RUNTIME_SET

    functions = [fn("env", "environment", timeout_s=30), fn("ticker", "background_counter", timeout_s=30),
                 fn("big", "big_response", timeout_s=30, memory_mb=512)]
    with LambdaService(functions, environment_factory=containers) as svc:
        seen = svc.invoke("env", {})
        first = svc.invoke("ticker", {})["ticks"]
        time.sleep(1.0)
        second = svc.invoke("ticker", {})["ticks"]
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("big", {"bytes": aws.MAX_SYNC_RESPONSE_BYTES + 1})
        assert svc.invoke("big", {"bytes": 10}) == "x" * 8, "no Runtime.ExitError after an oversized response"
    assert set(seen["env"]) - RUNTIME_SET == LAMBDA_VARIABLES
    assert seen["cwd"] == "/var/task" and seen["env"]["LAMBDA_TASK_ROOT"] == "/var/task"
    assert second - first < 10, f"the thread ran {second - first} ticks while the container was paused"
    assert info.value.error_type == aws.LAMBDA_RESPONSE_TOO_LARGE


def test_init_over_ten_seconds_with_a_short_timeout_fails_in_a_container(containers):
    slow = FunctionConfig(name="slow", handler="lambda_slow_init.handler", timeout_s=3, environment={"INIT_SLEEP_S": "12"})
    with LambdaService([slow], environment_factory=containers) as svc:
        with pytest.raises(LambdaFunctionError) as info:
            svc.invoke("slow", {})
    assert info.value.error_type == "Sandbox.Timedout"
    kinds = [line.split("\t")[1:3] for (_, _), lines in svc.log_streams.items() for line in lines if line.startswith("INIT_REPORT")]
    assert kinds == [["Phase: init", "Status: timeout"], ["Phase: invoke", "Status: timeout"]]


def test_runtime_exit_and_import_error(containers):
    bad = FunctionConfig(name="bad", handler="no_such_module.handler", timeout_s=30)
    with LambdaService([fn("die", "die", timeout_s=30), bad], environment_factory=containers) as svc:
        with pytest.raises(LambdaFunctionError) as died:
            svc.invoke("die", {})
        with pytest.raises(LambdaFunctionError) as missing:
            svc.invoke("bad", {})
    assert died.value.error_type == "Runtime.ExitError"
    assert missing.value.error_type == "Runtime.ImportModuleError"


def test_boto3_lambda_invoke_reaches_a_container(containers):
    import base64
    import json

    import boto3

    from emulator.lambda_runtime.invoke_api import InvokeAPIServer

    functions = [fn("echo", "echo", timeout_s=30), fn("fail", "fail", timeout_s=30)]
    with LambdaService(functions, environment_factory=containers) as svc, InvokeAPIServer(svc) as api:
        client = boto3.client("lambda", endpoint_url=api.endpoint_url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        ok = client.invoke(FunctionName="echo", Payload=json.dumps({"k": 1}), LogType="Tail")
        assert json.loads(ok["Payload"].read())["event"] == {"k": 1} and "FunctionError" not in ok
        assert "REPORT RequestId:" in base64.b64decode(ok["LogResult"]).decode()
        bad = client.invoke(FunctionName="fail", Payload=b'{"why": "x"}')
        assert bad["FunctionError"] == "Unhandled"
        assert json.loads(bad["Payload"].read())["errorType"] == "ValueError"
