"""The Map state, INLINE and DISTRIBUTED: item sources, batching, concurrency, tolerance, ResultWriter."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from emulator.contracts import aws
from emulator.stepfunctions import errors as E
from emulator.stepfunctions.definition import S3_GET_OBJECT, S3_LIST_OBJECTS
from emulator.stepfunctions.history import as_json
from emulator.stepfunctions.paths import evaluate
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step
from emulator.stepfunctions.templates import resolve_template

DISTRIBUTED_MAX_CONCURRENCY = 10_000  # AWS's cap on concurrent child executions


def _number(step: Step, field: str, default: float | None) -> float | None:
    value = step.lang.value(step, field, default)
    if value is default:
        return value
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise E.StatesError(E.RUNTIME, f"State {step.name!r}: {field} gave {value!r}; expected a non-negative number")
    return value


def read_items(execution: ExecutionPort, step: Step) -> list[Any]:
    """The Map's items: from ItemReader (S3), or from ItemsPath (JSONPath) / Items (JSONata)."""
    name, state = step.name, step.state
    reader = state.get("ItemReader")
    if reader is None:
        items = step.lang.items(step)
        if not isinstance(items, list):
            field = "Items" if "Items" in state else f"ItemsPath {state.get('ItemsPath', '$')!r}"
            raise E.StatesError(E.RUNTIME if step.lang.name == "JSONPath" else E.QUERY_EVALUATION_ERROR,
                                f"state {name!r}: {field} is not an array")
        return items
    if execution.s3 is None:
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: ItemReader needs an S3 client; none was given to the engine")
    params = step.lang.template(step, reader.get("Parameters", reader.get("Arguments", {})))
    config = reader.get("ReaderConfig") or {}
    try:
        if reader["Resource"] == S3_LIST_OBJECTS:
            items = []
            for page in execution.s3.get_paginator("list_objects_v2").paginate(**params):
                for obj in page.get("Contents", []):
                    items.append({"Etag": obj.get("ETag", ""), "Key": obj["Key"], "Size": obj.get("Size", 0),
                                  "LastModified": str(obj.get("LastModified", "")), "StorageClass": obj.get("StorageClass", "STANDARD")})
        else:
            body = execution.s3.get_object(**params)["Body"].read().decode()
            if config.get("InputType", "JSON") == "CSV":
                rows = list(csv.reader(io.StringIO(body)))
                header = rows.pop(0) if config.get("CSVHeaderLocation", "FIRST_ROW") == "FIRST_ROW" else config["CSVHeaders"]
                items = [dict(zip(header, row)) for row in rows]
            else:
                items = json.loads(body)
    except E.StatesError:
        raise
    except Exception as exc:  # noqa: BLE001 - boto3/JSON errors all mean the reader failed
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: could not read items from {params}: {exc}") from exc
    if not isinstance(items, list):
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: the JSON at {params} is not an array")
    limit = config.get("MaxItems")
    return items[:limit] if limit else items


def batch_items(state: dict, items: list[Any], data: Any, ctx: dict) -> list[Any]:
    """ItemBatcher: group items into ``{"Items": [...], "BatchInput": ...}`` child inputs."""
    batcher = state.get("ItemBatcher")
    if batcher is None:
        return items
    max_items = batcher.get("MaxItemsPerBatch") or (evaluate(batcher["MaxItemsPerBatchPath"], data, ctx) if "MaxItemsPerBatchPath" in batcher else None)
    max_bytes = batcher.get("MaxInputBytesPerBatch") or (evaluate(batcher["MaxInputBytesPerBatchPath"], data, ctx) if "MaxInputBytesPerBatchPath" in batcher else 256 * 1024)
    batch_input = resolve_template(batcher["BatchInput"], data, ctx) if "BatchInput" in batcher else None
    batches: list[list[Any]] = [[]]
    size = 0
    for item in items:
        item_size = len(as_json(item))
        full = (max_items and len(batches[-1]) >= max_items) or (batches[-1] and size + item_size > max_bytes)
        if full:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += item_size
    out = []
    for batch in batches if batches[0] else []:
        entry: dict[str, Any] = {"Items": batch}
        if batch_input is not None:
            entry["BatchInput"] = batch_input
        out.append(entry)
    return out


def run_map(execution: ExecutionPort, step: Step) -> Any:
    """Run the Map; returns the list of child outputs, or the ResultWriter details."""
    name, state, data, ctx = step.name, step.state, step.input, step.ctx
    processor = state.get("ItemProcessor", state.get("Iterator"))
    config = processor.get("ProcessorConfig") or {}
    distributed = config.get("Mode", "INLINE") == "DISTRIBUTED"
    machine = {k: v for k, v in processor.items() if k != "ProcessorConfig"}
    if step.lang.name == "JSONata" and "ItemBatcher" in state:  # its fields may be expressions
        state = {**state, "ItemBatcher": step.lang.template(step, state["ItemBatcher"])}
    items = batch_items(state, read_items(execution, step), data, ctx)
    selector = state.get("ItemSelector", state.get("Parameters"))
    inputs = []
    for index, value in enumerate(items):
        item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": value}}}
        inputs.append(step.lang.template(step, selector, item_ctx) if selector is not None else value)

    max_concurrency = int(_number(step, "MaxConcurrency", 0) or 0)
    if distributed:
        max_concurrency = min(max_concurrency or DISTRIBUTED_MAX_CONCURRENCY, DISTRIBUTED_MAX_CONCURRENCY)
    workers = max(1, min(len(inputs), max_concurrency or len(inputs) or 1))
    execution.history.add("MapStateStarted", {"length": len(inputs)})
    if distributed:
        return _run_distributed(execution, step, machine, inputs, workers)
    return _run_inline(execution, step, machine, inputs, workers)


def _run_inline(execution: ExecutionPort, step: Step, machine: dict, inputs: list[Any], workers: int) -> list[Any]:
    name = step.name
    results: list[Any] = [None] * len(inputs)
    failure: list[E.StatesError] = []

    def run(index: int) -> None:
        if failure or execution.stop.is_set():
            return
        execution.history.add("MapIterationStarted", {"name": name, "index": index})
        try:
            results[index] = execution.run_machine(machine, inputs[index], {"Index": index, "Value": inputs[index]}, step)
            execution.history.add("MapIterationSucceeded", {"name": name, "index": index})
        except E.StatesError as exc:
            execution.history.add("MapIterationFailed", {"name": name, "index": index})
            failure.append(exc)

    _run_pool(run, len(inputs), workers, execution)
    if failure:
        raise failure[0]  # the engine records MapStateFailed once, when no retry is left
    execution.history.add("MapStateSucceeded")
    return results


def _run_pool(run: Any, count: int, workers: int, execution: ExecutionPort) -> None:
    stopped: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            run(index)
        except E.ExecutionStopped as exc:
            stopped.append(exc)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="map") as pool:
        list(pool.map(guarded, range(count)))
    if stopped:
        raise stopped[0]


def _run_distributed(execution: ExecutionPort, step: Step, machine: dict, inputs: list[Any], workers: int) -> Any:
    name, state = step.name, step.state
    run_id = str(uuid.uuid4())
    label = state.get("Label", name)
    map_run_arn = aws.map_run_arn(execution.machine_name, label, run_id)
    execution.history.add("MapRunStarted", {"mapRunArn": map_run_arn})
    tolerated_pct = _number(step, "ToleratedFailurePercentage", None)
    tolerated_count = _number(step, "ToleratedFailureCount", None)
    total = len(inputs)
    children: list[dict[str, Any]] = [None] * total  # type: ignore[list-item]
    lock = threading.Lock()
    counts = {"failed": 0, "succeeded": 0}

    def exceeded(failed: int) -> bool:
        if tolerated_pct is None and tolerated_count is None:
            return failed > 0
        over_pct = tolerated_pct is not None and total and failed * 100.0 / total > tolerated_pct
        over_count = tolerated_count is not None and failed > tolerated_count
        if tolerated_pct is not None and tolerated_count is not None:
            return bool(over_pct and over_count)
        return bool(over_pct or over_count)

    def run_child(index: int) -> None:
        child_name = str(uuid.uuid4())
        with lock:
            abort = exceeded(counts["failed"])
        if abort or execution.stop.is_set():
            children[index] = {"index": index, "name": child_name, "status": "ABORTED", "input": inputs[index]}
            return
        child = execution.spawn_child(machine, inputs[index], name=child_name,
                                      arn=aws.execution_arn(f"{execution.machine_name}/{label}", child_name),
                                      item={"Index": index, "Value": inputs[index]}, parent=step)
        if child.status == "ABORTED":
            execution.check_running()  # the parent stopped or timed out: unwind with that reason
            raise E.ExecutionStopped("stopped")
        record: dict[str, Any] = {"index": index, "name": child_name, "execution_arn": child.execution_arn,
                                  "input": inputs[index], "start": child.start, "status": child.status}
        if child.status == "SUCCEEDED":
            record["output"] = child.output
        else:
            record.update(error=child.error, cause=child.cause)
        with lock:
            counts["succeeded" if child.status == "SUCCEEDED" else "failed"] += 1
        record["stop"] = child.stop
        record["history"] = child.history
        children[index] = record

    _run_pool(run_child, total, workers, execution)
    item_counts = {status: sum(1 for c in children if c["status"] == status) for status in ("SUCCEEDED", "FAILED", "ABORTED")}
    item_counts = {"total": total, "succeeded": item_counts["SUCCEEDED"], "failed": item_counts["FAILED"],
                   "aborted": item_counts["ABORTED"], "pending": 0, "running": 0, "timedOut": 0, "resultsWritten": 0}
    run_record: dict[str, Any] = {"map_run_arn": map_run_arn, "state": name, "item_counts": item_counts,
                                  "max_concurrency": workers, "children": children}
    execution.record_map_run(run_record)
    writer = state.get("ResultWriter")
    writer_output = None
    if writer is not None:
        writer_output = _write_results(execution, step, writer, map_run_arn, run_id, children)
        run_record["result_writer"] = writer_output["ResultWriterDetails"]
        item_counts["resultsWritten"] = total
    failed = item_counts["failed"]
    if exceeded(failed):
        cause = (f"The specified tolerated failure threshold was exceeded: {failed} of {total} items failed "
                 f"(tolerated: {tolerated_pct if tolerated_pct is not None else 0}%"
                 + (f", {tolerated_count} items" if tolerated_count is not None else "") + ")")
        execution.history.add("MapRunFailed", {"error": E.EXCEED_TOLERATED, "cause": cause})
        raise E.StatesError(E.EXCEED_TOLERATED, cause)
    execution.history.add("MapRunSucceeded")
    execution.history.add("MapStateSucceeded")
    if writer_output is not None:
        return writer_output
    return [c.get("output") for c in children]


def _write_results(execution: ExecutionPort, step: Step, writer: dict, map_run_arn: str, run_id: str,
                   children: list[dict[str, Any]]) -> dict[str, Any]:
    """ResultWriter: ``<Prefix>/<run id>/manifest.json`` and SUCCEEDED_0 / FAILED_0 / PENDING_0 files."""
    name = step.name
    if execution.s3 is None:
        raise E.StatesError(E.RESULT_WRITER_FAILED, f"state {name!r}: ResultWriter needs an S3 client; none was given")
    params = step.lang.template(step, writer.get("Parameters", writer.get("Arguments", {})))
    bucket, prefix = params.get("Bucket"), str(params.get("Prefix", "")).rstrip("/")
    base = f"{prefix}/{run_id}" if prefix else run_id

    def iso(ts: float | None) -> str | None:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts is not None else None

    groups: dict[str, list[dict[str, Any]]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": []}
    for child in children:
        status = child["status"] if child["status"] in ("SUCCEEDED", "FAILED") else "PENDING"
        entry: dict[str, Any] = {
            "ExecutionArn": child.get("execution_arn"), "Input": as_json(child["input"]),
            "InputDetails": {"Included": True}, "Name": child["name"], "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE", "StartDate": iso(child.get("start")),
            "StateMachineArn": execution.machine_arn, "Status": child["status"], "StopDate": iso(child.get("stop")),
        }
        if status == "SUCCEEDED":
            entry.update(Output=as_json(child.get("output")), OutputDetails={"Included": True})
        elif status == "FAILED":
            entry.update(Error=child.get("error"), Cause=child.get("cause"))
        groups[status].append(entry)
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    try:
        for status, entries in groups.items():
            if not entries:
                continue
            key = f"{base}/{status}_0.json"
            body = json.dumps(entries).encode()
            execution.s3.put_object(Bucket=bucket, Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
        execution.s3.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())
    except Exception as exc:  # noqa: BLE001 - any S3 failure is a ResultWriter failure
        raise E.StatesError(E.RESULT_WRITER_FAILED, f"state {name!r}: could not write results to s3://{bucket}/{base}: {exc}") from exc
    return {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}/manifest.json"}}


def run_map_state(execution: ExecutionPort, step: Step) -> Outcome:
    """The Map runner of the state table."""
    return Outcome(run_map(execution, step))
