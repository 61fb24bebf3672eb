"""`lambdatwin aws run` / `collect` on a moto account: REPORT parsing, pagination, the run record, no secrets.

moto executes the state machine (its Lambda returns queued results: no handler code runs), so
what the handlers would have written — rank results, the summary, CloudWatch lines — is seeded
the way Lambda would write it. Everything else is the real code path: data staging, StartExecution,
following, DescribeExecution, history, Map Runs, FilterLogEvents, the bill and the record.
"""

from __future__ import annotations

import io
import os
import time
import zipfile

import pytest

from emulator.contracts.cloudwatch import parse_report_line
from emulator.contracts.runrecord import load
from realaws import cwlogs
from realaws.collect import CollectOptions, function_roles
from realaws.deploy import deploy
from realaws.images import ImageMissingError
from emulator.contracts.job import JobConfig, resolve_partition_size
from realaws.run import RunOptions, run_job
from sim.prices import PriceTable, bill_for_record
from tests.realaws_helpers import (
    ACCOUNT,
    FAKE_KEY_ID,
    FAKE_SECRET,
    REGION,
    SEED_REPORT,
    STACK,
    all_files_text,
    hosted_zone,
    invocation_lines,
    moto_runnable_definition,
    push_image,
    put_json,
    put_log_lines,
    queue_lambda_results,
    stack_config,
)

BUCKET = f"{STACK}-{ACCOUNT}-{REGION}"
GROUP = f"/aws/lambda/{STACK}-worker"


def _events(lines: list[str], stream: str = "2026/11/25/[$LATEST]abc", t0: int = 1_000_000) -> list[dict]:
    return [{"timestamp": t0 + 10 * i, "message": line + "\n", "logStreamName": stream} for i, line in enumerate(lines)]


def test_the_seed_report_line_becomes_an_invocation_record():
    report = parse_report_line(SEED_REPORT)
    assert (report.duration_ms, report.billed_duration_ms, report.memory_size_mb, report.max_memory_used_mb,
            report.init_duration_ms, report.status) == (620.23, 621, 128, 89, 486.66, None)
    rid = report.request_id
    events = _events([f"START RequestId: {rid} Version: $LATEST", "[INFO] inferring", f"END RequestId: {rid}",
                      SEED_REPORT])
    [record] = cwlogs.invocations_from_events("worker", GROUP, [events[-1]], events)
    assert record.request_id == rid and record.status == "success" and record.error_type is None
    assert record.billed_duration_ms == 621 and record.init_duration_ms == 486.66
    assert record.start == 1000.0 and record.end == 1000.02, "timed by its START and END lines"


def test_timeouts_and_uncaught_errors_are_classified():
    timeout = invocation_lines("11111111-1111-1111-1111-111111111111", 3000.0, 128, 60, status="timeout")
    crash = invocation_lines("22222222-2222-2222-2222-222222222222", 12.5, 128, 61,
                             handler_lines=("[ERROR] PartitionError: s3://b/k: not a readable torch .pt file",))
    events = _events(timeout) + _events(crash, stream="2026/11/25/[$LATEST]def", t0=2_000_000)
    reports = [e for e in events if e["message"].startswith("REPORT")]
    by_id = {r.request_id: r for r in cwlogs.invocations_from_events("worker", GROUP, reports, events)}
    assert by_id["11111111-1111-1111-1111-111111111111"].status == "timeout"
    assert by_id["11111111-1111-1111-1111-111111111111"].error_type == "Sandbox.Timedout"
    assert (by_id["22222222-2222-2222-2222-222222222222"].status,
            by_id["22222222-2222-2222-2222-222222222222"].error_type) == ("error", "PartitionError")


def test_zip_functions_carry_their_package_and_layers_size(aws):
    lam = aws.client("lambda")
    role = aws.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("handler.py", os.urandom(300_000).hex())  # incompressible enough to give a size
    lam.create_function(FunctionName=f"{STACK}-worker", Runtime="python3.12", Role=role, Handler="handler.h",
                        Code={"ZipFile": code.getvalue()}, MemorySize=2048, Timeout=300)
    definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True, "ItemProcessor": {
        "StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True,
                                         "Parameters": {"FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
                                                                        f"{STACK}-worker"}}}}}}}
    [fn] = function_roles(lam, definition).values()
    size = lam.get_function(FunctionName=f"{STACK}-worker")["Configuration"]["CodeSize"]
    assert fn["role"] == "worker" and size > 300_000 and fn["package_mb"] == pytest.approx(size / 1e6)


def test_filter_log_events_is_read_across_pages(aws):
    lines = [SEED_REPORT.replace("3f0c2a4e-1b2c-4d5e-8f90-123456789abc", f"00000000-0000-0000-0000-{i:012d}")
             for i in range(120)]
    t0 = int(time.time() * 1000)
    put_log_lines(aws, GROUP, "2026/11/25/[$LATEST]abc", lines, start_ms=t0)
    logs = aws.client("logs")
    one_page = logs.filter_log_events(logGroupName=GROUP, limit=25)
    assert len(one_page["events"]) == 25 and one_page.get("nextToken"), "the test must span several pages"
    events = cwlogs.fetch_events(logs, GROUP, t0 - 1000, t0 + 10_000, pattern='"REPORT RequestId"', page_size=25)
    assert len(events) == 120
    assert cwlogs.fetch_events(logs, "/aws/lambda/absent", t0 - 1000, t0 + 10_000) == []


def _moto_forgets_map_runs(monkeypatch):
    """moto drops an execution's Map Run records when it ends (ListMapRuns then raises AttributeError
    inside moto); AWS keeps them. Answer "no Map Runs" as a finished moto execution effectively has."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.list_map_runs

    def list_map_runs(self, execution_arn):
        try:
            return original(self, execution_arn)
        except AttributeError:
            return {"mapRuns": []}

    monkeypatch.setattr(StepFunctionsParserBackend, "list_map_runs", list_map_runs)


def test_deploy_run_collect_writes_the_emulators_record_and_no_secret(aws_executing, tmp_path, monkeypatch):
    _moto_forgets_map_runs(monkeypatch)
    ctx, run_id = aws_executing, "20261125T000000Z-abcdef"
    result_prefix = f"runs/{run_id}/results"
    definition = moto_runnable_definition(tmp_path, BUCKET, f"{result_prefix}/map")
    cfg = stack_config(definition_path=str(definition))
    hosted_zone(ctx)
    with pytest.raises(ImageMissingError):  # the first deploy makes the repository and asks for the image
        deploy(ctx, cfg, wait_rendezvous_s=0)
    push_image(ctx)
    deploy(ctx, cfg, wait_rendezvous_s=0)

    # What the three handlers would return and write (moto runs no handler code).
    world = 2
    init_output = {"bucket": BUCKET, "prefix": "data/x/", "world_size": world, "max_concurrency": world,
                   "result_prefix": result_prefix, "job_id": run_id, "assignment_key": f"{result_prefix}/assignment.json",
                   "map_results_prefix": f"{result_prefix}/map", "partitions": world, "batch_size": 512}
    items = [{"bucket": BUCKET, "keys": [f"data/x/part-{r:05d}.pt"], "rank": r, "world_size": world,
              "result_prefix": result_prefix, "comm": "none", "job_id": run_id} for r in range(world)]
    summary = {"complete": True, "world_size": world, "ranks_ok": [0, 1], "missing_ranks": [], "failed_ranks": [],
               "rows": 610, "mae": 0.093, "rmse": 0.115, "job_id": run_id, "message": "all 2 ranks finished: 610 rows",
               "summary_key": f"{result_prefix}/summary.json"}
    queue_lambda_results([init_output, *({"rank": r, "rows": 305, "result_key": f"{result_prefix}/{r}.json"}
                                          for r in range(world)), summary])
    put_json(ctx, BUCKET, init_output["assignment_key"], items)
    put_json(ctx, BUCKET, summary["summary_key"], summary)
    # The REPORT lines Lambda writes, one stream per environment, with a secret a careless handler printed.
    now = int(time.time() * 1000)
    rids = [f"aaaaaaaa-0000-0000-0000-00000000000{i}" for i in range(4)]
    for i, (fn, rid) in enumerate(zip(["initialize", "worker", "worker", "summarize"], rids)):
        lines = invocation_lines(rid, 620.23 + i, 2048 if fn == "worker" else 256, 89 + i, init_ms=486.66,
                                 handler_lines=(f"env AWS_SECRET_ACCESS_KEY={FAKE_SECRET}",))
        put_log_lines(ctx, f"/aws/lambda/{STACK}-{fn}", f"2026/11/25/[$LATEST]{i:032x}", lines, start_ms=now + 100 * i)

    job = JobConfig(data_size_bytes=2_000_000, partition_size_bytes=resolve_partition_size(2_000_000, None, world),
                    workers=world, function_prefix=STACK)
    opts = RunOptions(job=job, run_id=run_id, poll_s=0.2, timeout_s=60,
                      data_cache=tmp_path / "cache", collect=CollectOptions(log_wait_s=5, log_poll_s=0.5))
    collected = run_job(ctx, cfg, opts, tmp_path / "runs")

    record = load(collected.run_dir / "record.json")
    assert record.backend == "aws" and record.run_id == run_id
    assert record.execution["status"] == "SUCCEEDED"
    assert record.summary["rows"] == 610 and record.summary["complete"]
    assert sorted(i.request_id for i in record.invocations) == rids
    assert {i.function for i in record.invocations} == {f"{STACK}-{f}" for f in ("initialize", "worker", "summarize")}
    assert all(i.init_duration_ms == 486.66 and i.status == "success" for i in record.invocations)
    assert [i.function for i in record.invocations_of("worker")] == [f"{STACK}-worker"] * 2
    # Image functions: GetFunction gives no size, so the record claims none (INIT by package size stays a prior).
    assert not any("package_mb" in fn for fn in record.functions.values())
    # Cost from sim's price table, the same function the emulator's report uses.
    expected = bill_for_record(record, PriceTable())
    assert record.config["actual_cost"]["total_usd"] == pytest.approx(expected.total)
    assert expected.total > 0
    # Uploaded data really is in the bucket under the run's prefix.
    keys = [o["Key"] for o in ctx.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert sum(k.endswith(".pt") for k in keys) == world
    # Nothing secret lands on disk: not the credentials of the session, not what a handler printed.
    text = all_files_text(collected.run_dir)
    assert FAKE_SECRET not in text and FAKE_KEY_ID not in text
    # Nor the rendezvous secret deploy generated (it is in no execution input).
    rendezvous_secret = ctx.client("ssm").get_parameter(Name=f"/{STACK}/rendezvous/secret", WithDecryption=True)
    assert rendezvous_secret["Parameter"]["Value"] not in text
    assert "REPORT RequestId: aaaaaaaa-0000-0000-0000-000000000001" in text, "the log streams are kept"
