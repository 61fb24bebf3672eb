"""ResultWriter of a Distributed Map: child execution results to S3, or reshaped in the state output.

AWS rules (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html):

- With ``Resource: arn:aws:states:::s3:putObject`` and ``Parameters`` {Bucket, Prefix}, results go to
  ``<Prefix>/<map run id>/`` as ``SUCCEEDED_n``, ``FAILED_n`` and ``PENDING_n`` files and a
  ``manifest.json``; the state's output is ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``.
- ``WriterConfig.OutputType``: ``JSON`` (each file one JSON array, the default) or ``JSONL``
  (one result per line).
- ``WriterConfig.Transformation``: ``NONE`` (each result with its execution metadata: ExecutionArn,
  Input, Output, Status, ...; the default), ``COMPACT`` (only the child outputs) or ``FLATTEN``
  (the child outputs, arrays flattened one level).
- With ``WriterConfig`` and no ``Resource``, nothing is written: the transformed results are the
  state's output.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import emulator.stepfunctions.errors as E
from emulator.stepfunctions.history import as_json
from emulator.stepfunctions.templates import resolve_template

FILE_GROUPS = ("SUCCEEDED", "FAILED", "PENDING")


def failure_output(child: dict[str, Any]) -> dict[str, Any]:
    """How a failed or timed-out child appears among the Map's results: its error and cause."""
    return {"Error": child.get("error"), "Cause": child.get("cause")}


def compact(children: list[dict[str, Any]]) -> list[Any]:
    """Each child's output (a failed child's error and cause), in item order."""
    return [c.get("output") if c["status"] == "SUCCEEDED" else failure_output(c)
            for c in children if c["status"] in ("SUCCEEDED", "FAILED", "TIMED_OUT")]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts is not None else None


def _metadata(child: dict[str, Any], state_machine_arn: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ExecutionArn": child.get("execution_arn"), "Input": as_json(child["input"]),
        "InputDetails": {"Included": True}, "Name": child["name"], "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE", "StartDate": _iso(child.get("start")),
        "StateMachineArn": state_machine_arn, "Status": child["status"], "StopDate": _iso(child.get("stop")),
    }
    if child["status"] == "SUCCEEDED":
        entry.update(Output=as_json(child.get("output")), OutputDetails={"Included": True})
    elif child["status"] in ("FAILED", "TIMED_OUT"):
        entry.update(Error=child.get("error"), Cause=child.get("cause"))
    return entry


def transform(children: list[dict[str, Any]], transformation: str, state_machine_arn: str) -> list[Any]:
    """The results of ``children`` under a WriterConfig Transformation."""
    if transformation == "NONE":
        return [_metadata(c, state_machine_arn) for c in children]
    outputs = compact(children)
    if transformation == "FLATTEN":
        return [x for out in outputs for x in (out if isinstance(out, list) else [out])]
    return outputs


def _group(child: dict[str, Any]) -> str:
    return {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "TIMED_OUT": "FAILED"}.get(child["status"], "PENDING")


def write_results(s3: Any, name: str, writer: dict, map_run_arn: str, run_id: str, state_machine_arn: str,
                  children: list[dict[str, Any]], data: Any, ctx: dict) -> Any:
    """Apply ResultWriter; returns the Map state's result (S3 details, or the transformed results).

    Raises:
        StatesError: ``States.ResultWriterFailed`` when S3 refuses a write.
    """
    config = writer.get("WriterConfig") or {}
    transformation = config.get("Transformation", "NONE")
    if "Resource" not in writer:
        return transform(children, transformation, state_machine_arn)
    if s3 is None:
        raise E.StatesError(E.RESULT_WRITER_FAILED, f"state {name!r}: ResultWriter needs an S3 client; none was given")
    params = resolve_template(writer.get("Parameters", {}), data, ctx)
    bucket, prefix = params.get("Bucket"), str(params.get("Prefix", "")).rstrip("/")
    base = f"{prefix}/{run_id}" if prefix else run_id
    jsonl = config.get("OutputType", "JSON") == "JSONL"
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    try:
        for group in FILE_GROUPS:
            members = [c for c in children if _group(c) == group]
            if not members:
                continue
            entries = transform(members, transformation, state_machine_arn)
            text = "".join(json.dumps(e) + "\n" for e in entries) if jsonl else json.dumps(entries)
            key = f"{base}/{group}_0.{'jsonl' if jsonl else 'json'}"
            body = text.encode()
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            files[group].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
        s3.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())
    except Exception as exc:  # noqa: BLE001 - any S3 failure is a ResultWriter failure
        raise E.StatesError(E.RESULT_WRITER_FAILED, f"state {name!r}: could not write results to s3://{bucket}/{base}: {exc}") from exc
    return {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}/manifest.json"}}
