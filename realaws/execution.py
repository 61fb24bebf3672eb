"""Start an execution of the stack's state machine and follow it to the end."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from realaws.errors import AwsError, NotDeployedError, error_code
from realaws.waiters import WaitTimeout


@dataclass(frozen=True)
class Progress:
    """What the progress bar shows: execution status and the Map's item counts."""

    status: str
    items_done: int
    items_total: int | None
    failed: int


def running_executions(sfn: Any, state_machine_arn: str) -> list[str]:
    """ARNs of RUNNING executions (their invocations would mix into this run's log window).

    Raises:
        NotDeployedError: there is no such state machine.
    """
    try:
        page = sfn.list_executions(stateMachineArn=state_machine_arn, statusFilter="RUNNING", maxResults=10)
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "StateMachineDoesNotExist":
            raise NotDeployedError(f"state machine {state_machine_arn} does not exist; run `lambdatwin aws deploy` "
                                   "first (same --name and --region)") from None
        raise
    return [e["executionArn"] for e in page["executions"]]


def start(sfn: Any, state_machine_arn: str, run_id: str, payload: dict[str, Any]) -> str:
    """StartExecution named after the run; returns the execution ARN."""
    try:
        return str(sfn.start_execution(stateMachineArn=state_machine_arn, name=run_id,
                                       input=json.dumps(payload))["executionArn"])
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "ExecutionAlreadyExists":
            raise AwsError(f"an execution named {run_id!r} already exists with different input; pick another "
                           "--run-id") from None
        raise


def progress_of(sfn: Any, execution_arn: str, status: str) -> Progress:
    """The current status with the (first) Map Run's item counts, once it has started."""
    runs = sfn.list_map_runs(executionArn=execution_arn, maxResults=1).get("mapRuns", [])
    if not runs:
        return Progress(status, 0, None, 0)
    counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
    done = sum(int(counts.get(k, 0)) for k in ("succeeded", "failed", "timedOut", "aborted"))
    failed = sum(int(counts.get(k, 0)) for k in ("failed", "timedOut", "aborted"))
    return Progress(status, done, int(counts.get("total", 0)) or None, failed)


def follow(sfn: Any, execution_arn: str, *, timeout_s: float, poll_s: float = 5.0,
           on_progress: Callable[[Progress], None] = lambda _: None,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll until the execution leaves RUNNING; returns the final DescribeExecution.

    Raises:
        WaitTimeout: still running after ``timeout_s`` (the execution keeps running;
            collect it later with ``lambdatwin aws collect``).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        on_progress(progress_of(sfn, execution_arn, status))
        if status != "RUNNING":
            return described
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"execution still RUNNING after {timeout_s:.0f} s; it keeps running — collect it "
                              f"later with `lambdatwin aws collect --execution-arn {execution_arn}`")
        sleep(poll_s)
