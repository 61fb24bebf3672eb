"""Simulator speed: how long one simulated job takes at 10,000 and 100,000 workers.

Baseline measured in the same run: a 1,000-worker job; ratios are per-worker
cost against it (near 1.0 means the model scales linearly). Goals: 10,000
workers < 2 s, 100,000 workers < 20 s on this machine. Writes
bench/results/sim.json. Run: python bench/sim_scale.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sim.model import JobSpec, simulate

RESULTS = Path(__file__).resolve().parent / "results" / "sim.json"
GOALS_S = {10_000: 2.0, 100_000: 20.0}


def time_job(workers: int) -> tuple[float, float]:
    """(wall seconds to simulate, simulated makespan) for one job of ``workers`` 25 MB partitions."""
    spec = JobSpec(data_size_bytes=workers * 25_000_000, partition_size_bytes=25_000_000, memory_mb=2048)
    start = time.perf_counter()
    result = simulate(spec, seed=0)
    return time.perf_counter() - start, result.makespan_s


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    base_s, _ = time_job(1_000)
    rows = {}
    for workers in (10_000, 100_000):
        wall, makespan = time_job(workers)
        ratio = (wall / workers) / (base_s / 1_000)
        rows[workers] = {"wall_seconds": wall, "simulated_makespan_s": makespan, "per_worker_ratio_vs_1000": ratio,
                         "goal_seconds": GOALS_S[workers], "met": wall < GOALS_S[workers]}
        print(f"{workers:>7} workers: {wall:6.2f} s (goal < {GOALS_S[workers]:.0f} s: {'met' if wall < GOALS_S[workers] else 'NOT met'}), "
              f"simulated makespan {makespan:.1f} s, per-worker cost {ratio:.2f}x the 1,000-worker baseline")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"baseline_1000_workers_s": base_s, "jobs": rows}, indent=2) + "\n")
    print(f"baseline 1,000 workers: {base_s:.3f} s; results: {RESULTS}")


if __name__ == "__main__":
    main()
