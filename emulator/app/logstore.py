"""CloudWatch Logs as the twin keeps them: one JSON-lines file per log stream, on disk.

Each event is ``{"timestamp", "message", "ingestionTime"}`` (epoch milliseconds), as
GetLogEvents returns it. ``serve``, ``invoke`` and ``logs`` share the files under
``<state dir>/logs/``, so ``lambdatwin logs FUNCTION --follow`` sees what a running
``serve`` writes. Lambda's lines carry no time of their own, so a line is stamped when
the twin files it (within milliseconds of being written).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from emulator.contracts import aws


class LogStore:
    """Log groups and streams under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._offsets: dict[tuple[int, tuple[str, str]], int] = {}

    def _path(self, group: str, stream: str) -> Path:
        return self.root / quote(group, safe="") / f"{quote(stream, safe='')}.jsonl"

    def append(self, group: str, stream: str, lines: list[str]) -> None:
        """File ``lines`` into a stream (created if new), stamped now."""
        if not lines:
            return
        now = int(time.time() * 1000)
        path = self._path(group, stream)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                for line in lines:
                    fh.write(json.dumps({"timestamp": now, "message": line, "ingestionTime": now}) + "\n")

    def sync(self, service: Any) -> None:
        """File the lines a LambdaService gathered since the last sync."""
        with self._lock:
            pending = []
            for key, lines in list(service.log_streams.items()):
                offset_key = (id(service), key)
                start = self._offsets.get(offset_key, 0)
                if len(lines) > start:
                    pending.append((key, lines[start:]))
                    self._offsets[offset_key] = len(lines)
        for (group, stream), lines in pending:
            self.append(group, stream, list(lines))

    def groups(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(unquote(p.name) for p in self.root.iterdir() if p.is_dir())

    def streams(self, group: str) -> list[str]:
        folder = self.root / quote(group, safe="")
        if not folder.is_dir():
            return []
        return sorted(unquote(p.name[: -len(".jsonl")]) for p in folder.glob("*.jsonl"))

    def events(self, group: str, stream: str) -> list[dict[str, Any]]:
        path = self._path(group, stream)
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return out

    def stream_info(self, group: str, stream: str) -> dict[str, Any]:
        """DescribeLogStreams' fields of one stream."""
        path = self._path(group, stream)
        events = self.events(group, stream)
        created = int(path.stat().st_ctime * 1000) if path.exists() else 0
        info: dict[str, Any] = {"logStreamName": stream, "creationTime": created, "storedBytes": 0,
                                "arn": f"{aws.log_group_arn(group)}:log-stream:{stream}"}
        if events:
            info.update(firstEventTimestamp=events[0]["timestamp"], lastEventTimestamp=events[-1]["timestamp"],
                        lastIngestionTime=events[-1]["ingestionTime"], uploadSequenceToken="1")
        return info
