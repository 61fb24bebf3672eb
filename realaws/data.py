"""Put the synthetic dataset in the stack's bucket: generate once locally (cached), upload what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from emulator.contracts.job import JobConfig
from emulator.pipeline import DEFAULT_DATA_CACHE, ensure_dataset

DATA_PREFIX = "data/"


def existing_sizes(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Key -> size of every object under ``prefix``."""
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            sizes[obj["Key"]] = int(obj["Size"])
    return sizes


def upload_missing(s3: Any, bucket: str, prefix: str, files: list[Path],
                   progress: Callable[[int, int], None] = lambda d, t: None) -> int:
    """Upload the files whose key is absent or has another size; returns bytes uploaded.

    Re-running a job on the same dataset then uploads nothing.
    """
    have = existing_sizes(s3, bucket, prefix)
    sent = 0
    for i, path in enumerate(files, 1):
        key, size = f"{prefix}{path.name}", path.stat().st_size
        if have.get(key) != size:
            s3.upload_file(str(path), bucket, key)
            sent += size
        progress(i, len(files))
    return sent


def stage_dataset(s3: Any, bucket: str, config: JobConfig, *, cache_dir: Path | None = None, progress: Callable[[str, int, int], None] = lambda s, d, t: None,
                  ) -> tuple[str, int]:
    """Generate (or reuse) the dataset with the same generator as local runs and upload it.

    Returns (S3 prefix, number of partitions).
    """
    files = ensure_dataset(config, cache_dir or DEFAULT_DATA_CACHE, lambda d, t: progress("generate", d, t))
    prefix = f"{DATA_PREFIX}{config.dataset_id}/"
    upload_missing(s3, bucket, prefix, files, lambda d, t: progress("upload", d, t))
    return prefix, len(files)


def count_partitions(s3: Any, bucket: str, prefix: str) -> int:
    """How many ``.pt`` partitions are under ``prefix`` (for --data-prefix runs)."""
    return sum(1 for key in existing_sizes(s3, bucket, prefix) if key.endswith(".pt"))
