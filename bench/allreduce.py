"""Our allreduce vs torch.distributed (gloo) on loopback, world size 4, same run.

Each backend runs in 4 processes over TCP on 127.0.0.1; sizes 8 B, 64 KB and
16 MB of float32; the median of repeated in-place sum-allreduces is reported
with the algorithm bandwidth (bytes / time). The buffer is refilled with ones
before every timed call (untimed), so repeated in-place sums never overflow
float32 (4^n grows past 3.4e38 after 64 calls); the last result is checked.

One run measures ours, then gloo; ``--runs`` runs (default 5) alternate the
two, and the goals apply to the median over runs of each run's ratio:
8 B latency ratio ours/gloo <= 1.2, 16 MB bandwidth ratio ours/gloo >= 1.2
(issue 14). Writes bench/results/allreduce.json. Run: python bench/allreduce.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

from emulator.rendezvous_process import RendezvousProcess
from emulator.s3server import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "allreduce.json"
WORLD = 4
SIZES = {"8 B": 2, "64 KB": 16_384, "16 MB": 4_194_304}  # float32 elements
REPEATS = {"8 B": 200, "64 KB": 50, "16 MB": 5}


def _time(fn, repeats: int, reset, check) -> float:
    """Median seconds of ``fn()``; ``reset()`` (untimed) before each call, ``check()`` after the last."""
    reset()
    fn()  # warm up (and, for ours, open the connections)
    samples = []
    for _ in range(repeats):
        reset()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    check()
    return statistics.median(samples)


def _checker(values, label: str):
    def check() -> None:
        if not (values == WORLD).all():
            raise AssertionError(f"{label}: allreduce of ones at world size {WORLD} is not {WORLD} everywhere")
    return check


def _ours(rank: int, rendezvous: str, out: mp.Queue) -> None:
    import numpy as np

    from worker.collectives import Communicator

    with Communicator(rank, WORLD, "bench", rendezvous=rendezvous, timeout=120) as comm:
        result = {}
        for label, n in SIZES.items():
            data = np.ones(n, dtype=np.float32)
            comm.barrier()
            # In place, as dist.all_reduce below: no result buffer allocated per call.
            result[label] = _time(lambda: comm.allreduce(data, "sum", out=data), REPEATS[label],
                                  lambda: data.fill(1.0), _checker(data, f"ours {label}"))
        if rank == 0:
            out.put(("ours", result, comm.channels))


def _gloo(rank: int, port: int, out: mp.Queue) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    result = {}
    for label, n in SIZES.items():
        data = torch.ones(n, dtype=torch.float32)
        dist.barrier()
        result[label] = _time(lambda: dist.all_reduce(data), REPEATS[label], lambda: data.fill_(1.0),
                              _checker(data.numpy(), f"gloo {label}"))
    if rank == 0:
        out.put(("gloo", result, None))
    dist.destroy_process_group()


def _run(target, arg) -> tuple:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(r, arg, out)) for r in range(WORLD)]
    for p in procs:
        p.start()
    result = out.get(timeout=600)
    for p in procs:
        p.join(60)
    return result


def _one_run() -> tuple[dict, dict, dict]:
    with RendezvousProcess() as server:
        _, ours, channels = _run(_ours, server.address)
    _, gloo, _ = _run(_gloo, free_port())
    return ours, gloo, channels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of both backends (default 5); goals use the median")
    args = parser.parse_args()
    load_start = os.getloadavg()
    runs = []
    for i in range(args.runs):
        ours, gloo, channels = _one_run()
        runs.append({"ours_s": ours, "gloo_s": gloo})
        print(f"run {i + 1}/{args.runs}: " + "  ".join(
            f"{label} latency ratio {ours[label] / gloo[label]:.2f}" for label in SIZES))
    rows = {}
    print(f"allreduce (sum, float32, in place), world size {WORLD}, loopback, median of {args.runs} runs; "
          f"ours over {set(channels.values())} connections")
    for label, n in SIZES.items():
        nbytes = n * 4
        ratios = [r["ours_s"][label] / r["gloo_s"][label] for r in runs]
        ours_s = statistics.median(r["ours_s"][label] for r in runs)
        gloo_s = statistics.median(r["gloo_s"][label] for r in runs)
        row = {"bytes": nbytes, "ours_s": ours_s, "gloo_s": gloo_s,
               "ours_bandwidth_MBps": nbytes / ours_s / 1e6, "gloo_bandwidth_MBps": nbytes / gloo_s / 1e6,
               "latency_ratio_ours_over_gloo": statistics.median(ratios),
               "bandwidth_ratio_ours_over_gloo": statistics.median(1 / r for r in ratios),
               "latency_ratios_per_run": ratios}
        rows[label] = row
        print(f"  {label:>6}: ours {ours_s * 1e3:9.3f} ms ({row['ours_bandwidth_MBps']:8.1f} MB/s)  "
              f"gloo {gloo_s * 1e3:9.3f} ms ({row['gloo_bandwidth_MBps']:8.1f} MB/s)  "
              f"latency ratio {row['latency_ratio_ours_over_gloo']:.2f}  bandwidth ratio {row['bandwidth_ratio_ours_over_gloo']:.2f}"
              f"  (per run: {', '.join(f'{r:.2f}' for r in ratios)})")
    goals = {"latency_8B_le_1.2x_gloo": rows["8 B"]["latency_ratio_ours_over_gloo"] <= 1.2,
             "bandwidth_16MB_ge_1.2x_gloo": rows["16 MB"]["bandwidth_ratio_ours_over_gloo"] >= 1.2}
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    load = {"load_average_at_start": load_start, "load_average_at_end": os.getloadavg()}
    print(f"load average (1/5/15 min) at start {load_start}, end {load['load_average_at_end']} on {os.cpu_count()} CPUs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"world_size": WORLD, "cpus": os.cpu_count(), "runs": args.runs, **load,
                                   "sizes": rows, "goals": goals}, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
