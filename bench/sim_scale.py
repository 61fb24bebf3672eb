"""Simulator speed: how long one simulated job takes at 10,000 and 100,000 workers.

The job: 25 MB partitions at 10,240 MB, MaxConcurrency 1,000 (the account
limit), Initialize/Summarize at 1,769 MB with a 900 s timeout, the shipped CosmicAI calibration (stragglers, cold starts and all
phases on), the default state machine. Baseline measured in the same run: a
1,000-worker job; ratios are per-worker cost against it (near 1.0 means the
model scales linearly). Goals: 10,000 workers < 2 s, 100,000 workers < 20 s.
The 1-minute load average is recorded, since other processes share the CPU.
Writes bench/results/sim.json. Run: python bench/sim_scale.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from emulator.contracts.job import DEFAULT_PARTITION_SIZE_BYTES
from sim.asl import read_workflow
from sim.model import JobSpec, simulate
from sim.params import reference_params

RESULTS = Path(__file__).resolve().parent / "results" / "sim.json"
GOALS_S = {10_000: 2.0, 100_000: 20.0}
PARAMS = reference_params()
WORKFLOW = read_workflow()


def time_job(workers: int) -> tuple[float, float, str]:
    """(wall seconds to simulate, simulated makespan, status) for one job of ``workers`` 25 MB partitions."""
    part = DEFAULT_PARTITION_SIZE_BYTES
    spec = JobSpec(data_size_bytes=workers * part, partition_size_bytes=part, memory_mb=10_240,
                   timeout_s=900, max_concurrency=1000, control_memory_mb=1769, control_timeout_s=900)
    start = time.perf_counter()
    result = simulate(spec, PARAMS, seed=0, workflow=WORKFLOW)
    return time.perf_counter() - start, result.makespan_s, result.status


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    base_s, _, _ = time_job(1_000)
    rows = {}
    for workers in (10_000, 100_000):
        load = os.getloadavg()[0]
        wall, makespan, status = time_job(workers)
        ratio = (wall / workers) / (base_s / 1_000)
        rows[workers] = {"wall_seconds": wall, "simulated_makespan_s": makespan, "status": status,
                         "per_worker_ratio_vs_1000": ratio, "goal_seconds": GOALS_S[workers],
                         "met": wall < GOALS_S[workers], "load_avg_1min_before": load}
        print(f"{workers:>7} workers: {wall:6.2f} s (goal < {GOALS_S[workers]:.0f} s: {'met' if wall < GOALS_S[workers] else 'NOT met'}), "
              f"simulated makespan {makespan:.1f} s ({status}), per-worker cost {ratio:.2f}x the 1,000-worker baseline, "
              f"load average {load:.2f} on {os.cpu_count()} CPUs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"baseline_1000_workers_s": base_s, "cpus": os.cpu_count(), "jobs": rows}, indent=2) + "\n")
    print(f"baseline 1,000 workers: {base_s:.3f} s; results: {RESULTS}")


if __name__ == "__main__":
    main()
