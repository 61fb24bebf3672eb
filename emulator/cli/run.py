"""``lambdatwin run`` (the whole job on this machine, no Docker) and ``lambdatwin generate``."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emulator import pipeline
from emulator.cli import preflight
from emulator.cli.job_args import add_job_arguments, add_local_run_arguments, job_config_from_args
from emulator.cli.report import add_price_arguments, pricer_from_args, print_run
from emulator.contracts import flags, job
from emulator.contracts.errors import EXIT_FAILED, DefinitionFileError
from emulator.contracts.job import JobConfig
from emulator.contracts.units import format_size
from emulator.lambda_runtime.environment import ProcessEnvironment
from emulator.rendezvous_process import RendezvousProcess
from emulator.s3server import LocalS3Server
from emulator.stepfunctions import DefinitionError, StateMachine
from worker.datagen import generate_partitions


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``generate``."""
    run = sub.add_parser(
        "run",
        help="run the whole inference job locally (S3 endpoint, Step Functions engine, Lambda workers as processes)",
        description=(
            "Generate (or reuse) synthetic partitions, start a local S3 endpoint, upload the data, and run "
            "statemachines/data_parallel.asl.json with each Lambda invocation in its own OS process through the "
            "Lambda Runtime API. Prints every invocation's REPORT fields and the summary, and writes runs/<id>/."
        ),
    )
    add_job_arguments(run)
    add_local_run_arguments(run)
    add_price_arguments(run)
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="write synthetic .pt partitions to a folder",
                         description="Write synthetic, reproducible 5-band galaxy partitions (see docs/partition-format.md).")
    gen.add_argument("--data-size", type=flags.size, default=job.DEFAULT_DATA_SIZE,
                     help=f"total size, e.g. 100MB, 1GB (default {job.DEFAULT_DATA_SIZE})")
    gen.add_argument("--partition-size", type=flags.size, default=job.DEFAULT_PARTITION_SIZE_BYTES,
                     help="size of one .pt file (default 25MB)")
    gen.add_argument("--seed", type=flags.int_in(0, 2**32 - 1, "", "the seed range"), default=0,
                     help="random seed (default 0)")
    gen.add_argument("--out", type=flags.writable_dir, required=True, help="folder to write part-NNNNN.pt files into")
    gen.set_defaults(func=cmd_generate)


def progress_bar(console: Console) -> Progress:
    """The progress bar every local command shows on stderr."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def load_checked_definition(path: Path | None) -> dict:
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


def cmd_generate(args: argparse.Namespace) -> int:
    """Write the partitions of ``--data-size`` into ``--out``."""
    config = JobConfig(data_size_bytes=args.data_size, partition_size_bytes=min(args.partition_size, args.data_size),
                       seed=args.seed)
    preflight.check_fits(config, args.out, dataset_cached=False)
    console = Console(stderr=True)
    with progress_bar(console) as bar:
        task = bar.add_task(f"generating {format_size(config.data_size_bytes)}", total=None)
        paths = generate_partitions(config.data_size_bytes, config.partition_size_bytes, config.seed, args.out,
                                    lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {len(paths)} partitions to {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the job on the process backend and print its report."""
    console = Console(width=None if Console().is_terminal else 140)
    err = Console(stderr=True)
    config = job_config_from_args(args)
    definition = load_checked_definition(args.definition)
    bill_of = pricer_from_args(args)
    cache = args.data_cache or pipeline.DEFAULT_DATA_CACHE
    preflight.check_fits(config, cache, dataset_cached=pipeline.dataset_is_cached(config, cache))
    with ExitStack() as stack:
        with progress_bar(err) as bar:
            gen = bar.add_task(f"data {format_size(config.data_size_bytes)} in "
                               f"{format_size(config.partition_size_bytes)} partitions", total=None)
            files = pipeline.ensure_dataset(config, cache, lambda d, t: bar.update(gen, completed=d, total=t))
            bar.update(gen, completed=len(files), total=len(files))
            s3 = stack.enter_context(LocalS3Server())
            up = bar.add_task(f"upload to local S3 {s3.endpoint_url}", total=len(files))
            pipeline.upload_dataset(s3.client(), config.bucket, config.prefix, files,
                                    lambda d, t: bar.update(up, completed=d))
        rendezvous = stack.enter_context(RendezvousProcess()).address if config.comm != "none" else None
        with progress_bar(err) as bar:
            task = bar.add_task(f"Map: {config.world_size} workers", total=config.world_size)

            def on_invocation(inv) -> None:
                if inv.function == config.function_names()["worker"]:
                    bar.advance(task)

            result = pipeline.run_job(
                config, backend="local", s3_client=s3.client(), function_environment=s3.client_environment(),
                environment_factory=ProcessEnvironment, runs_dir=args.runs_dir, rendezvous=rendezvous,
                on_invocation=on_invocation, definition=definition,
            )
    print_run(result.record, str(result.run_dir), bill_of(result.record), console)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if result.status != "SUCCEEDED":
        err.print(f"[red]execution {result.status}[/red]: {result.error or ''} {result.cause or ''}".strip())
        return EXIT_FAILED
    return 0
