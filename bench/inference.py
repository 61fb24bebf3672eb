"""Worker inference overhead: the handler's path vs a bare torch loop, same run, same tensors.

On one 25 MB partition (305 samples), same model, same batch size, same torch
threads, all under inference_mode:

- ``bare``: ``for batch: model(images[b], magnitudes[b])``
- ``handler_compute``: ``worker.infer.predict`` + ``worker.infer.error_sums``,
  the compute the handler runs, called directly
- ``handler_reported``: ``compute_seconds`` the handler itself measured around
  ``predict`` during ``worker.infer.handler`` (read back from its result JSON)
- ``handler_end_to_end``: the whole ``worker.infer.handler`` call, warm (model
  cached), reading the partition from a local S3 endpoint and writing its
  result; context for the ratio, it includes S3 and decoding

Repeats are interleaved (so drift from other load hits every variant alike)
and medians reported. The goal is handler compute / bare <= 1.05.
Writes bench/results/inference.json. Run: python bench/inference.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from emulator.s3server import LocalS3Server
from emulator.contracts.job import DEFAULT_PARTITION_SIZE_BYTES
from worker import infer
from worker.datagen import generate_partitions
from worker.model import build_model
from worker.partitions import Partition, partition_bytes
from worker.resources import available_cpus, torch_threads_for

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"
GOAL = 1.05


def bare_loop(model: torch.nn.Module, part: Partition, batch: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(part), batch):
            model(part.images[start:start + batch], part.magnitudes[start:start + batch])


def handler_compute(model: torch.nn.Module, part: Partition, batch: int) -> None:
    infer.error_sums(infer.predict(model, part, batch), part.redshifts, "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    os.environ.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)  # threads from the host CPUs, for both sides
    threads = torch_threads_for(available_cpus())
    torch.set_num_threads(threads)
    size = DEFAULT_PARTITION_SIZE_BYTES
    [part] = generate_partitions(size, size, seed=0)
    model = build_model(0)  # the same weights the handler builds without a model_key
    bare_loop(model, part, args.batch_size)  # warm up kernels and the allocator
    timings: dict[str, list[float]] = {"bare": [], "handler_compute": [], "handler_reported": [],
                                       "handler_end_to_end": []}
    with LocalS3Server() as s3:
        os.environ.update(s3.client_environment())
        client = s3.client()
        client.create_bucket(Bucket="bench")
        client.put_object(Bucket="bench", Key="p/part-00000.pt", Body=partition_bytes(part))
        event = {"bucket": "bench", "keys": ["p/part-00000.pt"], "rank": 0, "world_size": 1,
                 "batch_size": args.batch_size, "result_prefix": "r"}
        infer.handler(event, None)  # load and cache the model, as a warm Lambda has it
        for _ in range(args.repeats):
            for name, fn in (("bare", lambda: bare_loop(model, part, args.batch_size)),
                             ("handler_compute", lambda: handler_compute(model, part, args.batch_size)),
                             ("handler_end_to_end", lambda: infer.handler(event, None))):
                start = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - start)
            reported = json.loads(client.get_object(Bucket="bench", Key="r/0.json")["Body"].read())
            assert reported["torch_threads"] == threads and reported["rows"] == len(part)
            timings["handler_reported"].append(reported["compute_seconds"])
    median = {k: statistics.median(v) for k, v in timings.items()}
    ratios = {k: v / median["bare"] for k, v in median.items()}
    result = {
        "partition_samples": len(part), "partition_bytes": len(partition_bytes(part)),
        "batch_size": args.batch_size, "torch_threads": threads, "torch_version": torch.__version__,
        "repeats": args.repeats, "median_seconds": median,
        "samples_per_second": {k: len(part) / v for k, v in median.items()},
        "ratio_vs_bare": ratios,
        "ratio_handler_compute_vs_bare": ratios["handler_compute"],
        "ratio_handler_reported_vs_bare": ratios["handler_reported"],
        "ratio_handler_end_to_end_vs_bare": ratios["handler_end_to_end"],
        "goal": f"handler compute / bare <= {GOAL}",
        "goal_met": max(ratios["handler_compute"], ratios["handler_reported"]) <= GOAL,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"partition: {len(part)} samples ({result['partition_bytes'] / 1e6:.1f} MB), batch {args.batch_size}, "
          f"{threads} torch threads, {args.repeats} repeats (median)")
    for name in timings:
        print(f"  {name:20s} {median[name]:.3f} s  {len(part) / median[name]:8.1f} samples/s  "
              f"ratio vs bare {ratios[name]:.3f}")
    print(f"goal handler compute / bare <= {GOAL}: {'met' if result['goal_met'] else 'NOT met'}")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
