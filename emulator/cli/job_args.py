"""The job's flags, spelled once for ``run``, ``emulate``, ``simulate`` and ``aws run``.

Every command that runs or models the pipeline adds these with
:func:`add_job_arguments` and turns them into the one
:class:`~emulator.contracts.job.JobConfig` with :func:`job_config_from_args`, so
the same flags mean the same ranks, partition bytes and execution input everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emulator.contracts import aws, flags, job
from emulator.contracts.job import JobConfig


def add_job_arguments(p: argparse.ArgumentParser, *, function_flags: bool = True,
                      comm_modes: tuple[str, ...] = job.COMM_MODES,
                      data_size_default: str | None = job.DEFAULT_DATA_SIZE,
                      timeout_default: float = job.DEFAULT_WORKER_TIMEOUT_S) -> None:
    """Add the flags that define one job (data, ranks, worker function, Map, collectives).

    ``function_flags=False`` leaves out the worker's MemorySize, Timeout and
    EphemeralStorage, for ``aws run``, where the deployed function fixes them.
    """
    p.add_argument("--workers", type=flags.int_in(1, job.MAX_WORKERS, "", "the workers range"), default=None,
                   help="world size (ranks). Default: one per partition. Without --partition-size, data is split "
                        "evenly over the workers")
    p.add_argument("--data-size", type=flags.size, default=data_size_default and flags.size(data_size_default),
                   required=data_size_default is None,
                   help=f"total data, e.g. 100MB, 1GB{f' (default {data_size_default})' if data_size_default else ''}")
    p.add_argument("--partition-size", type=flags.size, default=None,
                   help="size of one .pt partition (default: data-size / workers, or 25MB)")
    p.add_argument("--batch-size", type=flags.int_in(1, 1_000_000, "", "the batch size range"),
                   default=job.DEFAULT_BATCH_SIZE, help=f"inference batch size (default {job.DEFAULT_BATCH_SIZE})")
    if function_flags:
        p.add_argument("--memory", type=flags.memory_mb, default=job.DEFAULT_WORKER_MEMORY_MB,
                       help=f"worker MemorySize in MB, {aws.MIN_MEMORY_MB}-{aws.MAX_MEMORY_MB} "
                            f"(default {job.DEFAULT_WORKER_MEMORY_MB})")
        p.add_argument("--timeout", type=flags.timeout_s, default=timeout_default,
                       help=f"worker Timeout in seconds, {aws.MIN_TIMEOUT_S}-{aws.MAX_TIMEOUT_S} "
                            f"(default {timeout_default:g})")
        p.add_argument("--ephemeral-storage", type=flags.ephemeral_storage_mb,
                       default=aws.DEFAULT_EPHEMERAL_STORAGE_MB,
                       help=f"worker EphemeralStorage (/tmp) in MB, {aws.MIN_EPHEMERAL_STORAGE_MB}-"
                            f"{aws.MAX_EPHEMERAL_STORAGE_MB} (default {aws.DEFAULT_EPHEMERAL_STORAGE_MB})")
    p.add_argument("--max-concurrency", type=flags.max_concurrency, default=None,
                   help=f"Distributed Map MaxConcurrency, 0-{aws.MAX_MAP_CONCURRENCY} (default: all ranks at once)")
    p.add_argument("--comm", choices=comm_modes, default="none",
                   help="collectives between workers via the rendezvous server (default none)")
    p.add_argument("--punch-timeout", type=flags.float_in(0.001, aws.MAX_TIMEOUT_S, "s", "the punch window range"),
                   default=job.DEFAULT_PUNCH_TIMEOUT_S,
                   help="seconds a pair of workers may hole-punch before falling back to the relay (default 10)")
    p.add_argument("--seed", type=flags.int_in(0, 2**32 - 1, "", "the seed range"), default=0,
                   help="data seed (default 0)")


def add_local_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of the commands that run the job on this machine (``run``, ``emulate``)."""
    p.add_argument("--definition", type=flags.existing_file, default=None,
                   help="ASL state machine file (default statemachines/data_parallel.asl.json)")
    p.add_argument("--runs-dir", type=flags.writable_dir, default=Path("runs"),
                   help="where run records go (default ./runs)")
    p.add_argument("--data-cache", type=flags.writable_dir, default=None,
                   help="where generated datasets are kept (default ~/.cache/lambdatwin/datasets)")


def job_config_from_args(args: argparse.Namespace, **overrides: object) -> JobConfig:
    """The JobConfig these flags describe; ``overrides`` set fields the flags do not (raises ConfigError)."""
    fields: dict[str, object] = dict(
        data_size_bytes=args.data_size,
        partition_size_bytes=job.resolve_partition_size(args.data_size, args.partition_size, args.workers),
        workers=args.workers, batch_size=args.batch_size, seed=args.seed, max_concurrency=args.max_concurrency,
        comm=args.comm, punch_timeout_s=args.punch_timeout,
    )
    if hasattr(args, "memory"):
        fields.update(worker_memory_mb=args.memory, worker_timeout_s=args.timeout,
                      worker_ephemeral_storage_mb=args.ephemeral_storage)
    fields.update(overrides)
    return JobConfig(**fields)  # type: ignore[arg-type]
