"""Argument types for every ``lambdatwin`` command: bad values become one clear line and exit 2.

argparse turns an :class:`argparse.ArgumentTypeError` raised by a ``type=``
callable into a usage error (exit 2) carrying our message, so each flag is
checked where it is parsed, against AWS's own limits where it maps to one.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Callable

from emulator.contracts import aws
from emulator.contracts.units import parse_duration, parse_size


def size(text: str) -> int:
    """A size flag (``100MB``); bytes."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """A duration flag (``5min``, ``90s``, or bare seconds)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(kind: type, low: float, high: float, unit: str, what: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not low <= value <= high:
            suffix = f" {unit}" if unit else ""
            raise argparse.ArgumentTypeError(f"{value:g}{suffix} is outside {what} {low:,g}-{high:,g}{suffix}")
        return value

    convert.__name__ = what
    return convert


def int_in(low: int, high: int, unit: str = "", what: str = "the allowed range") -> Callable[[str], int]:
    """An integer flag within ``[low, high]``."""
    return _number(int, low, high, unit, what)  # type: ignore[return-value]


def float_in(low: float, high: float, unit: str = "", what: str = "the allowed range") -> Callable[[str], float]:
    """A finite number flag within ``[low, high]``."""
    return _number(float, low, high, unit, what)


memory_mb = int_in(aws.MIN_MEMORY_MB, aws.MAX_MEMORY_MB, "MB", "Lambda's MemorySize range")
timeout_s = float_in(aws.MIN_TIMEOUT_S, aws.MAX_TIMEOUT_S, "s", "Lambda's Timeout range")
ephemeral_storage_mb = int_in(aws.MIN_EPHEMERAL_STORAGE_MB, aws.MAX_EPHEMERAL_STORAGE_MB, "MB",
                              "Lambda's EphemeralStorage range")
max_concurrency = int_in(0, aws.MAX_MAP_CONCURRENCY, "", "the Distributed Map's MaxConcurrency range")
positive_int = int_in(1, 10**9, "", "the range")
port = int_in(0, 65_535, "", "the TCP port range")


def existing_file(text: str) -> Path:
    """A path to a file that exists and is readable."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a readable file")
    return path


def writable_dir(text: str) -> Path:
    """A folder we can write into, created if missing; checked now, before any work is done."""
    path = Path(text).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text} is not a writable folder ({exc.strerror or exc}); pick another") from None
    return path
