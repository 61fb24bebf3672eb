"""Retry and Catch semantics of a Task, Parallel or Map state: one place, shared with ``sim``.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
retriers and catchers are tried in order and the first whose ``ErrorEquals``
matches wins; each retrier counts its own attempts (``MaxAttempts``, default 3;
0 never retries); the n-th retry waits ``IntervalSeconds`` (default 1) x
``BackoffRate`` (default 2.0) ** (n-1), capped by ``MaxDelaySeconds``, and with
``JitterStrategy: FULL`` a uniform random delay up to that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from emulator.stepfunctions.errors import matches

DEFAULT_INTERVAL_S = 1.0
DEFAULT_BACKOFF_RATE = 2.0
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Retrier:
    """One entry of a state's ``Retry`` array."""

    error_equals: tuple[str, ...]
    interval_s: float = DEFAULT_INTERVAL_S
    backoff_rate: float = DEFAULT_BACKOFF_RATE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_delay_s: float | None = None
    jitter: str = "NONE"  # NONE | FULL

    @classmethod
    def from_asl(cls, retrier: dict[str, Any]) -> "Retrier":
        """From the ASL JSON object (a validated definition)."""
        return cls(
            error_equals=tuple(retrier["ErrorEquals"]),
            interval_s=float(retrier.get("IntervalSeconds", DEFAULT_INTERVAL_S)),
            backoff_rate=float(retrier.get("BackoffRate", DEFAULT_BACKOFF_RATE)),
            max_attempts=int(retrier.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS)),
            max_delay_s=float(retrier["MaxDelaySeconds"]) if "MaxDelaySeconds" in retrier else None,
            jitter=str(retrier.get("JitterStrategy", "NONE")),
        )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before retry number ``attempt + 1`` (``attempt`` retries already made)."""
        delay = self.interval_s * self.backoff_rate ** attempt
        if self.max_delay_s is not None:
            delay = min(delay, self.max_delay_s)
        if self.jitter == "FULL":
            delay = (rng or random).uniform(0, delay)
        return delay


def retriers_of(state: dict[str, Any]) -> list[Retrier]:
    """The state's ``Retry`` array as :class:`Retrier` objects, in order."""
    return [Retrier.from_asl(r) for r in state.get("Retry", [])]


class RetryCounter:
    """Per-retrier attempt counts across the attempts of one state visit."""

    def __init__(self, retriers: Sequence[Retrier]) -> None:
        self.retriers = list(retriers)
        self.attempts = [0] * len(self.retriers)
        self.total = 0

    def next_delay(self, error: str, rng: random.Random | None = None) -> float | None:
        """The delay before the next attempt after ``error``, or None when no retrier has attempts left.

        Only the first retrier whose ErrorEquals matches counts, as in AWS: a
        later retrier that also matches is not consulted once the first is spent.
        """
        for i, retrier in enumerate(self.retriers):
            if matches(list(retrier.error_equals), error):
                if self.attempts[i] >= retrier.max_attempts:
                    return None
                delay = retrier.delay(self.attempts[i], rng)
                self.attempts[i] += 1
                self.total += 1
                return delay
        return None


def find_catcher(state: dict[str, Any], error: str) -> dict[str, Any] | None:
    """The first ``Catch`` entry whose ErrorEquals matches ``error``, or None."""
    return next((c for c in state.get("Catch", []) if matches(c["ErrorEquals"], error)), None)
