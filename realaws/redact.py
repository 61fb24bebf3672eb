"""Keep secrets out of run records and log files.

Handler output, execution input and history details are written to disk; a
credential printed by mistake (or a rendezvous secret in an event) must not
follow them there.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"
_SENSITIVE_KEY = re.compile(r"secret|token|password|passwd|credential|private[_-]?key|signature", re.IGNORECASE)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AIPA|ANPA|ANVA|A3T[A-Z0-9])[A-Z0-9]{16}\b")
# key = value / "key": "value" / key: value, where the key names a secret.
_SECRET_ASSIGNMENT = re.compile(
    r"""(?P<key>["']?[A-Za-z0-9_.-]*(?:secret|token|password|passwd|credential|signature)[A-Za-z0-9_.-]*["']?"""
    r"""\s*[:=]\s*)(?P<quote>["']?)(?P<value>[^\s"',}]{4,})""",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with access key ids and values of secret-named keys masked."""
    text = _ACCESS_KEY_ID.sub(MASK, text)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group('key')}{m.group('quote')}{MASK}", text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with secret-named keys masked and every string scrubbed."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SENSITIVE_KEY.search(k) and v not in (None, "")
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
