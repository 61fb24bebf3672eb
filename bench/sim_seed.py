"""The worked example of docs/sim.md: the seed system predicted next to its measured figures.

The seed system (issue 15): 41 workers over one 100 MB input object, batch
512; each worker reads the whole object and slices its rank out; Initialize
and Summarize at 128 MB. Its worker memory is not known: predicted at 3,008,
4,096 and 10,240 MB. Parameters: the shipped CosmicAI calibration (which has
never seen the seed system). 20 seeds per memory. Run: python bench/sim_seed.py
"""

from __future__ import annotations

import argparse

from sim.model import JobSpec, simulate
from sim.params import reference_params
from sim.plan import percentile

MEASURED = {"Map (s)": "51.2", "Summarize (s)": "7.4", "execution (s)": "60-65",
            "Initialize Duration (ms)": "587-637", "Initialize Init (ms)": "468-487", "Initialize Max Memory (MB)": "87-89"}
SEEDS = 20


def predict(memory_mb: int) -> dict[str, str]:
    params = reference_params()
    runs = [simulate(JobSpec(data_size_bytes=100_000_000, workers=41, batch_size=512, memory_mb=memory_mb,
                             timeout_s=900, read_mode="whole", control_memory_mb=128), params, seed)
            for seed in range(SEEDS)]

    def span(step: str) -> str:
        values = [r.steps[step][1] - r.steps[step][0] for r in runs if step in r.steps]
        return f"{percentile(values, 50):.1f} (p95 {percentile(values, 95):.1f})" if values else "-"

    inits = [i for r in runs for i in r.invocations if i["function"] == "initialize"]
    workers = [i for r in runs for i in r.invocations if i["function"] == "worker"]
    failed = sum(r.items_failed for r in runs)
    return {
        "Map (s)": span("Map"), "Summarize (s)": span("Summarize"),
        "execution (s)": f"{percentile([r.makespan_s for r in runs], 50):.1f} (p95 {percentile([r.makespan_s for r in runs], 95):.1f})"
                         + (f", {failed / SEEDS:.0f} items fail (OOM)" if failed else ""),
        "Initialize Duration (ms)": f"{percentile([i['duration_s'] * 1000 for i in inits], 50):.0f}",
        "Initialize Init (ms)": f"{percentile([i['init_s'] * 1000 for i in inits], 50):.0f}",
        "Initialize Max Memory (MB)": f"{inits[0]['max_memory_used_mb']:.0f}",
        "worker Max Memory (MB)": f"{max(w['max_memory_used_mb'] for w in workers):.0f}",
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    memories = (3008, 4096, 10240)
    columns = {m: predict(m) for m in memories}
    print("| | measured | " + " | ".join(f"predicted at {m:,} MB" for m in memories) + " |")
    print("|---|---|" + "---|" * len(memories))
    for row in list(MEASURED) + ["worker Max Memory (MB)"]:
        print(f"| {row} | {MEASURED.get(row, 'not reported')} | " + " | ".join(columns[m][row] for m in memories) + " |")


if __name__ == "__main__":
    main()
