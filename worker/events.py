"""Validation of handler events: one clear error per mistake, naming the field."""

from __future__ import annotations

from typing import Any

COMM_MODES = ("none", "direct", "relay")


class EventError(ValueError):
    """An event that the handler cannot run (what is wrong and how to fix it)."""


def require(event: Any, field: str, kind: type | tuple[type, ...]) -> Any:
    """``event[field]``, which must be present and of ``kind``."""
    if not isinstance(event, dict):
        raise EventError(f"the event must be a JSON object, got {type(event).__name__}")
    if field not in event or event[field] is None:
        raise EventError(f"the event has no {field!r}; pass it in the execution input")
    value = event[field]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise EventError(f"{field!r} must be {names}, got {value!r}")
    if isinstance(value, str) and not value.strip():
        raise EventError(f"{field!r} must not be empty")
    return value


def string_list(event: dict, field: str) -> list[str]:
    """``event[field]``: a non-empty list of non-empty strings."""
    value = require(event, field, list)
    if not value or not all(isinstance(v, str) and v for v in value):
        raise EventError(f"{field!r} must be a non-empty list of S3 keys, got {value!r}"[:300])
    return value


def optional_int(event: dict, field: str, default: int | None, minimum: int) -> int | None:
    """An optional integer field with a lower bound (absent or null gives ``default``)."""
    value = event.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(f"{field!r} must be an integer, got {value!r}")
    if value < minimum:
        raise EventError(f"{field!r} must be at least {minimum}, got {value}")
    return value


def comm_mode(event: dict) -> str:
    """The collectives mode (absent or null is ``none``), checked against the rendezvous address."""
    mode = event.get("comm") or "none"
    if mode not in COMM_MODES:
        raise EventError(f"'comm' must be one of {', '.join(COMM_MODES)}, got {mode!r}")
    if mode != "none" and not event.get("rendezvous"):
        raise EventError(f"comm={mode!r} needs 'rendezvous' (host:port of the rendezvous server)")
    return mode
