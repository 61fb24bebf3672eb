"""Bounded waiting: every wait in realaws has a timeout and says what it waited for."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from botocore.exceptions import WaiterError

from realaws.errors import AwsError, error_code

T = TypeVar("T")


class WaitTimeout(AwsError):
    """A resource did not reach the wanted state in time."""


def wait_until(check: Callable[[], T | None], *, timeout_s: float, interval_s: float, what: str,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``check`` until it returns something other than None/False; WaitTimeout after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout_s:.0f} s waiting for {what}")
        sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


def retry_on(call: Callable[[], T], *, codes: set[str], timeout_s: float, interval_s: float, what: str,
             message_contains: str | None = None, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call``, retrying AWS errors whose code is in ``codes`` (e.g. IAM propagation) until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered by code below
            retryable = error_code(exc) in codes and (message_contains is None or message_contains in str(exc))
            if not retryable or time.monotonic() >= deadline:
                raise
            sleep(interval_s)


def boto_wait(client: Any, waiter: str, *, timeout_s: float, delay_s: float = 2.0, what: str, **params: Any) -> None:
    """A botocore waiter bounded by ``timeout_s`` (its own defaults can wait for many minutes)."""
    attempts = max(1, int(timeout_s // max(delay_s, 0.001)))
    try:
        client.get_waiter(waiter).wait(WaiterConfig={"Delay": delay_s, "MaxAttempts": attempts}, **params)
    except WaiterError as exc:
        raise WaitTimeout(f"timed out after {timeout_s:.0f} s waiting for {what}: {exc.last_response.get('Error', exc)}"
                          if isinstance(exc.last_response, dict) else f"waiting for {what} failed: {exc}") from None
