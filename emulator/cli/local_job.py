"""What ``run`` and ``emulate`` share: checking a local job before it starts, and reporting its end.

Both refuse bad input before any work (flags, the definition, the price table,
disk and memory), show the same progress, and print the same report and exit
code; only where the Lambda environments live differs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emulator import pipeline
from emulator.cli import preflight
from emulator.cli.job_args import job_config_from_args
from emulator.cli.report import Pricer, pricer_from_args, print_run
from emulator.contracts import job
from emulator.contracts.errors import EXIT_FAILED, DefinitionFileError
from emulator.contracts.job import JobConfig
from emulator.contracts.lambdas import InvocationRecord
from emulator.stepfunctions import DefinitionError, StateMachine


def progress_bar(console: Console) -> Progress:
    """The progress bar every local command shows on stderr."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def load_checked_definition(path: Path | None) -> dict[str, Any]:
    """The state machine file (default: the repository's), validated by the ASL engine.

    Raises:
        DefinitionFileError: not JSON, or not a valid definition.
    """
    path = path or pipeline.DEFINITION_PATH
    try:
        definition = pipeline.load_definition(path)
        StateMachine(definition, substitutions=job.placeholder_substitutions())
    except (OSError, ValueError, DefinitionError) as exc:
        raise DefinitionFileError(f"state machine definition {path}: {exc}") from None
    return definition


@dataclass(frozen=True)
class LocalJob:
    """A job checked and ready to run on this machine."""

    config: JobConfig
    definition: dict[str, Any]
    bill_of: Pricer
    data_cache: Path
    runs_dir: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> "LocalJob":
        """Everything the flags name, checked; raises a UserError before any work starts."""
        config = job_config_from_args(args, **overrides)
        definition = load_checked_definition(args.definition)
        bill_of = pricer_from_args(args)
        cache = args.data_cache or pipeline.DEFAULT_DATA_CACHE
        preflight.check_fits(config, cache, dataset_cached=pipeline.dataset_is_cached(config, cache))
        return cls(config, definition, bill_of, cache, args.runs_dir)

    def worker_progress(self, bar: Progress, description: str) -> Callable[[InvocationRecord], None]:
        """An ``on_invocation`` callback that advances a Map bar per finished worker invocation."""
        task = bar.add_task(description, total=self.config.world_size)
        worker = self.config.function_names()["worker"]

        def on_invocation(inv: InvocationRecord) -> None:
            if inv.function == worker:
                bar.advance(task)

        return on_invocation

    def finish(self, result: pipeline.JobResult, console: Console, err: Console) -> int:
        """Print the report and the warnings; 0 when the execution succeeded, else 1."""
        print_run(result.record, str(result.run_dir), self.bill_of(result.record), console)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/yellow] {warning}")
        if result.status != "SUCCEEDED":
            err.print(f"[red]execution {result.status}[/red]: {result.error or ''} {result.cause or ''}".strip())
            return EXIT_FAILED
        return 0
