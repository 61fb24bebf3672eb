"""Execution history events in the shape of GetExecutionHistory."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any, Callable

_DETAIL_KEYS = {
    "ExecutionStarted": "executionStartedEventDetails",
    "ExecutionSucceeded": "executionSucceededEventDetails",
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "TaskScheduled": "taskScheduledEventDetails",
    "TaskStarted": "taskStartedEventDetails",
    "TaskSucceeded": "taskSucceededEventDetails",
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "LambdaFunctionScheduled": "lambdaFunctionScheduledEventDetails",
    "LambdaFunctionSucceeded": "lambdaFunctionSucceededEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "MapStateStarted": "mapStateStartedEventDetails",
    "MapIterationStarted": "mapIterationStartedEventDetails",
    "MapIterationSucceeded": "mapIterationSucceededEventDetails",
    "MapIterationFailed": "mapIterationFailedEventDetails",
    "MapRunStarted": "mapRunStartedEventDetails",
    "MapRunFailed": "mapRunFailedEventDetails",
}


def as_json(value: Any) -> str:
    """How history details carry input/output: as JSON strings."""
    return json.dumps(value, default=str)


class History:
    """A thread-safe, append-only list of history events.

    ``on_event`` (if given) is called with each event as it is recorded.
    """

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None = None, clock: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._on_event = on_event
        self._clock = clock

    def add(self, event_type: str, details: dict[str, Any] | None = None, previous: int | None = None) -> int:
        """Record an event; returns its id."""
        now = self._clock.now() if self._clock is not None else datetime.now(timezone.utc).timestamp()
        with self._lock:
            event_id = len(self.events) + 1
            event: dict[str, Any] = {
                "id": event_id,
                "previousEventId": previous if previous is not None else event_id - 1,
                "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(),
                "type": event_type,
            }
            if details is not None:
                if event_type.endswith("StateEntered"):
                    key = "stateEnteredEventDetails"
                elif event_type.endswith("StateExited"):
                    key = "stateExitedEventDetails"
                else:
                    key = _DETAIL_KEYS.get(event_type, event_type[0].lower() + event_type[1:] + "EventDetails")
                event[key] = details
            self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        return event_id
