"""``lambdatwin emulate`` (the job on Docker: containers behind NAT) and ``lambdatwin emulate down``."""

from __future__ import annotations

import argparse

from rich.console import Console

from emulator.cli.app import add_template_arguments, run_template
from emulator.cli.job_args import add_job_arguments, add_local_run_arguments
from emulator.cli.local_job import LocalJob, progress_bar
from emulator.cli.report import add_price_arguments
from emulator.contracts import flags, job
from emulator.contracts.errors import EXIT_FAILED
from emulator.docker.engine import docker_client
from emulator.docker.job import EmulatorOptions, run_emulated_job
from emulator.docker.labels import teardown
from emulator.docker.nat import NAT_CHOICES, Impairment
from emulator.docker.network import NetworkConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``emulate`` (with its ``down`` action)."""
    p = sub.add_parser(
        "emulate",
        help="run the whole job on Docker: Lambda environments as containers behind simulated NAT",
        description=(
            "Build (or reuse) the worker image, start the S3 endpoint and the rendezvous server on a public Docker "
            "network, put every Lambda execution environment in its own container on a LAN behind a NAT router, and "
            "run statemachines/data_parallel.asl.json. Writes runs/<id>/ like `lambdatwin run`. "
            "`lambdatwin emulate down` removes whatever a previous run left behind."
        ),
    )
    p.add_argument("action", nargs="?", choices=("run", "down"), default="run",
                   help="`down` removes every container and network lambdatwin created (default: run the job)")
    add_job_arguments(p)
    add_local_run_arguments(p)
    add_price_arguments(p)
    add_template_arguments(p)
    p.add_argument("--nat", choices=NAT_CHOICES, default="cone",
                   help="NAT type of the worker LANs (default cone: hole punching works)")
    p.add_argument("--workers-per-nat", type=flags.int_in(1, 10_000, "", "the workers-per-NAT range"), default=1,
                   help="execution environments sharing one NAT (default 1: one NAT each, like Lambda)")
    p.add_argument("--latency-ms", type=flags.float_in(0, 10_000, "ms", "the latency range"), default=0.0,
                   help="one-way delay added at each NAT (tc netem)")
    p.add_argument("--loss", type=flags.float_in(0, 99.9, "%", "the loss range"), default=0.0,
                   help="packet loss in %% at each NAT")
    p.add_argument("--control-memory", type=flags.memory_mb, default=job.DEFAULT_CONTROL_MEMORY_MB,
                   help=f"MemorySize of Initialize and Summarize (default {job.DEFAULT_CONTROL_MEMORY_MB})")
    p.set_defaults(func=cmd_emulate)


def cmd_emulate(args: argparse.Namespace) -> int:
    """Entry point of ``lambdatwin emulate [run|down]``."""
    err = Console(stderr=True)
    if args.action == "down":
        report = teardown(docker_client())
        for line in report.errors:
            err.print(f"[red]could not remove[/red] {line}")
        err.print(f"removed {len(report.containers)} containers, {len(report.networks)} networks, "
                  f"{len(report.volumes)} volumes")
        return EXIT_FAILED if report.errors else 0
    if args.template:
        return run_template(args)
    local = LocalJob.from_args(args, control_memory_mb=args.control_memory)
    network = NetworkConfig(nat=args.nat, workers_per_nat=args.workers_per_nat,
                            impairment=Impairment(latency_ms=args.latency_ms, loss_pct=args.loss))
    with progress_bar(err) as bar:
        result = run_emulated_job(
            local.config, EmulatorOptions(network=network), runs_dir=local.runs_dir, data_cache=local.data_cache,
            definition=local.definition, console=err,
            on_invocation=local.worker_progress(bar, f"Map: {local.config.world_size} workers in containers"),
        )
    return local.finish(result, Console(width=None if Console().is_terminal else 140), err)
