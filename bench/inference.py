"""Worker inference overhead: the handler's path vs a bare torch loop, same run, same tensors.

Measures on one 25 MB partition (305 samples), batch 512, same model and threads:
- bare: ``for batch: model(images[b], magnitudes[b])`` under inference_mode
- handler compute: ``worker.infer.predict`` + the error metrics the handler computes
- handler end to end: ``worker.infer.handler`` reading the partition from a local S3
  endpoint and writing its result (context for the ratio; includes S3 and JSON I/O)

Repeats are interleaved and the median is reported. Writes bench/results/inference.json.
Run: python bench/inference.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import torch

from emulator.s3server import LocalS3Server
from worker import infer
from worker.datagen import generate_partitions
from worker.model import build_model
from worker.resources import available_cpus, torch_threads_for

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"


def bare_loop(model, part, batch: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(part), batch):
            model(part.images[start:start + batch], part.magnitudes[start:start + batch])


def handler_compute(model, part, batch: int) -> None:
    predicted = infer.predict(model, part, batch)
    error = (predicted - part.redshifts).double()
    float(error.abs().sum()), float((error**2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    threads = torch_threads_for(available_cpus())
    torch.set_num_threads(threads)
    [part] = generate_partitions(25_000_000, 25_000_000, seed=0)
    model = build_model(0)
    bare_loop(model, part, args.batch_size)  # warm up kernels and allocator
    timings: dict[str, list[float]] = {"bare": [], "handler_compute": [], "handler_end_to_end": []}
    with LocalS3Server() as s3:
        os.environ.update(s3.client_environment())
        client = s3.client()
        client.create_bucket(Bucket="bench")
        buf = io.BytesIO()
        torch.save(part.to_dict(), buf)
        client.put_object(Bucket="bench", Key="p/part-00000.pt", Body=buf.getvalue())
        event = {"bucket": "bench", "keys": ["p/part-00000.pt"], "rank": 0, "world_size": 1,
                 "batch_size": args.batch_size, "result_prefix": "r"}
        infer.handler(event, None)  # load and cache the model like a warm Lambda
        for _ in range(args.repeats):
            for name, fn in (("bare", lambda: bare_loop(model, part, args.batch_size)),
                             ("handler_compute", lambda: handler_compute(model, part, args.batch_size)),
                             ("handler_end_to_end", lambda: infer.handler(event, None))):
                start = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in timings.items()}
    result = {
        "partition_samples": len(part), "batch_size": args.batch_size, "torch_threads": threads,
        "repeats": args.repeats, "median_seconds": median,
        "samples_per_second": {k: len(part) / v for k, v in median.items()},
        "ratio_handler_compute_vs_bare": median["handler_compute"] / median["bare"],
        "ratio_handler_end_to_end_vs_bare": median["handler_end_to_end"] / median["bare"],
        "goal": "handler compute / bare <= 1.05",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"partition: {len(part)} samples, batch {args.batch_size}, {threads} torch threads, {args.repeats} repeats (median)")
    for name in timings:
        print(f"  {name:20s} {median[name]:.3f} s  {len(part) / median[name]:8.1f} samples/s  "
              f"ratio vs bare {median[name] / median['bare']:.3f}")
    print(f"goal handler compute / bare <= 1.05: {'met' if result['ratio_handler_compute_vs_bare'] <= 1.05 else 'NOT met'}")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
