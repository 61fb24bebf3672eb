"""The run record: one versioned JSON document per run, shared by every backend.

Layout of ``runs/<run_id>/``::

    record.json                                  the document below
    logs/aws/lambda/<fn>/YYYY/MM/DD/[$LATEST]<hex>   one file per log stream,
                                                  lines as CloudWatch stores them

``record.json`` (schema ``lambdatwin.run-record``, version 1)::

    {
      "schema": "lambdatwin.run-record", "schema_version": 1,
      "run_id": str, "backend": "local" | "docker" | "aws" | "reference",
      "created": ISO-8601 UTC,
      "config": {free-form run configuration: workers, data_size_bytes,
                 partition_size_bytes, batch_size, max_concurrency, ...},
      "functions": {name: {"handler", "memory_mb", "timeout_s", "role", ["package_mb"]}},
                  # role: "initialize" | "worker" | "summarize"; package_mb: deployment package
                  # (zip + layers) or image size in MB, where the backend knows it
      "execution": {"name", "status", "start", "stop", "error", "cause", "output"},
      "history": [GetExecutionHistory-style events],
      "invocations": [InvocationRecord.to_dict(), ...],
      "summary": {what Summarize wrote, with per-rank worker metrics under "ranks"},
      "map_runs": [{"map_run_arn", "item_counts": {...}, "result_writer": {...}}]
    }

Writers: the local backend (``emulator.pipeline``), the Docker emulator,
``realaws`` collection. Readers: ``sim`` calibration, reports, tests.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from emulator.contracts.lambdas import InvocationRecord

SCHEMA = "lambdatwin.run-record"
SCHEMA_VERSION = 1
BACKENDS = ("local", "docker", "aws", "reference")


class RunRecordError(ValueError):
    """A run record is missing, unreadable or not of a version this code reads."""


@dataclass
class RunRecord:
    """In-memory form of ``record.json``; see the module docstring for fields."""

    run_id: str
    backend: str
    config: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[InvocationRecord] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    map_runs: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise RunRecordError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "backend": self.backend,
            "created": self.created,
            "config": self.config,
            "functions": self.functions,
            "execution": self.execution,
            "history": self.history,
            "invocations": [inv.to_dict() for inv in self.invocations],
            "summary": self.summary,
            "map_runs": self.map_runs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "run record") -> "RunRecord":
        if data.get("schema") != SCHEMA:
            raise RunRecordError(f"{source}: not a lambdatwin run record (schema={data.get('schema')!r})")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunRecordError(
                f"{source}: schema_version {version!r} is not supported (this lambdatwin reads {SCHEMA_VERSION})"
            )
        try:
            return cls(
                run_id=data["run_id"],
                backend=data["backend"],
                created=data.get("created", ""),
                config=data.get("config", {}),
                functions=data.get("functions", {}),
                execution=data.get("execution", {}),
                history=data.get("history", []),
                invocations=[InvocationRecord.from_dict(i) for i in data.get("invocations", [])],
                summary=data.get("summary", {}),
                map_runs=data.get("map_runs", []),
            )
        except (KeyError, TypeError) as exc:
            raise RunRecordError(f"{source}: malformed run record ({exc})") from exc

    def invocations_of(self, role: str) -> list[InvocationRecord]:
        """Invocations of the function(s) with this role ("initialize", "worker", "summarize")."""
        names = {name for name, fn in self.functions.items() if fn.get("role") == role}
        return [inv for inv in self.invocations if inv.function in names]


def _atomic_write_text(path: Path, text: str) -> None:
    # Write to a temp file in the same directory then rename, so a reader never
    # sees a half-written record even if the writer is killed.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save(record: RunRecord, run_dir: Path) -> Path:
    """Write ``record.json`` atomically into ``run_dir``; returns its path."""
    path = Path(run_dir) / "record.json"
    _atomic_write_text(path, json.dumps(record.to_dict(), indent=2, default=str) + "\n")
    return path


def load(path: Path | str) -> RunRecord:
    """Read a run record from ``runs/<id>/`` or from its ``record.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "record.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunRecordError(f"{path}: no run record here; pass a runs/<id> directory or its record.json") from None
    except json.JSONDecodeError as exc:
        raise RunRecordError(f"{path}: not valid JSON ({exc})") from exc
    return RunRecord.from_dict(data, source=str(path))


def write_log_streams(run_dir: Path, streams: dict[tuple[str, str], Iterable[str]]) -> None:
    """Write log lines as ``logs/<group>/<stream>`` files.

    ``streams`` maps (log group, log stream) to lines, e.g.
    ("/aws/lambda/worker", "2026/11/24/[$LATEST]ab12...") -> ["START ...", ...].
    """
    base = Path(run_dir) / "logs"
    for (group, stream), lines in streams.items():
        path = base / group.lstrip("/") / stream
        _atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def read_log_lines(run_dir: Path) -> list[str]:
    """Every log line of a run, all streams concatenated (for REPORT parsing)."""
    base = Path(run_dir) / "logs"
    lines: list[str] = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        lines.extend(path.read_text().splitlines())
    return lines
