"""Capacity planning: sweep configurations, keep the Pareto front, recommend one with reasons."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, replace
from typing import Callable

from sim.asl import Workflow
from sim.model import JobSpec, SimResult, simulate
from sim.params import ModelParams
from sim.prices import PriceTable


@dataclass(frozen=True)
class Candidate:
    """One configuration's outcome over the seeds."""

    memory_mb: int
    partition_size_bytes: int
    max_concurrency: int
    workers: int
    makespan_p50_s: float
    makespan_p95_s: float
    cost_p50_usd: float
    failed_items: int
    throttles: int

    def meets(self, deadline_s: float | None) -> bool:
        return self.failed_items == 0 and (deadline_s is None or self.makespan_p95_s <= deadline_s)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def run_seeds(spec: JobSpec, params: ModelParams, prices: PriceTable, seeds: int,
              workflow: Workflow | None = None) -> list[SimResult]:
    """One simulation per seed 0..seeds-1."""
    return [simulate(spec, params, seed, prices, workflow) for seed in range(seeds)]


def sweep(base: JobSpec, memories: list[int], partition_sizes: list[int], concurrencies: list[int],
          params: ModelParams, prices: PriceTable, seeds: int = 3,
          progress: Callable[[int, int], None] | None = None, workflow: Workflow | None = None) -> list[Candidate]:
    """Simulate every memory x partition size x max concurrency combination."""
    grid = list(itertools.product(memories, partition_sizes, concurrencies))
    out = []
    for i, (memory, part, conc) in enumerate(grid, 1):
        spec = replace(base, memory_mb=memory, partition_size_bytes=part, max_concurrency=conc)
        results = run_seeds(spec, params, prices, seeds, workflow)
        spans = [r.makespan_s for r in results]
        out.append(Candidate(memory, part, conc, spec.world, percentile(spans, 50), percentile(spans, 95),
                             statistics.median(r.bill.total for r in results),
                             max(r.items_failed + (r.status != "SUCCEEDED") for r in results),
                             max(r.throttles for r in results)))
        if progress:
            progress(i, len(grid))
    return out


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both cost and p95 makespan (failures excluded), by cost."""
    ok = [c for c in candidates if c.failed_items == 0]
    front = [c for c in ok if not any(
        o.cost_p50_usd <= c.cost_p50_usd and o.makespan_p95_s <= c.makespan_p95_s
        and (o.cost_p50_usd < c.cost_p50_usd or o.makespan_p95_s < c.makespan_p95_s) for o in ok)]
    return sorted(front, key=lambda c: c.cost_p50_usd)


def recommend(candidates: list[Candidate], deadline_s: float | None) -> dict[str, tuple[Candidate, str]]:
    """The cost, speed and balanced picks (as Lambda Power Tuning names its strategies), with reasons."""
    front = pareto_front(candidates)
    if not front:
        return {}
    feasible = [c for c in front if c.meets(deadline_s)]
    picks: dict[str, tuple[Candidate, str]] = {}
    fastest = min(front, key=lambda c: c.makespan_p95_s)
    picks["speed"] = (fastest, f"shortest p95 makespan ({fastest.makespan_p95_s:.1f} s) at ${fastest.cost_p50_usd:.4f}")
    if feasible:
        cheap = min(feasible, key=lambda c: c.cost_p50_usd)
        why = f"cheapest (${cheap.cost_p50_usd:.4f}) " + (f"whose p95 makespan {cheap.makespan_p95_s:.1f} s meets the {deadline_s:.0f} s deadline" if deadline_s else "configuration")
        picks["cost"] = (cheap, why)
        lo_c, hi_c = min(c.cost_p50_usd for c in feasible), max(c.cost_p50_usd for c in feasible)
        lo_t, hi_t = min(c.makespan_p95_s for c in feasible), max(c.makespan_p95_s for c in feasible)

        def score(c: Candidate) -> float:
            norm_c = (c.cost_p50_usd - lo_c) / (hi_c - lo_c) if hi_c > lo_c else 0.0
            norm_t = (c.makespan_p95_s - lo_t) / (hi_t - lo_t) if hi_t > lo_t else 0.0
            return norm_c + norm_t

        balanced = min(feasible, key=score)
        picks["balanced"] = (balanced, "best sum of normalised cost and p95 makespan among those meeting the deadline")
    return picks
