"""Execution history events in the shape of GetExecutionHistory.

A Standard execution's history holds at most 25,000 events
(https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html, "Maximum execution
history size"); when it is reached the execution fails with ``States.Runtime`` and the cause
"The execution reached the maximum number of history events (25000)." The last slot is kept
for that ExecutionFailed event, so memory stays bounded even for a loop that never sleeps.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any, Callable

from emulator.stepfunctions.errors import HISTORY_LIMIT_CAUSE, RUNTIME, ExecutionStopped, StatesError

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
    """How history details carry input/output: as compact JSON strings, as GetExecutionHistory shows them."""
    return json.dumps(value, default=str, separators=(",", ":"))


class History:
    """A thread-safe, append-only list of history events.

    ``on_event`` (if given) is called with each event as it is recorded. ``max_events`` (None:
    unlimited, as for Express executions, which keep no history in AWS) bounds the history.
    """

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None = None, clock: Any = None,
                 max_events: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.max_events = max_events
        self.closed = False  # after the execution's final event, nothing more is recorded
        self._lock = threading.Lock()
        self._on_event = on_event
        self._clock = clock
        self._chain = threading.local()  # per thread (branch, iteration): the event the next one follows
        self._last_advanced = 0  # the latest event that a following event may point at

    def follow(self, event_id: int) -> None:
        """Make this thread's next event follow ``event_id`` (a branch or iteration starts a chain)."""
        self._chain.last = event_id

    def follow_latest(self) -> None:
        """Make this thread's next event follow the latest chained event (after branches joined)."""
        with self._lock:
            self._chain.last = self._last_advanced

    def add(self, event_type: str, details: dict[str, Any] | None = None, previous: int | None = None,
            final: bool = False, advance: bool = True) -> int:
        """Record an event; returns its id.

        ``previousEventId`` chains events as GetExecutionHistory does: each follows the one before
        it on the same thread of states (a Parallel branch's first state follows
        ParallelStateStarted, each MapIterationStarted follows MapStateStarted); the first state's
        StateEntered (event 2) has 0. An event with ``advance=False`` (MapStateSucceeded,
        ParallelStateSucceeded, MapIterationFailed, MapRunSucceeded, TaskStateAborted) is not
        followed: the next event follows what it followed.

        Raises:
            StatesError: States.Runtime when the history is full; a ``final`` event (the
                execution's last) always fits.
            ExecutionStopped: the execution already ended (a state still unwinding after a timeout).
        """
        now = self._clock.now() if self._clock is not None else datetime.now(timezone.utc).timestamp()
        with self._lock:
            if self.closed:
                raise ExecutionStopped("the execution has ended")
            self.closed = final
            if not final and self.max_events is not None and len(self.events) >= self.max_events - 1:
                raise StatesError(RUNTIME, HISTORY_LIMIT_CAUSE)
            event_id = len(self.events) + 1
            if previous is None:
                previous = getattr(self._chain, "last", None)
            if previous is None:
                # GetExecutionHistory: the first state's StateEntered (id 2) has previousEventId 0.
                previous = 0 if event_id == 2 and event_type.endswith("StateEntered") else event_id - 1
            if advance:
                self._chain.last = event_id
                self._last_advanced = event_id
            event: dict[str, Any] = {
                "id": event_id,
                "previousEventId": previous,
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
