"""``lambdatwin run`` (the whole job on this machine, no Docker) and ``lambdatwin generate``."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from rich.console import Console

from emulator import pipeline
from emulator.cli import preflight
from emulator.cli.app import add_template_arguments, run_template
from emulator.cli.job_args import add_job_arguments, add_local_run_arguments
from emulator.cli.local_job import LocalJob, progress_bar
from emulator.cli.report import add_price_arguments
from emulator.contracts import flags, job
from emulator.contracts.job import JobConfig
from emulator.contracts.units import format_size
from emulator.lambda_runtime.environment import ProcessEnvironment
from emulator.rendezvous_process import RendezvousProcess
from emulator.s3server import LocalS3Server
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
    add_template_arguments(run)
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
    """Run the job (or ``--template``'s app) on the process backend and print its report."""
    if args.template:
        return run_template(args)
    local = LocalJob.from_args(args)
    config = local.config
    err = Console(stderr=True)
    with ExitStack() as stack:
        with progress_bar(err) as bar:
            gen = bar.add_task(f"data {format_size(config.data_size_bytes)} in "
                               f"{format_size(config.partition_size_bytes)} partitions", total=None)
            files = pipeline.ensure_dataset(config, local.data_cache, lambda d, t: bar.update(gen, completed=d, total=t))
            bar.update(gen, completed=len(files), total=len(files))
            s3 = stack.enter_context(LocalS3Server())
            up = bar.add_task(f"upload to local S3 {s3.endpoint_url}", total=len(files))
            pipeline.upload_dataset(s3.client(), config.bucket, config.prefix, files,
                                    lambda d, t: bar.update(up, completed=d))
        rendezvous = stack.enter_context(RendezvousProcess()).address if config.comm != "none" else None
        with progress_bar(err) as bar:
            result = pipeline.run_job(
                config, backend="local", s3_client=s3.client(), function_environment=s3.client_environment(),
                environment_factory=ProcessEnvironment, runs_dir=local.runs_dir, rendezvous=rendezvous,
                on_invocation=local.worker_progress(bar, f"Map: {config.world_size} workers"),
                definition=local.definition,
            )
    return local.finish(result, Console(width=None if Console().is_terminal else 140), err)
