"""The Map worker: batched PyTorch inference on this rank's partitions.

Input: one assignment item (docs/ARCHITECTURE.md). Writes
``<result_prefix>/<rank>.json`` with one PutObject (visible whole or not at
all; nothing is written when the rank fails) and returns
``{"rank", "rows", "result_key", "mae", "rmse", "wall_seconds"}``. The model is
built once per execution environment and reused by warm invocations.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from worker import s3io
from worker.collectives import allreduce_job_metrics
from worker.events import EventError, comm_mode, optional_int, require, string_list
from worker.model import RedshiftRegressor, load_model
from worker.partitions import Partition, load_partition
from worker.resources import available_cpus, cpu_seconds, lambda_vcpus, peak_memory_mb, torch_threads_for

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

DEFAULT_BATCH_SIZE = 512
COMM_MARGIN_S = 2.0  # time kept back from the collectives to write the result before the timeout
NO_CONTEXT_DEADLINE_S = 60.0  # collectives deadline when called without a Lambda context (tests)
_MODELS: dict[tuple[str | None, str | None], RedshiftRegressor] = {}


class InferenceError(RuntimeError):
    """Inference produced unusable numbers (NaN/inf) for a partition."""


def get_model(bucket: str, model_key: str | None) -> tuple[RedshiftRegressor, float]:
    """The model for these weights (seeded weights when ``model_key`` is None) and the seconds spent loading.

    Cached per execution environment: a warm invocation returns it with 0.0 seconds.
    """
    cache_key = (bucket if model_key else None, model_key)
    if cache_key in _MODELS:
        return _MODELS[cache_key], 0.0
    start = time.perf_counter()
    weights = s3io.get_bytes(bucket, model_key)[0] if model_key else None
    model = load_model(weights)
    _MODELS[cache_key] = model
    return model, time.perf_counter() - start


def predict(model: RedshiftRegressor, partition: Partition, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Predicted redshifts ``[N]`` for every sample, ``batch_size`` at a time, under inference_mode."""
    out = torch.empty(len(partition))
    with torch.inference_mode():
        for start in range(0, len(partition), batch_size):
            stop = start + batch_size
            out[start:stop] = model(partition.images[start:stop], partition.magnitudes[start:stop])
    return out


def error_sums(predicted: torch.Tensor, truth: torch.Tensor, name: str) -> tuple[float, float]:
    """Sum of absolute and of squared errors, in float64.

    Raises:
        InferenceError: a prediction or a true redshift is NaN/inf, which would
            poison every global metric.
    """
    error = predicted.double() - truth.double()
    bad = int((~torch.isfinite(error)).sum())
    if bad:
        raise InferenceError(f"{name}: {bad} of {len(error)} samples give a non-finite error "
                             "(NaN/inf in the images, magnitudes, redshifts or model weights)")
    return float(error.abs().sum()), float(error.square().sum())


def _deadline_s(context: Any) -> float:
    remaining = context.get_remaining_time_in_millis() / 1000.0 if context is not None else NO_CONTEXT_DEADLINE_S
    return max(1.0, remaining - COMM_MARGIN_S)


def _memory_limit_mb(context: Any) -> int | None:
    try:  # awslambdaric gives the MemorySize as a string
        return int(getattr(context, "memory_limit_in_mb"))
    except (AttributeError, TypeError, ValueError):
        return None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: infer this rank's partitions and write its result JSON."""
    wall_start, cpu_start = time.perf_counter(), cpu_seconds()
    bucket = require(event, "bucket", str)
    keys = string_list(event, "keys")
    rank = require(event, "rank", int)
    world_size = optional_int(event, "world_size", 1, 1)
    if not 0 <= rank < world_size:
        raise EventError(f"'rank' must be in 0..{world_size - 1} for world_size {world_size}, got {rank}")
    batch_size = optional_int(event, "batch_size", DEFAULT_BATCH_SIZE, 1)
    result_prefix = require(event, "result_prefix", str).rstrip("/")
    comm = comm_mode(event)
    model_key = event.get("model_key") or None

    cpus, share = available_cpus(), lambda_vcpus()
    threads = torch_threads_for(cpus if share is None else min(cpus, share))
    torch.set_num_threads(threads)
    model, model_load_s = get_model(bucket, model_key)
    log.info("rank %d/%d: %d partition(s), batch %d, %d torch threads (%.2f CPUs, Lambda share %s), "
             "model %s in %.2f s", rank, world_size, len(keys), batch_size, threads, cpus,
             "n/a" if share is None else f"{share:.2f} vCPU",
             "cached" if model_load_s == 0 else "loaded", model_load_s)

    rows, sum_abs, sum_sq, bytes_read, read_s, compute_s = 0, 0.0, 0.0, 0, 0.0, 0.0
    for key in keys:
        name = f"s3://{bucket}/{key}"
        body, seconds = s3io.get_bytes(bucket, key)
        bytes_read += len(body)
        read_s += seconds
        partition = load_partition(body, name=name)
        del body  # the tensors own their memory now; drop the raw copy before inference
        start = time.perf_counter()
        predicted = predict(model, partition, batch_size)
        compute_s += time.perf_counter() - start
        part_abs, part_sq = error_sums(predicted, partition.redshifts, name)
        rows, sum_abs, sum_sq = rows + len(partition), sum_abs + part_abs, sum_sq + part_sq
        log.info("rank %d: %s: %d rows, read %.2f s, inference %.2f s", rank, key, len(partition), seconds,
                 time.perf_counter() - start)
        del partition, predicted  # keep at most one partition alive

    result: dict[str, Any] = {
        "rank": rank, "world_size": world_size, "keys": keys, "rows": rows,
        "mae": sum_abs / rows if rows else None, "rmse": math.sqrt(sum_sq / rows) if rows else None,
        "sum_abs_err": sum_abs, "sum_sq_err": sum_sq,
        "wall_seconds": time.perf_counter() - wall_start, "cpu_seconds": cpu_seconds() - cpu_start,
        "peak_memory_mb": peak_memory_mb(),
        "samples_per_second": rows / compute_s if compute_s > 0 else None,
        "bytes_read": bytes_read, "s3_read_seconds": read_s, "model_load_seconds": model_load_s,
        "compute_seconds": compute_s, "cpus": cpus, "lambda_vcpus": share, "torch_threads": threads,
        "batch_size": batch_size,
        "model_key": model_key, "job_id": event.get("job_id"),
        "request_id": getattr(context, "aws_request_id", None),
        "memory_limit_mb": _memory_limit_mb(context),
        "comm": None,
    }
    if comm != "none":
        result["comm"] = allreduce_job_metrics(event, result, deadline_s=_deadline_s(context))
    result_key = f"{result_prefix}/{rank}.json"
    s3io.put_json(bucket, result_key, result)
    log.info("rank %d: %d rows, MAE %.4f, RMSE %.4f, %.1f samples/s -> s3://%s/%s", rank, rows,
             result["mae"] or 0.0, result["rmse"] or 0.0, result["samples_per_second"] or 0.0, bucket, result_key)
    return {"rank": rank, "rows": rows, "result_key": result_key, "mae": result["mae"], "rmse": result["rmse"],
            "wall_seconds": result["wall_seconds"]}
