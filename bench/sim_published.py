"""The model against every published CosmicAI figure, and its end-to-end predictions from 1 GB to 1 TB.

Part 1 recomputes each published figure the shipped calibration can be held
against (issue 15 and sim/reference/cosmicai-aws/README.md), saying whether the
figure was fitted or is a check. Part 2 predicts the end-to-end execution time
of the real pipeline's configurations, 1 GB to 1 TB, for comparison with the
held-out real runs (which are not in this repository and were not read).
Part 2's configuration and assumptions are sim.reference.real_pipeline_spec's
(the real state machine, sim/reference/cosmicai.asl.json; workers at 10,240 MB,
batch 512; account concurrency 10,000 and control functions at 128 MB assumed).
5 seeds, p50 and p95.
Writes bench/results/sim_published.json. Run: python bench/sim_published.py
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from sim import reference
from sim.calibrate import leave_one_out, residuals
from sim.model import simulate
from sim.params import reference_params
from sim.plan import percentile

SEEDS = 5
RESULTS = Path(__file__).resolve().parent / "results" / "sim_published.json"
E2E_COLUMNS = ("data", "partition", "workers", "execution p50 / p95 (s)", "Map p50 (s)", "outside the Map (s)",
               "failed items")
# (data GB, partition MB): the sizes the real pipeline ran (issue 15: 1-12.6 GB and 256 GB-1 TB)
E2E = ((1, 25), (1, 50), (1, 75), (1, 100), (4, 100), (8, 75), (12.6, 75), (100, 100), (256, 100), (512, 100),
       (768, 100), (1000, 100))


def published() -> list[tuple[str, str, str, str]]:
    """(figure, published, predicted, how it was used) rows."""
    p = reference_params()
    obs = reference.observations()
    res = residuals(p, obs)
    loo = leave_one_out(obs)
    rows = [("worker REPORT Duration, 75 MB, 10,240 MB (8 warm, 1 cold)", "32.4-34.8 s warm, 40.2 s cold",
             f"mean error {res['mape_pct']:.1f}%, worst {res['max_ape_pct']:.1f}%", "fitted"),
            ("  leave-one-out of those 9", "-", f"{sum(abs(r['error_pct']) <= 10 for r in loo)}/9 within 10%; cold "
             f"{[r for r in loo if r['cold']][0]['error_pct']:+.1f}%", "check (cold: see docs)")]
    for mb, figure in ((75, "16-18 s"), (100, "21-23 s")):
        compute = p.worker_phases(mb * 1e6 / p.bytes_per_sample, mb * 1e6, 10240, 512, False)["compute_s"]
        rows.append((f"inference per worker, {mb} MB partition", figure, f"{compute:.1f} s", "check"))
    slow = p.per_sample_s(32) / p.per_sample_s(512) - 1
    rows.append(("batch 32 against batch 512", "35-45% slower", f"{slow:.0%} slower", "prior set from it"))
    rows.append(("worker Max Memory Used, 75 MB", "5,948-5,998 MB", f"{p.max_memory_mb(75e6):,.0f} MB", "fitted"))
    for world, seconds in reference.OUTSIDE_MAP_FITTED:
        rows.append((f"time outside the Map, {world:,} workers", f"{seconds:g} s",
                     f"{p.outside_map_seconds(world, world, 128, 'list-page'):.1f} s", "fitted"))
    low_world, low, high = reference.OUTSIDE_MAP_PLATEAU
    for world in (low_world, 10_000):
        rows.append((f"time outside the Map, {world:,} workers", f"{low:g}-{high:g} s",
                     f"{p.outside_map_seconds(world, world, 128, 'list-page'):.1f} s", "check (held out)"))
    inits = [d for d, _, _ in reference.SEED_INITIALIZE]
    rows.append(("seed Initialize Duration, 128 MB", "587-637 ms",
                 f"{p.initialize_seconds(128, 41, 41) * 1000:.0f} ms (median {statistics.median(inits) * 1000:.0f})",
                 "fitted"))
    return rows


def end_to_end() -> list[tuple[str, ...]]:
    p = reference_params()
    rows = []
    for gb, mb in E2E:
        spec = reference.real_pipeline_spec(gb, mb)
        results = [simulate(spec, p, seed) for seed in range(SEEDS)]
        spans = [r.makespan_s for r in results]
        maps = [r.steps["Map"][1] - r.steps["Map"][0] for r in results if "Map" in r.steps]
        failed = statistics.median(r.items_failed for r in results)
        rows.append((f"{gb:g} GB", f"{mb} MB", f"{spec.world:,}", f"{percentile(spans, 50):.1f} / {percentile(spans, 95):.1f}",
                     f"{percentile(maps, 50):.1f}", f"{percentile(spans, 50) - percentile(maps, 50):.1f}",
                     f"{failed:.0f}"))
    return rows


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    figures, predictions = published(), end_to_end()
    print("| figure | published | model | used as |\n|---|---|---|---|")
    for row in figures:
        print("| " + " | ".join(row) + " |")
    print("\n| " + " | ".join(E2E_COLUMNS) + " |")
    print("|" + "---|" * len(E2E_COLUMNS))
    for row in predictions:
        print("| " + " | ".join(row) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "published": [dict(zip(("figure", "published", "model", "used_as"), row)) for row in figures],
        "end_to_end": [dict(zip(E2E_COLUMNS, row)) for row in predictions]}, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
