"""CloudWatch Logs lines exactly as AWS Lambda writes them, and a parser for them.

This is the one place that formats and parses the ``START`` / ``END`` / ``REPORT``
platform lines, so the local backend, the Docker emulator, real-AWS collection
(``realaws``) and the simulator's calibration (``sim``) all agree on the format.

Format (tab separated, trailing tab included, as CloudWatch shows them)::

    START RequestId: <uuid> Version: $LATEST
    END RequestId: <uuid>
    REPORT RequestId: <uuid>\tDuration: 15.74 ms\tBilled Duration: 16 ms\tMemory Size: 128 MB\tMax Memory Used: 56 MB\tInit Duration: 130.49 ms\t

``Init Duration`` appears only on a cold start; failures append
``Status: timeout`` or ``Status: error\tError Type: Runtime.OutOfMemory``.
An environment's INIT starts with ``INIT_START Runtime Version: ...``; a failed
or timed-out INIT is reported as ``INIT_REPORT Init Duration: ... ms\tPhase:
init|invoke\tStatus: error|timeout`` (no RequestId, so the REPORT parser skips it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator


@dataclass(frozen=True)
class ReportLine:
    """The fields of one ``REPORT`` line."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: str | None = None  # None (success), "timeout" or "error"
    error_type: str | None = None


def billed_duration_ms(duration_ms: float, init_duration_ms: float | None = None) -> int:
    """Billed duration with AWS's 1 ms granularity.

    Since 2025-08-01 the INIT phase of on-demand functions is billed too, and
    the ``Billed Duration`` field of the REPORT line includes it.
    """
    total = duration_ms + (init_duration_ms or 0.0)
    return max(1, math.ceil(round(total, 6)))


def start_line(request_id: str, version: str = "$LATEST") -> str:
    """The ``START`` platform line."""
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    """The ``END`` platform line."""
    return f"END RequestId: {request_id}"


def init_start_line(runtime_version: str, runtime_version_arn: str) -> str:
    """The ``INIT_START`` platform line Lambda writes when an execution environment's INIT begins."""
    return f"INIT_START Runtime Version: {runtime_version}\tRuntime Version ARN: {runtime_version_arn}\t"


def init_report_line(duration_ms: float, phase: str, status: str, error_type: str | None = None) -> str:
    """The ``INIT_REPORT`` line Lambda writes when INIT fails or times out.

    ``phase`` is ``init`` (the INIT phase proper) or ``invoke`` (INIT re-run
    inside the first invocation); ``status`` is ``error`` or ``timeout``. Format
    as in "Failures during the Init phase",
    https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html
    """
    parts = [f"INIT_REPORT Init Duration: {duration_ms:.2f} ms", f"Phase: {phase}", f"Status: {status}"]
    if error_type:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts) + "\t"


def report_line(report: ReportLine) -> str:
    """Format a ``REPORT`` line byte-for-byte as Lambda writes it."""
    parts = [
        f"REPORT RequestId: {report.request_id}",
        f"Duration: {report.duration_ms:.2f} ms",
        f"Billed Duration: {report.billed_duration_ms} ms",
        f"Memory Size: {report.memory_size_mb} MB",
        f"Max Memory Used: {report.max_memory_used_mb} MB",
    ]
    if report.init_duration_ms is not None:
        parts.append(f"Init Duration: {report.init_duration_ms:.2f} ms")
    if report.status is not None:
        parts.append(f"Status: {report.status}")
        if report.error_type:
            parts.append(f"Error Type: {report.error_type}")
    return "\t".join(parts) + "\t"


# Same conventions as AWS Lambda Power Tuning's parsers; whitespace may be tabs
# (raw CloudWatch) or spaces (copied from the console or an export).
_REPORT_RE = re.compile(r"REPORT\s+RequestId:\s*(?P<rid>[0-9A-Za-z-]+)")
_FIELD_RES = {
    "duration_ms": re.compile(r"(?<!Billed )(?<!Init )Duration:\s*(?P<v>[0-9.]+)\s*ms"),
    "billed_duration_ms": re.compile(r"Billed Duration:\s*(?P<v>[0-9.]+)\s*ms"),
    "memory_size_mb": re.compile(r"Memory Size:\s*(?P<v>[0-9]+)\s*MB"),
    "max_memory_used_mb": re.compile(r"Max Memory Used:\s*(?P<v>[0-9]+)\s*MB"),
    "init_duration_ms": re.compile(r"Init Duration:\s*(?P<v>[0-9.]+)\s*ms"),
    "status": re.compile(r"Status:\s*(?P<v>[A-Za-z]+)"),
    "error_type": re.compile(r"Error Type:\s*(?P<v>[A-Za-z0-9_.]+)"),
}


def parse_report_line(line: str) -> ReportLine | None:
    """Parse one REPORT line (tabs or spaces); None when ``line`` is not one.

    Raises:
        ValueError: the line starts a REPORT but lacks a required field.
    """
    head = _REPORT_RE.search(line)
    if head is None:
        return None
    found: dict[str, str] = {}
    for name, rx in _FIELD_RES.items():
        m = rx.search(line)
        if m:
            found[name] = m.group("v")
    missing = [k for k in ("duration_ms", "billed_duration_ms", "memory_size_mb", "max_memory_used_mb") if k not in found]
    if missing:
        raise ValueError(f"REPORT line for {head.group('rid')} lacks {', '.join(missing)}: {line.strip()!r}")
    return ReportLine(
        request_id=head.group("rid"),
        duration_ms=float(found["duration_ms"]),
        billed_duration_ms=int(float(found["billed_duration_ms"])),
        memory_size_mb=int(found["memory_size_mb"]),
        max_memory_used_mb=int(found["max_memory_used_mb"]),
        init_duration_ms=float(found["init_duration_ms"]) if "init_duration_ms" in found else None,
        status=found.get("status"),
        error_type=found.get("error_type"),
    )


def parse_report_lines(lines: Iterable[str]) -> Iterator[ReportLine]:
    """Yield every REPORT line found in ``lines`` (e.g. a CloudWatch log export)."""
    for line in lines:
        report = parse_report_line(line)
        if report is not None:
            yield report


def log_stream_name(started: datetime, instance_hex: str, version: str = "$LATEST") -> str:
    """A Lambda log stream name: ``YYYY/MM/DD/[$LATEST]<32 hex>``."""
    day = started.astimezone(timezone.utc).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{instance_hex}"


def log_group_name(function_name: str) -> str:
    """The log group Lambda writes a function's logs to."""
    return f"/aws/lambda/{function_name}"
