"""``Initialize``: list the partitions, assign them to ranks, write the Map's items.

Input: the execution input (docs/ARCHITECTURE.md). Output: the job
description the Map and Summarize read, with ``assignment_key`` pointing to
the JSON array of per-rank items.
"""

from __future__ import annotations

import logging
from typing import Any

from worker import s3io
from worker.events import EventError, comm_mode, optional_int, require

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)
PARTITION_SUFFIX = ".pt"


class NoPartitionsError(ValueError):
    """No ``.pt`` files under the prefix."""


def assign(keys: list[str], world_size: int) -> list[list[str]]:
    """Contiguous, balanced split: the first ``len % world`` ranks get one more key."""
    if world_size > len(keys):
        raise EventError(f"world_size {world_size} is larger than the {len(keys)} partitions; "
                         "use at most one rank per partition")
    base, extra = divmod(len(keys), world_size)
    out, start = [], 0
    for rank in range(world_size):
        n = base + (1 if rank < extra else 0)
        out.append(keys[start:start + n])
        start += n
    return out


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bucket = require(event, "bucket", str)
    prefix = event.get("prefix") or ""
    result_prefix = require(event, "result_prefix", str).rstrip("/")
    batch_size = optional_int(event, "batch_size", 512, 1)
    world_size = optional_int(event, "world_size", None, 1)
    max_concurrency = optional_int(event, "max_concurrency", 0, 0)
    comm = comm_mode(event)
    job_id = event.get("job_id") or getattr(context, "aws_request_id", None) or "job"

    client = s3io.s3_client()
    keys = sorted(s3io.iter_keys(client, bucket, prefix, PARTITION_SUFFIX))
    if not keys:
        raise NoPartitionsError(f"no {PARTITION_SUFFIX} partitions under s3://{bucket}/{prefix}; "
                                "upload data there (lambdatwin generate) or fix 'prefix'")
    world = world_size or len(keys)
    if comm != "none" and 0 < max_concurrency < world:
        raise EventError(f"comm={comm!r} needs all {world} ranks running at once, "
                         f"but max_concurrency is {max_concurrency}; raise it or set comm to 'none'")
    shares = assign(keys, world)
    items = []
    for rank, rank_keys in enumerate(shares):
        item = {
            "bucket": bucket, "prefix": prefix, "keys": rank_keys, "rank": rank, "world_size": world,
            "batch_size": batch_size, "result_prefix": result_prefix, "comm": comm,
            "rendezvous": event.get("rendezvous"), "job_id": job_id,
        }
        if event.get("model_key"):
            item["model_key"] = event["model_key"]
        items.append(item)
    assignment_key = f"{result_prefix}/assignment.json"
    s3io.put_json(client, bucket, assignment_key, items)
    log.info("assigned %d partitions to %d ranks; items at s3://%s/%s", len(keys), world, bucket, assignment_key)
    return {
        "bucket": bucket, "prefix": prefix, "world_size": world, "max_concurrency": max_concurrency,
        "result_prefix": result_prefix, "job_id": job_id, "assignment_key": assignment_key,
        "map_results_prefix": f"{result_prefix}/map", "partitions": len(keys), "batch_size": batch_size,
    }
