"""Our allreduce vs torch.distributed (gloo) on loopback, world size 4, same run.

Each backend runs in 4 processes over TCP on 127.0.0.1; sizes 8 B, 64 KB and
16 MB of float32; the median of repeated sum-allreduces is reported with the
algorithm bandwidth (bytes / time). Ratios are ours relative to gloo: bandwidth
ratio >= 1.0 at 16 MB and latency ratio <= 2 at 8 B are the goals. Writes
bench/results/allreduce.json. Run: python bench/allreduce.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

from emulator.rendezvous_process import RendezvousProcess
from emulator.s3server import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "allreduce.json"
WORLD = 4
SIZES = {"8 B": 2, "64 KB": 16_384, "16 MB": 4_194_304}  # float32 elements
REPEATS = {"8 B": 200, "64 KB": 50, "16 MB": 5}


def _time(fn, repeats: int) -> float:
    fn()  # warm up (and, for ours, open the connections)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _ours(rank: int, rendezvous: str, out: mp.Queue) -> None:
    import numpy as np

    from worker.collectives import Communicator

    with Communicator(rank, WORLD, "bench", rendezvous=rendezvous, timeout=120) as comm:
        result = {}
        for label, n in SIZES.items():
            data = np.ones(n, dtype=np.float32)
            comm.barrier()
            # In place, as dist.all_reduce below: no result buffer allocated per call.
            result[label] = _time(lambda: comm.allreduce(data, "sum", out=data), REPEATS[label])
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
        result[label] = _time(lambda: dist.all_reduce(data), REPEATS[label])
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


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with RendezvousProcess() as server:
        _, ours, channels = _run(_ours, server.address)
    _, gloo, _ = _run(_gloo, free_port())
    rows = {}
    print(f"allreduce (sum, float32), world size {WORLD}, loopback, median; ours over {set(channels.values())} connections")
    for label, n in SIZES.items():
        nbytes = n * 4
        row = {"bytes": nbytes, "ours_s": ours[label], "gloo_s": gloo[label],
               "ours_bandwidth_MBps": nbytes / ours[label] / 1e6, "gloo_bandwidth_MBps": nbytes / gloo[label] / 1e6,
               "latency_ratio_ours_over_gloo": ours[label] / gloo[label],
               "bandwidth_ratio_ours_over_gloo": gloo[label] / ours[label]}
        rows[label] = row
        print(f"  {label:>6}: ours {ours[label] * 1e3:9.3f} ms ({row['ours_bandwidth_MBps']:8.1f} MB/s)  "
              f"gloo {gloo[label] * 1e3:9.3f} ms ({row['gloo_bandwidth_MBps']:8.1f} MB/s)  "
              f"latency ratio {row['latency_ratio_ours_over_gloo']:.2f}  bandwidth ratio {row['bandwidth_ratio_ours_over_gloo']:.2f}")
    goals = {"bandwidth_16MB_ge_1.0": rows["16 MB"]["bandwidth_ratio_ours_over_gloo"] >= 1.0,
             "latency_8B_within_2x": rows["8 B"]["latency_ratio_ours_over_gloo"] <= 2.0}
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"world_size": WORLD, "cpus": os.cpu_count(), "sizes": rows, "goals": goals}, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
