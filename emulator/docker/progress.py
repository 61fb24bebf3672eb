"""Progress of image builds: stages (debootstrap, import, wheels...) with their latest output line.

Builders take any :class:`BuildProgress`; :class:`RichBuildProgress` draws one
spinner line per stage with its elapsed time, :data:`QUIET` prints nothing.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class BuildProgress(Protocol):
    """Receives what a builder is doing."""

    def stage(self, description: str) -> None:
        """A new stage starts (the previous one is done)."""

    def detail(self, text: str) -> None:
        """A line of output of the current stage (e.g. pip's or debootstrap's)."""

    def done(self, summary: str) -> None:
        """The build (or the cache hit) is finished."""


class _Quiet:
    def stage(self, description: str) -> None:
        pass

    def detail(self, text: str) -> None:
        pass

    def done(self, summary: str) -> None:
        pass


QUIET: BuildProgress = _Quiet()


class RichBuildProgress:
    """Spinner lines on stderr; use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/green]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}[/dim]"),
            console=self.console,
        )
        self._task: TaskID | None = None
        self._started = time.monotonic()

    def __enter__(self) -> "RichBuildProgress":
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._finish_task()
        self._progress.stop()

    def _finish_task(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, total=1, completed=1, detail="")
            self._task = None

    def stage(self, description: str) -> None:
        self._finish_task()
        self._task = self._progress.add_task(description, total=None, detail="")

    def detail(self, text: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, detail=text.strip()[:80])

    def done(self, summary: str) -> None:
        self._finish_task()
        self._progress.console.print(f"{summary} [dim]({time.monotonic() - self._started:.1f} s)[/dim]")
