"""Rendezvous throughput: 1,000 concurrent pairs (2,000 clients) on loopback.

The server runs as its own process (`python -m rendezvous serve`); asyncio
clients speak protocol v2 and time connect -> "paired". Baseline in the same
run: the same clients doing connect -> one request/reply against a trivial
asyncio echo server (the floor any pairing server pays). Prints pairs/s,
p50/p99 pairing latency and the latency ratio to the baseline; writes
bench/results/rendezvous.json. Run: python bench/rendezvous_load.py [--pairs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from emulator.rendezvous_process import RendezvousProcess
from emulator.s3server import free_port
from rendezvous import protocol as P  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rendezvous.json"
ECHO = ("import asyncio,sys\n"
        "async def h(r,w):\n  d=await r.read(4096); w.write(d); await w.drain(); w.close()\n"
        "async def m():\n  s=await asyncio.start_server(h,'127.0.0.1',int(sys.argv[1]),backlog=4096)\n  await s.serve_forever()\n"
        "asyncio.run(m())\n")


async def _pair_client(port: int, name: str) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(P.client_frame({"v": 2, "op": "pair", "name": name, "job": "bench"}))
    await writer.drain()
    while True:
        (length,) = P.LENGTH.unpack(await reader.readexactly(4))
        reply = json.loads(await reader.readexactly(length))
        if reply["status"] != "waiting":
            break
    writer.close()
    if reply["status"] != "paired":
        raise RuntimeError(reply)
    return time.perf_counter() - start


async def _echo_client(port: int, name: str) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(name.encode())
    await writer.drain()
    await reader.read(4096)
    writer.close()
    return time.perf_counter() - start


async def _burst(client, port: int, pairs: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    latencies = await asyncio.gather(*(client(port, f"p{i // 2}") for i in range(2 * pairs)))
    return time.perf_counter() - start, list(latencies)


def _summary(wall: float, latencies: list[float], pairs: int) -> dict:
    ordered = sorted(latencies)
    return {"wall_s": wall, "pairs_per_s": pairs / wall, "p50_ms": statistics.median(ordered) * 1e3,
            "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()
    with RendezvousProcess() as server:
        ours = _summary(*asyncio.run(_burst(_pair_client, server.port, args.pairs)), args.pairs)
    echo_port = free_port()
    echo = subprocess.Popen([sys.executable, "-c", ECHO, str(echo_port)])
    try:
        time.sleep(1.0)
        base = _summary(*asyncio.run(_burst(_echo_client, echo_port, args.pairs)), args.pairs)
    finally:
        echo.terminate()
        echo.wait(10)
    ratio = ours["p50_ms"] / base["p50_ms"]
    print(f"{args.pairs} concurrent pairs ({2 * args.pairs} clients) on loopback")
    print(f"  rendezvous: {ours['pairs_per_s']:8.0f} pairs/s  p50 {ours['p50_ms']:7.2f} ms  p99 {ours['p99_ms']:7.2f} ms")
    print(f"  echo floor: {base['pairs_per_s']:8.0f} pairs/s  p50 {base['p50_ms']:7.2f} ms  p99 {base['p99_ms']:7.2f} ms")
    print(f"  p50 latency ratio rendezvous / echo floor: {ratio:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"pairs": args.pairs, "rendezvous": ours, "echo_baseline": base,
                                   "p50_ratio": ratio}, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
