"""Human units on the command line: sizes (``100MB``, ``12.6GB``) and durations (``5min``)."""

from __future__ import annotations

import math
import re

MAX_SIZE_BYTES = 10**15  # 1 PB: beyond any job this tool plans; also keeps 1e400 out
MAX_DURATION_S = 365 * 24 * 3600.0
_SIZE_UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}
_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int | float) -> int:
    """Bytes in a size like ``100MB`` (decimal units as AWS bills) or ``25MiB``.

    Raises:
        ValueError: the text is not a positive number with a known unit.
    """
    if isinstance(text, (int, float)):
        value, unit = float(text), "B"
    else:
        m = _NUMBER_UNIT.match(text)
        if not m or m.group(2).upper() not in _SIZE_UNITS:
            raise ValueError(f"size {text!r} not understood; use a number with B, KB, MB, GB, TB (or KiB, MiB, GiB)")
        value, unit = float(m.group(1)), m.group(2).upper()
    if not math.isfinite(value) or value * _SIZE_UNITS[unit] > MAX_SIZE_BYTES:
        raise ValueError(f"size {text!r} is too large; sizes go up to 1 PB")
    size = int(round(value * _SIZE_UNITS[unit]))
    if size <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return size


def format_size(n_bytes: float) -> str:
    """A short decimal size: ``104.9 MB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} B"


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration like ``5min``, ``90s``, ``250ms``, ``1.5h`` (bare numbers are seconds).

    Raises:
        ValueError: the text is not a positive number with a known unit.
    """
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _NUMBER_UNIT.match(text)
        unit = m.group(2).lower() if m else None
        if not m or unit not in {**_DURATION_UNITS, "": 1.0}:
            raise ValueError(f"duration {text!r} not understood; use e.g. 250ms, 90s, 5min, 1.5h")
        seconds = float(m.group(1)) * _DURATION_UNITS.get(unit, 1.0)
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise ValueError(f"duration {text!r} is too long; durations go up to 1 year")
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds
