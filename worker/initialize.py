"""``Initialize``: list the partitions, assign them to ranks, write the Map's items.

Input: the execution input (docs/ARCHITECTURE.md). Writes
``<result_prefix>/assignment.json`` (a JSON array, one item per rank) and
returns the job description the Map and Summarize read.
"""

from __future__ import annotations

import logging
from typing import Any

from worker import s3io
from worker.events import EventError, comm_mode, optional_int, require
from worker.layout import assign

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)
PARTITION_SUFFIX = ".pt"
DEFAULT_BATCH_SIZE = 512


class NoPartitionsError(ValueError):
    """No ``.pt`` files under the prefix."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: validate the execution input, assign partitions, write ``assignment.json``.

    Raises:
        EventError: a missing or invalid field (named in the message).
        S3AccessError: the bucket or model weights do not exist or cannot be read.
        NoPartitionsError: no ``.pt`` objects under the prefix.
    """
    bucket = require(event, "bucket", str)
    prefix = event.get("prefix") or ""
    if not isinstance(prefix, str):
        raise EventError(f"'prefix' must be a string, got {prefix!r}")
    result_prefix = require(event, "result_prefix", str).rstrip("/")
    batch_size = optional_int(event, "batch_size", DEFAULT_BATCH_SIZE, 1)
    world_size = optional_int(event, "world_size", None, 1)
    max_concurrency = optional_int(event, "max_concurrency", 0, 0)  # 0: the Map's own limit
    comm = comm_mode(event)
    model_key = event.get("model_key") or None
    job_id = event.get("job_id") or getattr(context, "aws_request_id", None) or "job"

    keys = s3io.list_keys(bucket, prefix, PARTITION_SUFFIX)
    if not keys:
        raise NoPartitionsError(f"no {PARTITION_SUFFIX} partitions under s3://{bucket}/{prefix}; "
                                "upload data there (lambdatwin generate) or fix 'prefix'")
    world = world_size or len(keys)
    if comm != "none" and 0 < max_concurrency < world:
        raise EventError(f"comm={comm!r} needs all {world} ranks running at once, "
                         f"but max_concurrency is {max_concurrency}; raise it or set comm to 'none'")
    try:
        shares = assign(keys, world)
    except ValueError as exc:
        raise EventError(str(exc)) from None
    if model_key and not s3io.exists(bucket, model_key):
        # Fail here once rather than in every worker.
        raise s3io.S3AccessError(f"model weights s3://{bucket}/{model_key} do not exist; "
                                 "upload them or fix 'model_key'")

    items = []
    for rank, rank_keys in enumerate(shares):
        item = {
            "bucket": bucket, "prefix": prefix, "keys": rank_keys, "rank": rank, "world_size": world,
            "batch_size": batch_size, "result_prefix": result_prefix, "comm": comm,
            "rendezvous": event.get("rendezvous"), "job_id": job_id,
        }
        if model_key:
            item["model_key"] = model_key
        if event.get("punch_timeout_s"):
            item["punch_timeout_s"] = event["punch_timeout_s"]
        items.append(item)
    assignment_key = f"{result_prefix}/assignment.json"
    s3io.put_json(bucket, assignment_key, items)
    log.info("job %s: %d partitions under s3://%s/%s on %d ranks (%d-%d each); items at s3://%s/%s",
             job_id, len(keys), bucket, prefix, world, len(shares[-1]), len(shares[0]), bucket, assignment_key)
    return {
        "bucket": bucket, "prefix": prefix, "world_size": world, "max_concurrency": max_concurrency,
        "result_prefix": result_prefix, "job_id": job_id, "assignment_key": assignment_key,
        "map_results_prefix": f"{result_prefix}/map", "partitions": len(keys), "batch_size": batch_size,
    }
