"""Split a runtime's output stream into log lines in linear time.

Each chunk is searched for newlines once, and a partial line grows in a
``bytearray`` (amortised O(1) appends), so a 40 MB line without a newline costs
one pass, not a re-copy per chunk.
"""

from __future__ import annotations

from typing import Callable


class LineSplitter:
    """Feed bytes; ``emit`` gets each complete line (decoded, no newline)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if self._partial:
                self._partial += chunk[start:end]
                self._emit(self._partial.decode(errors="replace"))
                self._partial = bytearray()
            else:
                self._emit(chunk[start:end].decode(errors="replace"))
            start = end + 1
        if start < len(chunk):
            self._partial += chunk[start:]

    def close(self) -> None:
        """Emit the last line if the stream ended without a newline."""
        if self._partial:
            self._emit(self._partial.decode(errors="replace"))
            self._partial = bytearray()
