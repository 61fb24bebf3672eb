"""Docker emulator cost: container cold starts, and the seed job in containers vs the same handlers in-process.

Measured in one run on this machine:

- ``cold start``: ``--cold-starts`` execution environments of the worker
  function (2,048 MB, ``worker.infer.handler``), one after another, each a new
  container behind its own cone NAT. ``provision`` is the container create
  (network attach, deployment package), ``init`` is the REPORT line's Init
  Duration (container start + awslambdaric + handler import, torch included).
- ``seed job``: 41 workers, batch 512, 100 MB, ``comm`` none, through the
  repo's state machine on the emulator (every invocation a container, S3 and
  the rendezvous as containers), timed from StartExecution to the end state.
- ``in-process baseline``: the same three handlers called directly in this
  Python process, one rank after another, against a local S3 endpoint holding
  the same partitions (no platform, no containers, no state machine).
- ``local backend`` (context): ``lambdatwin run``'s platform, the same state
  machine with every execution environment an OS process instead of a
  container; the emulator / local ratio isolates what Docker and NAT add.

Prints the emulator / in-process ratio of the job time (and emulator / local) and writes
bench/results/emulator_docker.json. Run: python bench/emulator_docker.py [--cold-starts 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from emulator import pipeline
from emulator.contracts.job import JobConfig
from emulator.docker.engine import docker_client
from emulator.docker.environment import ContainerEnvironment
from emulator.docker.images import ensure_worker_image
from emulator.docker.job import EmulatorOptions, run_emulated_job
from emulator.docker.network import Topology
from emulator.lambda_runtime.environment import ProcessEnvironment
from emulator.contracts.lambdas import FunctionConfig
from emulator.s3server import LocalS3Server

RESULTS = Path(__file__).resolve().parent / "results" / "emulator_docker.json"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cold_starts(image: str, count: int) -> dict[str, object]:
    """Provision + INIT of ``count`` fresh worker containers, in sequence."""
    function = FunctionConfig(name="bench-worker", handler="worker.infer.handler", memory_mb=2048, timeout_s=60)
    provision_ms: list[float] = []
    init_ms: list[float] = []
    with Topology(image) as topology:
        topology.prepare_lans(count)
        for _ in range(count):
            started = time.perf_counter()
            env = ContainerEnvironment(function, topology=topology, image=image)
            provision_ms.append((time.perf_counter() - started) * 1000.0)
            try:
                init_ms.append(env.init())
            finally:
                env.shutdown()
    return {
        "count": count,
        "provision_ms": {"p50": percentile(provision_ms, 50), "p99": percentile(provision_ms, 99)},
        "init_duration_ms": {"p50": percentile(init_ms, 50), "p99": percentile(init_ms, 99),
                             "min": min(init_ms), "max": max(init_ms)},
    }


def in_process_job(config: JobConfig, files: list[Path]) -> dict[str, float]:
    """Initialize, every rank, Summarize: the handlers called in this process against a local S3."""
    from worker import infer, initialize, summarize

    with LocalS3Server() as s3:
        os.environ.update(s3.client_environment())
        client = s3.client()
        client.create_bucket(Bucket=config.bucket)
        prefix = f"data/{config.dataset_id}/"
        pipeline.upload_dataset(client, config.bucket, prefix, files)
        event = {"bucket": config.bucket, "prefix": prefix, "world_size": config.workers,
                 "batch_size": config.batch_size, "result_prefix": "bench/results", "job_id": "bench"}
        started = time.perf_counter()
        init = initialize.handler(event, None)
        items = json.loads(client.get_object(Bucket=config.bucket, Key=init["assignment_key"])["Body"].read())
        for item in items:
            infer.handler(item, None)
        summary = summarize.handler({**init, "map_run": None}, None)
        wall = time.perf_counter() - started
    if not summary["complete"]:
        raise RuntimeError(f"in-process baseline did not complete: {summary['message']}")
    return {"seconds": wall, "rows": summary["rows"], "mae": summary["mae"]}


def local_backend_job(config: JobConfig, files: list[Path], runs: Path) -> dict[str, float]:
    """The job on ``lambdatwin run``'s backend: execution environments as processes."""
    with LocalS3Server() as s3:
        client = s3.client()
        client.create_bucket(Bucket=config.bucket)
        pipeline.upload_dataset(client, config.bucket, f"data/{config.dataset_id}/", files)
        result = pipeline.run_job(config, backend="local", s3_client=client,
                                  function_environment=s3.client_environment(),
                                  environment_factory=ProcessEnvironment, runs_dir=runs)
    if result.status != "SUCCEEDED":
        raise SystemExit(f"the local-backend job failed: {result.error} {result.cause}")
    execution = result.record.execution
    return {"makespan_seconds": execution["stop"] - execution["start"], "rows": result.record.summary["rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument("--workers", type=int, default=41)
    parser.add_argument("--data-size", type=int, default=100_000_000)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    os.environ.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)  # the in-process side uses the host's CPUs
    image = ensure_worker_image(client=docker_client())
    config = JobConfig(data_size_bytes=args.data_size, partition_size_bytes=-(-args.data_size // args.workers),
                                workers=args.workers, batch_size=args.batch_size)
    files = pipeline.ensure_dataset(config, pipeline.DEFAULT_DATA_CACHE)

    print(f"cold starts: {args.cold_starts} worker containers (2048 MB) ...", flush=True)
    cold = cold_starts(image, args.cold_starts)
    print(f"seed job on the emulator: {args.workers} workers, {args.data_size / 1e6:.0f} MB, batch {args.batch_size} ...",
          flush=True)
    with tempfile.TemporaryDirectory() as runs:
        started = time.perf_counter()
        result = run_emulated_job(config, EmulatorOptions(image=image), runs_dir=Path(runs))
        emulator_wall = time.perf_counter() - started
    execution = result.record.execution
    if result.status != "SUCCEEDED":
        raise SystemExit(f"the emulated job failed: {result.error} {result.cause}")
    emulated = {"makespan_seconds": execution["stop"] - execution["start"], "wall_seconds_with_setup": emulator_wall,
                "rows": result.record.summary["rows"], "mae": result.record.summary["mae"],
                "cold_starts": sum(1 for inv in result.record.invocations if inv.init_duration_ms)}
    print("the same handlers in-process ...", flush=True)
    baseline = in_process_job(config, files)
    print("the same job on the local backend (processes) ...", flush=True)
    with tempfile.TemporaryDirectory() as runs:
        local = local_backend_job(config, files, Path(runs))
    if not baseline["rows"] == local["rows"] == emulated["rows"]:
        raise SystemExit(f"row counts differ: emulator {emulated['rows']}, in-process {baseline['rows']}, "
                         f"local {local['rows']}")
    ratio = emulated["makespan_seconds"] / baseline["seconds"]
    out = {
        "host_cpus": os.cpu_count(), "image": image, "cold_start": cold,
        "seed_job": {"workers": args.workers, "data_size_bytes": args.data_size, "batch_size": args.batch_size,
                     "emulator": emulated, "in_process": baseline, "local_backend": local,
                     "ratio_emulator_makespan_vs_in_process": ratio,
                     "ratio_emulator_makespan_vs_local_backend": emulated["makespan_seconds"] / local["makespan_seconds"]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    c = cold["init_duration_ms"]
    print(f"cold start Init Duration p50 {c['p50']:.0f} ms, p99 {c['p99']:.0f} ms "
          f"(provision p50 {cold['provision_ms']['p50']:.0f} ms, p99 {cold['provision_ms']['p99']:.0f} ms)")
    print(f"seed job: emulator {emulated['makespan_seconds']:.1f} s (with image/network/S3 setup "
          f"{emulator_wall:.1f} s), in-process {baseline['seconds']:.1f} s: ratio {ratio:.2f}x")
    print(f"          local backend (processes) {local['makespan_seconds']:.1f} s: emulator / local "
          f"{emulated['makespan_seconds'] / local['makespan_seconds']:.2f}x")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
