"""``lambdatwin run`` (the whole job on this machine, no Docker) and ``lambdatwin generate``."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emulator.contracts import job
from emulator.contracts.units import format_size, parse_size

DEFAULT_PARTITION = "25MB"


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
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="write synthetic .pt partitions to a folder",
                         description="Write synthetic, reproducible 5-band galaxy partitions (see docs/partition-format.md).")
    gen.add_argument("--data-size", default="100MB", help="total size, e.g. 100MB, 1GB (default 100MB)")
    gen.add_argument("--partition-size", default=DEFAULT_PARTITION, help="size of one .pt file (default 25MB)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--out", type=Path, required=True, help="folder to write part-NNNNN.pt files into")
    gen.set_defaults(func=cmd_generate)


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``run`` and the Docker ``emulate``."""
    p.add_argument("--workers", type=int, default=None,
                   help="world size (ranks). Default: one per partition. Without --partition-size, data is split evenly over the workers")
    p.add_argument("--data-size", default="100MB", help="total synthetic data, e.g. 100MB, 1GB (default 100MB)")
    p.add_argument("--partition-size", default=None, help="size of one .pt partition (default: data-size / workers, or 25MB)")
    p.add_argument("--batch-size", type=int, default=512, help="inference batch size (default 512)")
    p.add_argument("--memory", type=int, default=2048, help="worker MemorySize in MB (default 2048)")
    p.add_argument("--timeout", type=float, default=300.0, help="worker Timeout in seconds (default 300)")
    p.add_argument("--max-concurrency", type=int, default=None, help="Distributed Map MaxConcurrency (default: all ranks at once)")
    p.add_argument("--comm", choices=("none", "direct", "relay"), default="none",
                   help="collectives between workers via the rendezvous server (default none)")
    p.add_argument("--punch-timeout", type=float, default=10.0,
                   help="seconds a pair of workers may hole-punch before falling back to the relay (default 10)")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    p.add_argument("--definition", type=Path, default=None,
                   help="ASL state machine file (default statemachines/data_parallel.asl.json)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run records go (default ./runs)")
    p.add_argument("--data-cache", type=Path, default=None, help="where generated datasets are kept (default ~/.cache/lambdatwin/datasets)")


def job_config_from_args(args: argparse.Namespace):
    """Build a JobConfig from CLI arguments (raises ValueError with a message for the user)."""
    from emulator.contracts.job import JobConfig

    data_size = parse_size(args.data_size)
    if args.partition_size is not None:
        partition_size = parse_size(args.partition_size)
    elif args.workers:
        partition_size = -(-data_size // args.workers)
    else:
        partition_size = min(parse_size(DEFAULT_PARTITION), data_size)
    return JobConfig(
        data_size_bytes=data_size, partition_size_bytes=partition_size, workers=args.workers,
        batch_size=args.batch_size, seed=args.seed, worker_memory_mb=args.memory,
        worker_timeout_s=args.timeout, max_concurrency=args.max_concurrency, comm=args.comm,
        punch_timeout_s=args.punch_timeout,
    )


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def cmd_generate(args: argparse.Namespace) -> int:
    from worker.datagen import generate_partitions

    console = Console(stderr=True)
    try:
        data_size, part_size = parse_size(args.data_size), parse_size(args.partition_size)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with progress_bar(console) as bar:
        task = bar.add_task(f"generating {format_size(data_size)}", total=None)
        generate_partitions(data_size, part_size, args.seed, args.out,
                            lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {len(list(args.out.glob('*.pt')))} partitions to {args.out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from emulator import pipeline
    from emulator.lambda_runtime.environment import ProcessEnvironment
    from emulator.report import print_run
    from emulator.s3server import LocalS3Server
    from emulator.stepfunctions import DefinitionError, StateMachine

    console = Console(width=None if Console().is_terminal else 140)
    err = Console(stderr=True)
    try:
        config = job_config_from_args(args)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        definition = pipeline.load_definition(args.definition or pipeline.DEFINITION_PATH)
        StateMachine(definition, substitutions=job.placeholder_substitutions())
    except (OSError, ValueError, DefinitionError) as exc:
        err.print(f"[red]error:[/red] state machine definition {args.definition or pipeline.DEFINITION_PATH}: {exc}")
        return 2
    cache = args.data_cache or pipeline.DEFAULT_DATA_CACHE
    with ExitStack() as stack:
        with progress_bar(err) as bar:
            gen = bar.add_task(f"data {format_size(config.data_size_bytes)} in {format_size(config.partition_size_bytes)} partitions", total=None)
            files = pipeline.ensure_dataset(config, cache, lambda d, t: bar.update(gen, completed=d, total=t))
            bar.update(gen, completed=len(files), total=len(files))
            s3 = stack.enter_context(LocalS3Server())
            up = bar.add_task(f"upload to local S3 {s3.endpoint_url}", total=len(files))
            pipeline.upload_dataset(s3.client(), config.bucket, f"data/{config.dataset_id}/", files,
                                    lambda d, t: bar.update(up, completed=d))
        rendezvous = None
        if config.comm != "none":
            from emulator.rendezvous_process import RendezvousProcess

            rendezvous = stack.enter_context(RendezvousProcess()).address
        world = config.workers or len(files)
        with progress_bar(err) as bar:
            task = bar.add_task(f"Map: {world} workers", total=world)

            def on_invocation(inv) -> None:
                if inv.function.endswith("-worker"):
                    bar.advance(task)

            result = pipeline.run_job(
                config, backend="local", s3_client=s3.client(), function_environment=s3.client_environment(),
                environment_factory=ProcessEnvironment, runs_dir=args.runs_dir, rendezvous=rendezvous,
                on_invocation=on_invocation, definition=definition,
            )
    print_run(result.record, str(result.run_dir), console)
    if result.status != "SUCCEEDED":
        err.print(f"[red]execution {result.status}[/red]: {result.error or ''} {result.cause or ''}".strip())
        return 1
    return 0
