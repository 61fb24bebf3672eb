"""The worked example of docs/sim.md: the seed system predicted next to its measured figures.

The seed system (issue 15): 41 workers over one 100 MB input object, batch
512; each worker reads the whole object and slices its rank out; Initialize
and Summarize at 128 MB. Its worker memory is not known: predicted at 3,008,
4,096 and 10,240 MB. How its Summarize read the results is not published
either: predicted for today's ``worker/summarize.py`` (``keys``: every rank's
key, 32 threads) and for CosmicAI's summarizer (``list-page``: one list page,
results one by one). Parameters: the shipped calibration; its control
function costs are fitted to the seed's Initialize REPORTs and to CosmicAI's
outside-Map times, its worker phases to CosmicAI's measurements (never to the
seed's Map, Summarize or execution). 20 seeds per configuration.
Writes bench/results/sim_seed.json. Run: python bench/sim_seed.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim.model import JobSpec, simulate
from sim.params import reference_params
from sim.plan import percentile

MEASURED = {"Map (s)": "51.2", "Summarize (s), keys": "7.4", "Summarize (s), list-page": "7.4",
            "execution (s), keys": "60-65", "execution (s), list-page": "60-65",
            "Initialize Duration (ms)": "587-637", "Initialize Init (ms)": "468-487", "Initialize Max Memory (MB)": "87-89"}
MEASURED_MAP_S = 51.2
SEEDS = 20
MEMORIES = (3008, 4096, 10240)
RESULTS = Path(__file__).resolve().parent / "results" / "sim_seed.json"


def runs(memory_mb: int, reads: str) -> list:
    params = reference_params()
    return [simulate(JobSpec(data_size_bytes=100_000_000, workers=41, batch_size=512, memory_mb=memory_mb,
                             timeout_s=900, read_mode="whole", control_memory_mb=128, summarize_reads=reads),
                     params, seed)
            for seed in range(SEEDS)]


def _p50_p95(values: list[float]) -> str:
    return f"{percentile(values, 50):.1f} (p95 {percentile(values, 95):.1f})" if values else "-"


def predict(memory_mb: int) -> dict[str, str]:
    by_reads = {reads: runs(memory_mb, reads) for reads in ("keys", "list-page")}
    keys = by_reads["keys"]
    maps = [r.steps["Map"][1] - r.steps["Map"][0] for r in keys if "Map" in r.steps]
    below = sum(1 for m in maps if m <= MEASURED_MAP_S)
    inits = [i for r in keys for i in r.invocations if i["function"] == "initialize"]
    workers = [i for r in keys for i in r.invocations if i["function"] == "worker"]
    row = {"Map (s)": _p50_p95(maps) + (f"; 51.2 is p{100 * below / len(maps):.0f}" if maps else ""),
           "Initialize Duration (ms)": f"{percentile([i['duration_s'] * 1000 for i in inits], 50):.0f}",
           "Initialize Init (ms)": f"{percentile([i['init_s'] * 1000 for i in inits], 50):.0f}",
           "Initialize Max Memory (MB)": f"{inits[0]['max_memory_used_mb']:.0f}",
           "worker Max Memory (MB)": f"{max(w['max_memory_used_mb'] for w in workers):.0f}"}
    for reads, results in by_reads.items():
        spans = [r.steps["Summarize"][1] - r.steps["Summarize"][0] for r in results if "Summarize" in r.steps]
        failed = sum(r.items_failed for r in results)
        row[f"Summarize (s), {reads}"] = _p50_p95(spans)
        row[f"execution (s), {reads}"] = (_p50_p95([r.makespan_s for r in results])
                                          + (f", {failed / SEEDS:.0f} items fail (OOM)" if failed else ""))
    return row


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    columns = {m: predict(m) for m in MEMORIES}
    rows = list(MEASURED) + ["worker Max Memory (MB)"]
    print("| | measured | " + " | ".join(f"predicted at {m:,} MB" for m in MEMORIES) + " |")
    print("|---|---|" + "---|" * len(MEMORIES))
    for row in rows:
        print(f"| {row} | {MEASURED.get(row, 'not reported')} | " + " | ".join(columns[m][row] for m in MEMORIES) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({row: {"measured": MEASURED.get(row), **{f"predicted_{m}_mb": columns[m][row]
                                                                          for m in MEMORIES}}
                                   for row in rows}, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
