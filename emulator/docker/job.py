"""One job on the Docker emulator: image, network, S3 and rendezvous containers, then the local pipeline.

The orchestration is ``emulator.pipeline.run_job`` — the same ASL engine,
LambdaService and run record as ``lambdatwin run`` — with execution
environments that are containers (:class:`ContainerEnvironment`). This module
only provides the cloud around it and removes all of it afterwards, also on
failure and Ctrl-C.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from emulator import pipeline
from emulator.contracts import job
from emulator.docker.engine import docker_client
from emulator.docker.environment import ContainerEnvironment
from emulator.docker.images import ensure_worker_image
from emulator.docker.nat import NatPreset
from emulator.docker.network import NetworkConfig, Topology
from emulator.docker.progress import QUIET, RichBuildProgress
from emulator.contracts.job import JobConfig
from emulator.contracts.lambdas import InvocationRecord
from emulator.s3server import LOCAL_CREDENTIALS, local_client
from emulator.contracts.units import format_size


@dataclass
class EmulatorOptions:
    """The Docker side of a run (the job itself is a ``JobConfig``)."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    image: str | None = None  # default: ensure_worker_image()
    lan_parallelism: int = 4  # LANs/NAT routers created at once before the job starts


@dataclass
class EmulatorTimings:
    """Where the wall time of a run went (seconds)."""

    image: float = 0.0
    topology: float = 0.0
    upload: float = 0.0
    job: float = 0.0
    teardown: float = 0.0


def function_environment(s3_url: str) -> dict[str, str]:
    """What every function container gets: the S3 endpoint by name and fake credentials."""
    return {"AWS_ENDPOINT_URL": s3_url, "AWS_ENDPOINT_URL_S3": s3_url, **LOCAL_CREDENTIALS}


def run_emulated_job(
    config: JobConfig,
    options: EmulatorOptions | None = None,
    *,
    runs_dir: Path,
    data_cache: Path = pipeline.DEFAULT_DATA_CACHE,
    definition: dict[str, Any] | None = None,
    console: Console | None = None,
    on_invocation: Callable[[InvocationRecord], None] | None = None,
    on_topology: Callable[[Topology], None] | None = None,
    timings: EmulatorTimings | None = None,
) -> pipeline.JobResult:
    """Run ``config`` with every Lambda invocation in a container; write ``runs/<id>/``.

    Args:
        console: where progress goes (None: quiet).
        on_topology: called once the network is up (tests use it to reach containers).
        timings: filled with where the time went.

    Raises:
        DockerUnavailable: no daemon (the message says how to start one).
    """
    options = options or EmulatorOptions()
    timings = timings if timings is not None else EmulatorTimings()
    client = docker_client()
    started = time.monotonic()
    if options.image:
        image = options.image
    elif console is not None:
        with RichBuildProgress(console) as progress:
            image = ensure_worker_image(progress, client)
    else:
        image = ensure_worker_image(QUIET, client)
    timings.image = time.monotonic() - started

    files = pipeline.ensure_dataset(config, data_cache)
    world = config.workers or len(files)
    run_id = job.new_run_id()
    topology = Topology(image, options.network, run_id=run_id, client=client)
    try:
        with topology:
            started = time.monotonic()
            s3 = topology.start_s3()
            rendezvous = topology.start_rendezvous() if config.comm != "none" else None
            # One environment per rank in the Map, plus Initialize and Summarize.
            if options.network.nat is not NatPreset.NONE:
                topology.prepare_lans(math.ceil((world + 2) / options.network.workers_per_nat), options.lan_parallelism)
            timings.topology = time.monotonic() - started
            if on_topology is not None:
                on_topology(topology)

            started = time.monotonic()
            s3_client = local_client("s3", s3.url)
            pipeline.upload_dataset(s3_client, config.bucket, f"data/{config.dataset_id}/", files)
            timings.upload = time.monotonic() - started
            if console is not None:
                console.print(f"data: {len(files)} partitions, {format_size(sum(f.stat().st_size for f in files))} in "
                              f"s3://{config.bucket} ({s3.address}); {world} workers behind "
                              f"{options.network.nat.value} NAT; image {image}")

            started = time.monotonic()
            factory = functools.partial(ContainerEnvironment, topology=topology, image=image)
            result = pipeline.run_job(
                config, backend="docker", s3_client=s3_client,
                function_environment=function_environment(f"http://{s3.address}"),
                environment_factory=factory, runs_dir=runs_dir, run_id=run_id,
                rendezvous=rendezvous.address if rendezvous else None, on_invocation=on_invocation,
                definition=definition,
                extra_config={"docker": {"image": image, "nat": options.network.nat.value,
                                         "workers_per_nat": options.network.workers_per_nat,
                                         "impairment": asdict(options.network.impairment),
                                         "lans": len(topology.lans)}},
            )
            timings.job = time.monotonic() - started
            started = time.monotonic()
    finally:
        timings.teardown = time.monotonic() - started
    return result
