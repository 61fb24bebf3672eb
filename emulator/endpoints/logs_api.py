"""The CloudWatch Logs API (awsJson1.1, ``X-Amz-Target: Logs_20140328.<Operation>``) over the twin's log store.

Operations: DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_Operations.html).

* GetLogEvents: without a token it returns the *last* ``limit`` events unless
  ``startFromHead``; ``nextForwardToken``/``nextBackwardToken`` are ``f/<n>``/``b/<n>``
  positions, and at the end of the stream the forward token is the one that was
  passed in (how clients detect the end).
* FilterLogEvents: the filter pattern's term syntax: every plain term or
  ``"quoted phrase"`` must occur, ``?term`` terms need one match, ``-term`` excludes;
  JSON and space-delimited patterns are refused (InvalidParameterException).
"""

from __future__ import annotations

import shlex
from typing import Any, Callable

from emulator.app.logstore import LogStore
from emulator.contracts import aws
from emulator.endpoints.wire import ApiError, page, require

CONTENT_TYPE = "application/x-amz-json-1.1"
_GET_EVENTS_MAX = 10_000


class LogsAPI:
    """Handlers by operation name."""

    def __init__(self, store: LogStore, before_read: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.before_read = before_read  # file pending lines before answering
        self.operations = {name: getattr(self, name) for name in
                           ("DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents")}

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = self.operations.get(operation)
        if handler is None:
            raise ApiError("UnknownOperationException", f"Operation {operation} is not supported by lambdatwin serve")
        self.before_read()
        return handler(body)

    def _group(self, body: dict[str, Any]) -> str:
        group = require(body, "logGroupName")
        if group not in self.store.groups():
            raise ApiError("ResourceNotFoundException", "The specified log group does not exist.")
        return group

    def DescribeLogGroups(self, body: dict[str, Any]) -> dict[str, Any]:
        prefix = body.get("logGroupNamePrefix", "")
        groups = [g for g in self.store.groups() if g.startswith(prefix)]
        items, nxt = page(groups, body.get("nextToken"), body.get("limit"), 50, 50)
        out: dict[str, Any] = {"logGroups": [{"logGroupName": g, "arn": f"{aws.log_group_arn(g)}:*", "storedBytes": 0,
                                              "logGroupArn": aws.log_group_arn(g), "creationTime": 0} for g in items]}
        if nxt:
            out["nextToken"] = nxt
        return out

    def DescribeLogStreams(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._group(body)
        prefix = body.get("logStreamNamePrefix", "")
        order = body.get("orderBy", "LogStreamName")
        if prefix and order == "LastEventTime":
            raise ApiError("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
        infos = [self.store.stream_info(group, s) for s in self.store.streams(group) if s.startswith(prefix)]
        key = (lambda i: i.get("lastEventTimestamp", 0)) if order == "LastEventTime" else (lambda i: i["logStreamName"])
        infos.sort(key=key, reverse=bool(body.get("descending")))
        items, nxt = page(infos, body.get("nextToken"), body.get("limit"), 50, 50, error_code="InvalidParameterException")
        out: dict[str, Any] = {"logStreams": items}
        if nxt:
            out["nextToken"] = nxt
        return out

    def GetLogEvents(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._group(body)
        stream = require(body, "logStreamName")
        if stream not in self.store.streams(group):
            raise ApiError("ResourceNotFoundException", "The specified log stream does not exist.")
        events = [e for e in self.store.events(group, stream) if _in_window(e, body)]
        limit = body.get("limit") or _GET_EVENTS_MAX
        if not (1 <= limit <= _GET_EVENTS_MAX):
            raise ApiError("InvalidParameterException", f"limit must be between 1 and {_GET_EVENTS_MAX}")
        token = body.get("nextToken")
        if token:
            direction, _, position = token.partition("/")
            if direction not in ("f", "b") or not position.isdigit():
                raise ApiError("InvalidParameterException", "The specified nextToken is invalid.")
            pos = min(int(position), len(events))
            start, end = (pos, min(len(events), pos + limit)) if direction == "f" else (max(0, pos - limit), pos)
        elif body.get("startFromHead"):
            start, end = 0, min(len(events), limit)
        else:
            start, end = max(0, len(events) - limit), len(events)
        return {"events": events[start:end], "nextForwardToken": f"f/{end:056d}",
                "nextBackwardToken": f"b/{start:056d}"}

    def FilterLogEvents(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self._group(body)
        names = body.get("logStreamNames")
        prefix = body.get("logStreamNamePrefix")
        if names and prefix:
            raise ApiError("InvalidParameterException", "logStreamNames and logStreamNamePrefix cannot both be specified.")
        streams = [s for s in self.store.streams(group) if (not names or s in names) and (not prefix or s.startswith(prefix))]
        match = _matcher(body.get("filterPattern") or "")
        found = []
        for stream in streams:
            for index, event in enumerate(self.store.events(group, stream)):
                if _in_window(event, body) and match(event["message"]):
                    found.append({"logStreamName": stream, "timestamp": event["timestamp"], "message": event["message"],
                                  "ingestionTime": event["ingestionTime"], "eventId": f"{stream}/{index:012d}"})
        found.sort(key=lambda e: (e["timestamp"], e["eventId"]))
        items, nxt = page(found, body.get("nextToken"), body.get("limit"), 10_000, 10_000,
                          error_code="InvalidParameterException")
        out: dict[str, Any] = {"events": items,
                               "searchedLogStreams": [{"logStreamName": s, "searchedCompletely": True} for s in streams]}
        if nxt:
            out["nextToken"] = nxt
        return out


def _in_window(event: dict[str, Any], body: dict[str, Any]) -> bool:
    start, end = body.get("startTime"), body.get("endTime")
    return (start is None or event["timestamp"] >= start) and (end is None or event["timestamp"] < end)


def _matcher(pattern: str) -> Callable[[str], bool]:
    text = pattern.strip()
    if not text:
        return lambda message: True
    if text.startswith("{") or text.startswith("["):
        raise ApiError("InvalidParameterException", "Invalid filter pattern: JSON and space-delimited filter patterns "
                       "are not supported by lambdatwin serve; use terms and \"quoted phrases\"")
    try:
        terms = shlex.split(text)
    except ValueError:
        raise ApiError("InvalidParameterException", f"Invalid filter pattern: {pattern}") from None
    required = [t for t in terms if not t.startswith(("?", "-"))]
    optional = [t[1:] for t in terms if t.startswith("?")]
    excluded = [t[1:] for t in terms if t.startswith("-")]

    def match(message: str) -> bool:
        return (all(t in message for t in required) and (not optional or any(t in message for t in optional))
                and not any(t in message for t in excluded))

    return match

