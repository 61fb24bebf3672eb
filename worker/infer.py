"""The Map worker: batched PyTorch inference on this rank's partitions.

Writes ``<result_prefix>/<rank>.json`` with one PutObject (visible whole or not
at all) and returns a small summary for the state machine. The model is built
once per execution environment and reused by warm invocations.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from worker import s3io
from worker.events import comm_mode, optional_int, require
from worker.model import RedshiftRegressor, load_model
from worker.partitions import Partition, load_partition
from worker.resources import available_cpus, cpu_seconds, peak_memory_mb, torch_threads_for

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)
_MODELS: dict[tuple[str | None, str | None], RedshiftRegressor] = {}
COMM_MARGIN_S = 2.0  # leave time to write the result after the collectives


def get_model(client: Any, bucket: str, model_key: str | None) -> tuple[RedshiftRegressor, float]:
    """The cached model for this weights key (seeded weights when None) and the seconds spent loading."""
    cache_key = (bucket if model_key else None, model_key)
    if cache_key in _MODELS:
        return _MODELS[cache_key], 0.0
    start = time.perf_counter()
    weights = s3io.get_bytes(client, bucket, model_key)[0] if model_key else None
    model = load_model(weights)
    _MODELS[cache_key] = model
    return model, time.perf_counter() - start


def predict(model: RedshiftRegressor, partition: Partition, batch_size: int) -> torch.Tensor:
    """Predicted redshifts for every sample, ``batch_size`` at a time."""
    out = torch.empty(len(partition))
    with torch.inference_mode():
        for start in range(0, len(partition), batch_size):
            stop = start + batch_size
            out[start:stop] = model(partition.images[start:stop], partition.magnitudes[start:stop])
    return out


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    wall_start, cpu_start = time.perf_counter(), cpu_seconds()
    bucket = require(event, "bucket", str)
    keys = require(event, "keys", list)
    rank = optional_int(event, "rank", None, 0)
    if rank is None:
        rank = require(event, "rank", int)
    world_size = optional_int(event, "world_size", 1, 1)
    batch_size = optional_int(event, "batch_size", 512, 1)
    result_prefix = require(event, "result_prefix", str).rstrip("/")
    comm = comm_mode(event)

    cpus = available_cpus()
    threads = torch_threads_for(cpus)
    torch.set_num_threads(threads)
    client = s3io.s3_client()
    model, model_load_s = get_model(client, bucket, event.get("model_key"))

    rows, sum_abs, sum_sq, bytes_read, read_s, compute_s = 0, 0.0, 0.0, 0, 0.0, 0.0
    for key in keys:
        body, seconds = s3io.get_bytes(client, bucket, key)
        bytes_read += len(body)
        read_s += seconds
        partition = load_partition(body, name=f"s3://{bucket}/{key}")
        del body
        start = time.perf_counter()
        predicted = predict(model, partition, batch_size)
        compute_s += time.perf_counter() - start
        error = (predicted - partition.redshifts).double()
        rows += len(partition)
        sum_abs += float(error.abs().sum())
        sum_sq += float((error**2).sum())
        log.info("rank %d: %s -> %d rows in %.2f s", rank, key, len(partition), time.perf_counter() - start)

    wall = time.perf_counter() - wall_start
    result: dict[str, Any] = {
        "rank": rank, "world_size": world_size, "keys": keys, "rows": rows,
        "mae": sum_abs / rows if rows else None, "rmse": math.sqrt(sum_sq / rows) if rows else None,
        "sum_abs_err": sum_abs, "sum_sq_err": sum_sq,
        "wall_seconds": wall, "cpu_seconds": cpu_seconds() - cpu_start, "peak_memory_mb": peak_memory_mb(),
        "samples_per_second": rows / compute_s if compute_s > 0 else None,
        "bytes_read": bytes_read, "s3_read_seconds": read_s, "model_load_seconds": model_load_s,
        "compute_seconds": compute_s, "cpus": cpus, "torch_threads": threads, "batch_size": batch_size,
        "request_id": getattr(context, "aws_request_id", None),
        "comm": None,
    }
    if comm != "none":
        from worker.collectives import allreduce_job_metrics

        remaining_s = context.get_remaining_time_in_millis() / 1000.0 if context is not None else 60.0
        result["comm"] = allreduce_job_metrics(event, result, deadline_s=max(1.0, remaining_s - COMM_MARGIN_S))
    result_key = f"{result_prefix}/{rank}.json"
    s3io.put_json(client, bucket, result_key, result)
    return {"rank": rank, "rows": rows, "result_key": result_key, "mae": result["mae"], "rmse": result["rmse"],
            "wall_seconds": wall}
