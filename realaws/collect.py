"""Collect a finished execution into the run record (``runs/<id>/``, backend ``aws``).

Sources: DescribeExecution, GetExecutionHistory (paginated), ListMapRuns +
DescribeMapRun (item counts), the Map's ResultWriter files (one entry per child
execution), the summary Summarize wrote to S3, the functions' CloudWatch Logs
(paginated FilterLogEvents), and the bill from ``sim.prices``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from emulator.contracts import runrecord
from emulator.contracts.lambdas import InvocationRecord
from realaws import cwlogs, statemachine
from emulator.contracts.job import HANDLERS
from realaws.config import ROLE_TAG, STACK_TAG
from realaws.errors import AwsError, error_code
from realaws.redact import redact
from realaws.session import AwsContext
from sim.prices import bill_for_record, load_prices

# Lambda's clock and Step Functions' clock agree to well under this.
LOG_WINDOW_SLACK_S = 5.0


@dataclass
class CollectOptions:
    """How patient and how thorough collection is."""

    log_wait_s: float = 120.0  # REPORT lines arrive seconds after an invocation ends
    log_poll_s: float = 5.0
    child_histories: int = 200  # fetch each Map child's history when there are at most this many (0 = never)
    page_size: int | None = None  # None = the services' maximum page size
    prices_path: str | None = None  # sim.prices override file
    free_tier: bool = False


@dataclass
class Collected:
    record: runrecord.RunRecord
    run_dir: Path
    bill: Any  # sim.prices.Bill


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _plain(value: Any) -> Any:
    """boto3 values as JSON: datetimes become ISO strings, like the emulator's history."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def execution_history(sfn: Any, execution_arn: str, page_size: int | None = None) -> list[dict[str, Any]]:
    """Every history event (all pages), JSON-ready and with secrets masked."""
    events: list[dict[str, Any]] = []
    config = {"PageSize": page_size} if page_size else {}
    for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution_arn, includeExecutionData=True, PaginationConfig=config):
        events.extend(redact(_plain(page["events"])))
    return events


def function_roles(lam: Any, definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function name -> {handler, memory_mb, timeout_s, role, arch} for every Lambda task of the definition."""
    functions: dict[str, dict[str, Any]] = {}
    seen_top = 0
    for _state, fn_ref, in_map in statemachine.lambda_tasks(definition):
        name = fn_ref.split(":function:")[-1].split(":")[0]
        if name in functions:
            continue
        # Role from the deploy tag; else from the shape: the Map's task is the worker, then first/last.
        guess = "worker" if in_map else ("initialize" if seen_top == 0 else "summarize")
        seen_top += 0 if in_map else 1
        info: dict[str, Any] = {"handler": HANDLERS[guess], "memory_mb": None, "timeout_s": None, "role": guess}
        try:
            found = lam.get_function(FunctionName=fn_ref)
        except Exception as exc:  # noqa: BLE001 - a deleted function still has logs
            if error_code(exc) != "ResourceNotFoundException":
                raise
            functions[name] = info
            continue
        conf, tags = found["Configuration"], found.get("Tags") or {}
        role = tags.get(ROLE_TAG, guess)
        command = (conf.get("ImageConfigResponse", {}).get("ImageConfig", {}).get("Command") or [None])[0]
        functions[name] = {"handler": conf.get("Handler") or command or HANDLERS.get(role, ""),
                           "memory_mb": conf.get("MemorySize"), "timeout_s": conf.get("Timeout"), "role": role,
                           "arch": (conf.get("Architectures") or ["x86_64"])[0], "stack": tags.get(STACK_TAG)}
        package = _package_mb(conf)
        if package:
            functions[name]["package_mb"] = package
    return functions


def _package_mb(conf: dict[str, Any]) -> float | None:
    """A Zip function's package plus its layers in MB (GetFunction's CodeSize); None for an image, whose
    size GetFunction does not give."""
    if conf.get("PackageType", "Zip") != "Zip" or not conf.get("CodeSize"):
        return None
    return (conf["CodeSize"] + sum(layer.get("CodeSize", 0) for layer in conf.get("Layers") or [])) / 1e6


def _result_writers(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Map Run ARN -> ResultWriterDetails, from the Map state's output in the history."""
    found: dict[str, dict[str, Any]] = {}

    def scan(value: Any) -> None:
        if isinstance(value, dict):
            if "MapRunArn" in value and isinstance(value.get("ResultWriterDetails"), dict):
                found[value["MapRunArn"]] = value["ResultWriterDetails"]
            for v in value.values():
                scan(v)
        elif isinstance(value, list):
            for v in value:
                scan(v)

    for event in history:
        if event.get("type") == "MapStateExited":
            scan(_json(event.get("stateExitedEventDetails", {}).get("output")))
    return found


def _children(s3: Any, details: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per Map child execution from the ResultWriter manifest and its result files."""
    manifest = json.loads(s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read())
    children: list[dict[str, Any]] = []
    for files in (manifest.get("ResultFiles") or {}).values():
        for entry in files:
            for item in json.loads(s3.get_object(Bucket=details["Bucket"], Key=entry["Key"])["Body"].read()):
                item_input = _json(item.get("Input"))
                child = {"name": item.get("Name"), "execution_arn": item.get("ExecutionArn"),
                         "status": item.get("Status"), "input": item_input, "output": _json(item.get("Output")),
                         "error": item.get("Error"), "cause": item.get("Cause"),
                         "start": _iso_epoch(item.get("StartDate")), "stop": _iso_epoch(item.get("StopDate"))}
                if isinstance(item_input, dict) and isinstance(item_input.get("rank"), int):
                    child["index"] = item_input["rank"]
                children.append(redact(child))
    children.sort(key=lambda c: (c.get("index", 1 << 30), c.get("start") or 0))
    return children


def _iso_epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def map_runs(sfn: Any, s3: Any, execution_arn: str, history: list[dict[str, Any]],
             options: CollectOptions) -> list[dict[str, Any]]:
    """Each Map Run's counts, result files and (optionally) its children's histories."""
    writers = _result_writers(history)
    runs: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_map_runs").paginate(executionArn=execution_arn):
        for listed in page["mapRuns"]:
            arn = listed["mapRunArn"]
            described = sfn.describe_map_run(mapRunArn=arn)
            run: dict[str, Any] = {
                "map_run_arn": arn, "status": described.get("status"),
                # mapRun:<machine>/<label>:<id>; the label is the Map state's name unless Label is set.
                "state": arn.split(":mapRun:")[-1].split("/", 1)[-1].rsplit(":", 1)[0],
                "item_counts": described.get("itemCounts", {}), "execution_counts": described.get("executionCounts", {}),
                "max_concurrency": described.get("maxConcurrency"),
                "tolerated_failure_percentage": described.get("toleratedFailurePercentage"),
                "tolerated_failure_count": described.get("toleratedFailureCount"),
                "start": _epoch(described.get("startDate")), "stop": _epoch(described.get("stopDate")),
            }
            details = writers.get(arn)
            if details:
                run["result_writer"] = details
                try:
                    run["children"] = _children(s3, details)
                except Exception as exc:  # noqa: BLE001 - counts are still worth recording
                    run["children_error"] = f"could not read the ResultWriter files: {exc}"
            children = run.get("children") or []
            if options.child_histories and 0 < len(children) <= options.child_histories:
                for child in children:
                    if child.get("execution_arn"):
                        child["history"] = execution_history(sfn, child["execution_arn"], options.page_size)
            runs.append(run)
    return runs


def read_summary(s3: Any, execution_input: dict[str, Any], output: Any) -> dict[str, Any]:
    """What Summarize wrote (``<result_prefix>/summary.json``); {} when there is none."""
    bucket = execution_input.get("bucket")
    prefix = str(execution_input.get("result_prefix") or "").rstrip("/")
    key = output.get("summary_key") if isinstance(output, dict) and output.get("summary_key") else f"{prefix}/summary.json"
    if not bucket or not key.strip("/"):
        return {}
    try:
        return redact(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except Exception as exc:  # noqa: BLE001 - a failed run may have no summary
        if error_code(exc) in ("NoSuchKey", "404", "NoSuchBucket"):
            return {}
        raise


def expected_invocations(history: list[dict[str, Any]], runs: list[dict[str, Any]]) -> int:
    """A lower bound on REPORT lines: top-level Lambda task attempts plus Map items that ran."""
    top = sum(1 for e in history if e.get("type") == "TaskStarted"
              and e.get("taskStartedEventDetails", {}).get("resourceType") == "lambda")
    items = sum(int(r["item_counts"].get(k, 0)) for r in runs for k in ("succeeded", "failed", "timedOut"))
    return top + items


def collect_logs(logs: Any, functions: dict[str, dict[str, Any]], start: float, stop: float, expected: int,
                 options: CollectOptions, sleep: Callable[[float], None] = time.sleep,
                 ) -> tuple[list[InvocationRecord], dict[tuple[str, str], list[str]], int]:
    """(invocations, log streams, ingested bytes) of the functions within the execution's time window."""
    longest = max((f.get("timeout_s") or 900) for f in functions.values()) if functions else 900
    # A Lambda call abandoned by Step Functions (stop, timeout) may run and log after the execution ends.
    window = (int((start - LOG_WINDOW_SLACK_S) * 1000), int((stop + longest + LOG_WINDOW_SLACK_S) * 1000))
    groups = {name: f"/aws/lambda/{name}" for name in functions}
    deadline = time.monotonic() + options.log_wait_s
    while True:
        reports = {name: cwlogs.fetch_events(logs, group, *window, pattern='"REPORT RequestId"',
                                             page_size=options.page_size) for name, group in groups.items()}
        if sum(map(len, reports.values())) >= expected or time.monotonic() >= deadline:
            break
        sleep(options.log_poll_s)
    invocations: list[InvocationRecord] = []
    streams: dict[tuple[str, str], list[str]] = {}
    total_bytes = 0
    for name, group in groups.items():
        events = cwlogs.fetch_events(logs, group, *window, page_size=options.page_size)
        invocations += cwlogs.invocations_from_events(name, group, reports[name], events)
        streams.update(cwlogs.log_streams(group, events))
        total_bytes += cwlogs.ingested_bytes(events)
    invocations.sort(key=lambda r: r.start)
    return invocations, streams, total_bytes


def collect(ctx: AwsContext, execution_arn: str, runs_dir: Path, options: CollectOptions | None = None,
            say: Callable[[str], None] = lambda _: None) -> Collected:
    """Write ``runs/<execution name>/`` for a finished execution and return it with its bill.

    Raises:
        AwsError: the execution is still running, or AWS refused a call.
    """
    options = options or CollectOptions()
    ctx.check_credentials()
    sfn, s3, lam = ctx.client("stepfunctions"), ctx.client("s3"), ctx.client("lambda")
    described = sfn.describe_execution(executionArn=execution_arn)
    if described["status"] == "RUNNING":
        raise AwsError(f"execution {described['name']} is still RUNNING; collect it when it has finished "
                       "(`lambdatwin aws run` waits and collects by itself)")
    start, stop = _epoch(described["startDate"]), _epoch(described.get("stopDate")) or time.time()
    machine = sfn.describe_state_machine_for_execution(executionArn=execution_arn)
    definition = json.loads(machine["definition"])
    execution_input = redact(_json(described.get("input")) or {})
    output = redact(_json(described.get("output")))

    say("execution history")
    history = execution_history(sfn, execution_arn, options.page_size)
    say("Map Runs")
    runs = map_runs(sfn, s3, execution_arn, history, options)
    summary = read_summary(s3, execution_input if isinstance(execution_input, dict) else {}, output)
    functions = function_roles(lam, definition)
    say("CloudWatch Logs (REPORT lines)")
    invocations, streams, log_bytes = collect_logs(ctx.client("logs"), functions, start, stop,
                                                   expected_invocations(history, runs), options)
    # REPORT's Memory Size is what was billed, even if the function changed since.
    for name, fn in functions.items():
        if fn["memory_mb"] is None:
            fn["memory_mb"] = next((i.memory_size_mb for i in invocations if i.function == name), None)
    worker = next((f for f in functions.values() if f["role"] == "worker"), {})
    inp = execution_input if isinstance(execution_input, dict) else {}
    record = runrecord.RunRecord(
        run_id=described["name"], backend="aws",
        config={"stack": worker.get("stack") or machine.get("name"), "region": ctx.region,
                "state_machine_arn": machine["stateMachineArn"], "execution_input": inp,
                "workers": inp.get("world_size") or summary.get("world_size"), "batch_size": inp.get("batch_size"),
                "max_concurrency": inp.get("max_concurrency"), "comm": inp.get("comm") or "none",
                "worker_memory_mb": worker.get("memory_mb"), "arch": worker.get("arch", "x86_64"),
                "log_bytes": log_bytes},
        functions={name: {k: fn[k] for k in ("handler", "memory_mb", "timeout_s", "role", "package_mb") if k in fn}
                   for name, fn in functions.items()},
        execution={"name": described["name"], "arn": execution_arn, "status": described["status"],
                   "start": start, "stop": stop, "error": described.get("error"), "cause": described.get("cause"),
                   "output": output},
        history=history, invocations=invocations, summary=summary, map_runs=runs)
    bill = bill_for_record(record, load_prices(options.prices_path), free_tier=options.free_tier)
    record.config["actual_cost"] = bill.to_dict()
    run_dir = Path(runs_dir) / record.run_id
    runrecord.save(record, run_dir)
    runrecord.write_log_streams(run_dir, streams)
    return Collected(record=record, run_dir=run_dir, bill=bill)
