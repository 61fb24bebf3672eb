"""Timestamps as the States Language reads them.

Rule (https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html and
state-choice.html): a timestamp conforms to RFC 3339 profile ISO 8601, with an uppercase ``T``
between date and time and a zone (``Z`` or an offset), e.g. ``2016-03-14T01:59:00Z``; fractional
seconds are allowed. Choice's Timestamp comparisons and IsTimestamp, and Wait, use this form.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    """The timestamp as an aware datetime, or None when ``value`` is not one."""
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Python takes at most 6 fractional digits
        head, rest = text.split(".", 1)
        digits = re.match(r"\d+", rest).group(0)
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
