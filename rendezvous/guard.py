"""Limits that keep the rendezvous server up under abuse: descriptors, log volume, replays.

- :func:`raise_nofile_limit` lifts the soft RLIMIT_NOFILE to the hard limit at
  start, and :func:`descriptor_budget` keeps the connection caps below it, so
  the accept loop never meets EMFILE (asyncio's selector loop logs a traceback
  per failed ``accept()``, up to ``backlog`` times per tick: the 51 MB log
  flood of issue 14).
- :class:`RateLimitedLog` writes at most a few lines of one event per interval
  and then one line saying how many were dropped.
- :class:`NonceCache` remembers the nonces of the token window so a request is
  accepted once (replays are refused), with a hard cap on memory.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from typing import Any

# Descriptors kept for everything but client connections: listening sockets, the
# health server and its clients, log files, imports.
_RESERVED_MIN = 16
_RESERVED_MAX = 64
_NOFILE_CEILING = 1 << 20  # when the hard limit is "unlimited"


def raise_nofile_limit() -> int:
    """Raise the soft open-file limit to the hard one (as far as the kernel allows); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else _NOFILE_CEILING
    for value in (target, 65536, 4096):
        if soft < value <= target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (value, hard))
                return value
            except (ValueError, OSError):
                continue
    return soft


def descriptor_budget(max_connections: int, max_unauthenticated: int) -> tuple[int, int, int]:
    """Connection caps that fit the current open-file limit together.

    Returns (authenticated cap, unauthenticated cap, unauthenticated hard cap):
    past the cap, a new unauthenticated connection first evicts an old one and
    is otherwise admitted up to the hard cap (4x, so a burst of honest clients
    whose requests are still in flight is not refused), and never past it.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = _NOFILE_CEILING
    usable = max(4, soft - min(_RESERVED_MAX, max(_RESERVED_MIN, soft // 4)))
    hard = max(1, min(4 * max_unauthenticated, usable // 2))
    return max(1, min(max_connections, usable - hard)), min(max_unauthenticated, hard), hard


class RateLimitedLog:
    """JSON event lines, at most ``burst`` per event name per ``interval_s``; drops are counted and reported."""

    def __init__(self, logger: logging.Logger, burst: int = 10, interval_s: float = 10.0) -> None:
        self.logger, self.burst, self.interval_s = logger, burst, interval_s
        self._windows: dict[str, list[float]] = {}  # event -> [window start, lines written, lines dropped]

    def event(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        now = time.monotonic()
        window = self._windows.get(event)
        if window is None or now - window[0] >= self.interval_s:
            if window is not None and window[2]:
                self._write(logging.WARNING, {"event": "log_suppressed", "of": event, "dropped": int(window[2]),
                                              "seconds": round(now - window[0], 1)})
            window = self._windows[event] = [now, 0, 0]
        if window[1] >= self.burst:
            window[2] += 1
            return
        window[1] += 1
        self._write(level, {"event": event, **fields})

    def flush(self) -> None:
        """Report drops of windows that have ended (called periodically)."""
        now = time.monotonic()
        for event, window in list(self._windows.items()):
            if now - window[0] >= self.interval_s:
                if window[2]:
                    self._write(logging.WARNING, {"event": "log_suppressed", "of": event, "dropped": int(window[2]),
                                                  "seconds": round(now - window[0], 1)})
                del self._windows[event]

    def _write(self, level: int, record: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, json.dumps(record, default=str))


class NonceCache:
    """Nonces of tokens still within their window; ``add`` is False for a replay or when full (fail closed).

    Only requests with a genuine token reach it (the HMAC is checked first), so
    only a holder of the secret can fill it; 500,000 entries is about 100 MB
    and over 4,000 requests a second for a whole window.
    """

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        self._seen: dict[str, float] = {}  # nonce -> when its token expires, in insertion (about expiry) order

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: str, expires: float, now: float) -> bool:
        """Remember ``nonce`` until ``expires`` (its token's ts + window); False if seen or full."""
        if nonce in self._seen:
            return False
        if len(self._seen) >= self.capacity:
            self.prune(now)
            if len(self._seen) >= self.capacity:
                return False
        self._seen[nonce] = expires
        return True

    def prune(self, now: float) -> None:
        expired = []
        for nonce, expiry in self._seen.items():
            if expiry > now:
                break
            expired.append(nonce)
        for nonce in expired:
            del self._seen[nonce]
