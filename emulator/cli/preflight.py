"""Refuse a local job that cannot fit this machine, before any work starts.

A run writes its dataset to the cache, and the local S3 endpoint keeps a second
copy; the workers that run at once each hold the Python runtime, torch, the
model and their partition. Both are checked against what the machine has now,
and a refusal states the numbers and what to change.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from emulator.contracts.errors import ConfigError, ResourceLimitError
from emulator.contracts.job import JobConfig
from emulator.contracts.units import format_size
from worker.datagen import samples_per_partition
from worker.partitions import BYTES_PER_SAMPLE

# Resident memory of one worker environment besides its partition: the runtime
# client, torch and the model (Max Memory Used of a 1 MB-partition run on this
# machine kind, rounded up).
WORKER_BASE_BYTES = 450 * 10**6
PARTITION_COPIES_IN_MEMORY = 2  # the bytes read from S3, then the decoded tensors
HEADROOM = 0.9  # never plan to use the last 10% of disk or memory


@dataclass(frozen=True)
class Plan:
    """What a job will take from this machine."""

    dataset_bytes: int
    partitions: int
    concurrent_workers: int
    memory_bytes: int


def plan_for(config: JobConfig) -> Plan:
    """The bytes the dataset will really have, and the memory of the workers running at once.

    Raises:
        ConfigError: a partition smaller than one sample.
    """
    if config.partition_size_bytes < BYTES_PER_SAMPLE:
        raise ConfigError(f"partition size {format_size(config.partition_size_bytes)} is smaller than one sample "
                          f"({BYTES_PER_SAMPLE:,} B); raise --partition-size or lower --workers")
    # partition_plan's arithmetic without its list: a 1 PB job must be refused in microseconds.
    full, rest = divmod(config.data_size_bytes, config.partition_size_bytes)
    per_full = samples_per_partition(config.partition_size_bytes)
    last = samples_per_partition(rest) if rest >= BYTES_PER_SAMPLE or not full else 0
    partitions = full + (1 if last else 0)
    dataset = (full * per_full + last) * BYTES_PER_SAMPLE
    world = config.workers or partitions
    concurrent = min(world, config.max_concurrency) if config.max_concurrency else world
    per_worker = WORKER_BASE_BYTES + PARTITION_COPIES_IN_MEMORY * max(per_full, last) * BYTES_PER_SAMPLE
    per_worker = min(per_worker, config.worker_memory_mb * 10**6)  # MemorySize caps each environment
    return Plan(dataset, partitions, concurrent, concurrent * per_worker)


def check_fits(config: JobConfig, cache_dir: Path, dataset_cached: bool) -> Plan:
    """Raise ResourceLimitError, with the numbers, when the job cannot fit disk or memory here."""
    plan = plan_for(config)
    needs: dict[str, int] = {}
    if not dataset_cached:
        needs[_mount_of(cache_dir)] = plan.dataset_bytes
    s3_store = _mount_of(Path(tempfile.gettempdir()))
    needs[s3_store] = needs.get(s3_store, 0) + plan.dataset_bytes  # the local S3 endpoint's copy
    for mount, need in needs.items():
        free = shutil.disk_usage(mount).free
        if need > free * HEADROOM:
            raise ResourceLimitError(
                f"the job needs {format_size(need)} of disk on {mount} (dataset of {plan.partitions} partitions, "
                f"and the local S3 copy) but only {format_size(free)} is free; lower --data-size or free disk space")
    available = available_memory_bytes()
    if available is not None and plan.memory_bytes > available * HEADROOM:
        raise ResourceLimitError(
            f"{plan.concurrent_workers} workers at once need about {format_size(plan.memory_bytes)} of memory but "
            f"{format_size(available)} is available; lower --max-concurrency, --workers or --partition-size")
    return plan


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where the kernel does not say)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _mount_of(path: Path) -> str:
    path = Path(path).expanduser().resolve()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return str(path)
