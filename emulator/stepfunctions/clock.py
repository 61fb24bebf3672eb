"""Time for the engine: real by default, virtual in tests (Retry backoff, Wait, timeouts)."""

from __future__ import annotations

import threading
import time


class RealClock:
    """Wall-clock time; sleeps wake early when the execution stops."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep; returns True when woken by ``stop``."""
        return stop.wait(max(0.0, seconds))


class VirtualClock:
    """Time that advances only when the engine sleeps: tests run backoffs instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)
        return stop.is_set()
