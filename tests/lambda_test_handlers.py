"""Handlers for the Lambda runtime tests (imported by awslambdaric in a child process)."""

import os
import time

_COLD = {"invocations": 0}


def echo(event, context):
    _COLD["invocations"] += 1
    print(f"echo got {event!r}")
    return {"event": event, "request_id": context.aws_request_id, "warm_count": _COLD["invocations"],
            "memory_limit": context.memory_limit_in_mb, "pid": os.getpid(),
            "remaining_ms": context.get_remaining_time_in_millis()}


def fail(event, context):
    raise ValueError(f"bad input: {event.get('why', 'no reason')}")


def sleep(event, context):
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}


def allocate(event, context):
    """Touch `mb` megabytes so they count in RSS."""
    block = bytearray(int(event["mb"]) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(float(event.get("hold_s", 0.2)))
    return {"allocated_mb": event["mb"]}


def die(event, context):
    os._exit(3)
