"""``lambdatwin emulate`` (the job on Docker: containers behind NAT) and ``lambdatwin emulate down``."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from rich.console import Console

from emulator.contracts import job


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``emulate`` (with its ``down`` action)."""
    from emulator.pipeline_cli import add_job_arguments

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
    p.add_argument("--nat", choices=("cone", "symmetric", "none"), default="cone",
                   help="NAT preset of the worker LANs (default cone: hole punching works)")
    p.add_argument("--workers-per-nat", type=int, default=1,
                   help="execution environments sharing one NAT (default 1: one NAT each, like Lambda)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="one-way delay added at each NAT (tc netem)")
    p.add_argument("--loss", type=float, default=0.0, help="packet loss in %% at each NAT")
    p.add_argument("--control-memory", type=int, default=256, help="MemorySize of Initialize and Summarize (default 256)")
    p.set_defaults(func=cmd_emulate)


def cmd_emulate(args: argparse.Namespace) -> int:
    """Entry point of ``lambdatwin emulate [run|down]``."""
    from emulator.docker.engine import DockerUnavailable

    err = Console(stderr=True)
    try:
        if args.action == "down":
            return _down(err)
        return _run(args, err)
    except DockerUnavailable as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2


def _down(err: Console) -> int:
    from emulator.docker.engine import docker_client
    from emulator.docker.labels import teardown

    report = teardown(docker_client())
    for line in report.errors:
        err.print(f"[red]could not remove[/red] {line}")
    err.print(f"removed {len(report.containers)} containers, {len(report.networks)} networks, {len(report.volumes)} volumes")
    return 1 if report.errors else 0


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def _run(args: argparse.Namespace, err: Console) -> int:
    from emulator import pipeline
    from emulator.docker.job import EmulatorOptions, run_emulated_job
    from emulator.docker.nat import Impairment
    from emulator.docker.network import NetworkConfig
    from emulator.pipeline_cli import job_config_from_args, progress_bar
    from emulator.report import print_run
    from emulator.stepfunctions import DefinitionError, StateMachine

    console = Console(width=None if Console().is_terminal else 140)
    try:
        config = job_config_from_args(args)
        config.control_memory_mb = args.control_memory
        network = NetworkConfig(nat=args.nat, workers_per_nat=args.workers_per_nat,
                                impairment=Impairment(latency_ms=args.latency_ms, loss_pct=args.loss))
        definition = pipeline.load_definition(args.definition or pipeline.DEFINITION_PATH)
        StateMachine(definition, substitutions=job.placeholder_substitutions())
    except (OSError, ValueError, DefinitionError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    world = config.workers or -(-config.data_size_bytes // config.partition_size_bytes)
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        with progress_bar(err) as bar:
            task = bar.add_task(f"Map: {world} workers in containers", total=world)

            def on_invocation(inv) -> None:
                if inv.function.endswith("-worker"):
                    bar.advance(task)

            result = run_emulated_job(
                config, EmulatorOptions(network=network), runs_dir=args.runs_dir,
                data_cache=args.data_cache or pipeline.DEFAULT_DATA_CACHE, definition=definition, console=err,
                on_invocation=on_invocation,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_run(result.record, str(result.run_dir), console)
    if result.status != "SUCCEEDED":
        err.print(f"[red]execution {result.status}[/red]: {result.error or ''} {result.cause or ''}".strip())
        return 1
    return 0


