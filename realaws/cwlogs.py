"""CloudWatch Logs of the three functions: fetch (paginated FilterLogEvents) and turn into invocation records.

REPORT lines carry the billing fields (parsed by ``emulator.contracts.cloudwatch`` — the
one parser every backend uses); START and END lines of the same request id give
the wall-clock span; an uncaught handler exception's ``[ERROR] Type: message``
line between them gives the error type Lambda does not put on the REPORT line.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Iterable

from emulator.contracts.cloudwatch import parse_report_line
from emulator.contracts.lambdas import InvocationRecord
from realaws.redact import redact_text

# CloudWatch meters each event as its UTF-8 message plus 26 bytes.
EVENT_OVERHEAD_BYTES = 26
_REQUEST_ID = re.compile(r"RequestId:\s*(?P<rid>[0-9A-Za-z-]+)")
# Uncaught exception in the Python runtime: "[ERROR] Type: message" (a space, where logging.error
# output has a tab and a timestamp), or the JSON log format's "errorType".
_UNCAUGHT = re.compile(r"^\[ERROR\] (?P<type>[A-Za-z_][\w.]*):")
_JSON_ERROR = re.compile(r'"errorType"\s*:\s*"(?P<type>[^"]+)"')


def fetch_events(logs: Any, group: str, start_ms: int, end_ms: int, pattern: str | None = None,
                 page_size: int | None = None) -> list[dict[str, Any]]:
    """Every event of ``group`` in [start_ms, end_ms] matching ``pattern`` (all pages); [] if the group is absent."""
    params: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "endTime": end_ms}
    if pattern:
        params["filterPattern"] = pattern
    config = {"PageSize": page_size} if page_size else {}
    events: list[dict[str, Any]] = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**params, PaginationConfig=config):
            events.extend(page.get("events", []))
    except logs.exceptions.ResourceNotFoundException:
        return []
    return events


def _ordered(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_stream[event.get("logStreamName", "")].append(event)
    for stream_events in by_stream.values():
        stream_events.sort(key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))
    return by_stream


def _request_id(message: str) -> str | None:
    m = _REQUEST_ID.search(message)
    return m.group("rid") if m else None


def invocations_from_events(function: str, group: str, report_events: list[dict[str, Any]],
                            all_events: list[dict[str, Any]]) -> list[InvocationRecord]:
    """One record per REPORT line, timed by its START/END lines (or by the REPORT time and duration)."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    errors: dict[str, str] = {}
    # One environment runs one invocation at a time, so within a stream every line
    # between START and END belongs to that request.
    for stream_events in _ordered(all_events).values():
        current: str | None = None
        for event in stream_events:
            message = event["message"]
            if message.startswith("START RequestId:"):
                current = _request_id(message)
                if current:
                    starts[current] = event["timestamp"] / 1000.0
            elif message.startswith("END RequestId:"):
                rid = _request_id(message)
                if rid:
                    ends[rid] = event["timestamp"] / 1000.0
                current = None
            elif current and current not in errors:
                m = _UNCAUGHT.match(message) or (_JSON_ERROR.search(message) if '"ERROR"' in message else None)
                if m:
                    errors[current] = m.group("type")
    records: dict[str, InvocationRecord] = {}
    for event in report_events:
        report = parse_report_line(event["message"])
        if report is None or report.request_id in records:
            continue
        rid = report.request_id
        end = ends.get(rid, event["timestamp"] / 1000.0)
        start = starts.get(rid, end - (report.duration_ms + (report.init_duration_ms or 0.0)) / 1000.0)
        if report.status == "timeout":
            status, error_type = "timeout", report.error_type or "Sandbox.Timedout"
        elif report.status == "error" or rid in errors:
            status, error_type = "error", report.error_type or errors.get(rid)
        else:
            status, error_type = "success", None
        records[rid] = InvocationRecord(
            function=function, request_id=rid, start=start, end=end, duration_ms=report.duration_ms,
            billed_duration_ms=report.billed_duration_ms, memory_size_mb=report.memory_size_mb,
            max_memory_used_mb=report.max_memory_used_mb, init_duration_ms=report.init_duration_ms,
            status=status, error_type=error_type, log_group=group, log_stream=event.get("logStreamName", ""))
    return sorted(records.values(), key=lambda r: r.start)


def log_streams(group: str, events: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(group, stream) -> lines in time order, secrets masked, for ``runrecord.write_log_streams``."""
    return {(group, stream): [redact_text(e["message"].rstrip("\n")) for e in stream_events]
            for stream, stream_events in _ordered(events).items()}


def ingested_bytes(events: Iterable[dict[str, Any]]) -> int:
    """Bytes CloudWatch meters for these events."""
    return sum(len(e["message"].encode()) + EVENT_OVERHEAD_BYTES for e in events)
