"""Rendezvous throughput on loopback: a burst, and sustained load at fixed concurrency.

The server runs as its own process (``python -m rendezvous serve``); clients
are bare asyncio protocols (on uvloop when installed, so the load generator
costs little next to the server) that speak protocol v2 and time connect ->
"paired". Baseline in the same run: the same clients doing connect -> one
request/reply -> close against a trivial echo server (on the same event loop
kind as the server), the floor any pairing server pays for two connections.

Modes:
- burst: ``--pairs`` pairs (2 clients each) all at once.
- sustained: ``--total`` pairs, ``--concurrency`` pairs in flight at any time.

Reports pairs/s, p50/p99 pairing latency, the server process's CPU seconds per
pair (user + system, from /proc), and the ratios to the echo floor measured in
the same run. With ``--tcpunchd PATH`` (a binary built from TCPunch's
``server/hole_punching_server.cpp``; not shipped here) the same patterns also
run with TCPunch v1 clients against tcpunchd and against ours (``--allow-v1``). Goals (issue 14): sustained >= 4,500 pairs/s at concurrency 200
over 10,000 pairs and <= 0.15 ms of server CPU per pair. Writes
bench/results/rendezvous.json.

The load comes from ``--clients`` processes (default: one per CPU) started at
the same moment. Each measurement is repeated ``--rounds`` times (ours, then the baseline) and
reported as medians, per-round ratios included: the machine is shared.

Run: python bench/rendezvous_load.py [--mode both|burst|sustained] [--pairs 1000]
     [--total 10000] [--concurrency 200] [--rounds 3] [--tcpunchd PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import socket
import subprocess
import sys
import time
from pathlib import Path

from emulator.rendezvous_process import RendezvousProcess
from emulator.s3server import free_port
from rendezvous import protocol as P

RESULTS = Path(__file__).resolve().parent / "results" / "rendezvous.json"
GOAL_PAIRS_PER_S = 4500.0
GOAL_CPU_MS_PER_PAIR = 0.15
CLIENT_PROCESSES = os.cpu_count() or 1  # --clients
# The echo floor: accept, read one request, write it back, close; same event loop as the server.
ECHO = ("import asyncio,sys\n"
        "try:\n  import uvloop; uvloop.install()\nexcept ImportError:\n  pass\n"
        "class E(asyncio.Protocol):\n"
        "  def connection_made(self,t): self.t=t\n"
        "  def data_received(self,d): self.t.write(d); self.t.close()\n"
        "async def m():\n  s=await asyncio.get_running_loop().create_server(E,'127.0.0.1',int(sys.argv[1]),backlog=4096)\n"
        "  await s.serve_forever()\n"
        "asyncio.run(m())\n")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Client(asyncio.Protocol):
    """A load-generating client as a bare protocol (no streams): it should cost far less than the server."""

    def __init__(self, request: bytes, complete, future: asyncio.Future) -> None:
        self.request, self.complete, self.future, self.buf = request, complete, future, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            done = self.complete(self.buf)
        except Exception as exc:  # noqa: BLE001 - a wrong reply fails the run
            done = exc
        if done is not None:
            self.transport.close()
            if not self.future.done():
                (self.future.set_exception if isinstance(done, Exception) else self.future.set_result)(done)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.future.done():
            self.future.set_exception(ConnectionError(f"server closed after {len(self.buf)} bytes"))


async def _exchange(port: int, request: bytes, complete) -> float:
    """Seconds from connect to a complete answer."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    start = time.perf_counter()
    await loop.create_connection(lambda: _Client(request, complete, future), "127.0.0.1", port)
    await future
    return time.perf_counter() - start


def _paired(buf: bytes):
    """True once a v2 "paired" frame is in ``buf`` (after an optional "waiting"); None while incomplete."""
    offset = 0
    while len(buf) >= offset + 4:
        (length,) = P.LENGTH.unpack_from(buf, offset)
        if len(buf) < offset + 4 + length:
            return None
        reply = json.loads(buf[offset + 4:offset + 4 + length])
        if reply["status"] != "waiting":
            if reply["status"] != "paired":
                raise RuntimeError(reply)
            return True
        offset += 4 + length
    return None


async def _pair_client(port: int, name: str) -> float:
    return await _exchange(port, P.client_frame({"v": 2, "op": "pair", "name": name, "job": "bench"}), _paired)


async def _v1_client(port: int, name: str) -> float:
    """A TCPunch client: raw name, 8 bytes (own address), 8 bytes (the peer's)."""
    return await _exchange(port, name.encode(), lambda buf: True if len(buf) >= 16 else None)


async def _echo_client(port: int, name: str) -> float:
    return await _exchange(port, name.encode(), lambda buf: True if buf else None)


async def _pair_of(client, port: int, name: str) -> float:
    """Both clients of one pair; the pair's latency is the slower client's."""
    a, b = await asyncio.gather(client(port, name), client(port, name))
    return max(a, b)


async def _burst(client, port: int, pairs: int, concurrency: int, prefix: str) -> tuple[float, list[float]]:
    start = time.perf_counter()
    latencies = await asyncio.gather(*(_pair_of(client, port, f"{prefix}p{i}") for i in range(pairs)))
    return time.perf_counter() - start, list(latencies)


async def _sustained(client, port: int, pairs: int, concurrency: int, prefix: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(pairs))

    async def lane() -> None:
        for i in counter:
            latencies.append(await _pair_of(client, port, f"{prefix}s{i}"))

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def _generate(job: tuple) -> tuple[float, float, list[float]]:
    """One load-generating process: wait for the common start time, run, return (start, end, latencies)."""
    pattern, client, port, pairs, concurrency, prefix, start_at = job
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    wall, latencies = runner(pattern(client, port, pairs, concurrency, prefix))
    return began, began + wall, latencies


def _run(pattern, client, port: int, pid: int, pairs: int, concurrency: int) -> dict:
    """The load split over ``CLIENT_PROCESSES`` processes started together (one Python process
    cannot generate as many connections per second as the server can take)."""
    n = CLIENT_PROCESSES
    share = lambda total, i: total // n + (1 if i < total % n else 0)  # noqa: E731
    with multiprocessing.get_context("fork").Pool(n) as pool:
        start_at = time.time() + 0.3
        cpu0 = _cpu_seconds(pid)
        parts = pool.map(_generate, [(pattern, client, port, share(pairs, i), max(1, share(concurrency, i)), f"c{i}-",
                                      start_at) for i in range(n)])
        cpu = _cpu_seconds(pid) - cpu0
    wall = max(end for _, end, _ in parts) - min(began for began, _, _ in parts)
    ordered = sorted(latency for _, _, latencies in parts for latency in latencies)
    return {"wall_s": wall, "pairs_per_s": pairs / wall, "p50_ms": statistics.median(ordered) * 1e3,
            "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1e3, "server_cpu_s": cpu,
            "server_cpu_ms_per_pair": cpu / pairs * 1e3}


def _measure(pattern, pairs: int, concurrency: int) -> dict:
    """Ours, then the echo floor, with the same load pattern."""
    with RendezvousProcess() as server:
        ours = _run(pattern, _pair_client, server.port, server._proc.pid, pairs, concurrency)
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-c", ECHO, str(port)])
    try:
        time.sleep(1.0)
        base = _run(pattern, _echo_client, port, echo.pid, pairs, concurrency)
    finally:
        echo.terminate()
        echo.wait(10)
    return {"pairs": pairs, "concurrency": concurrency, "rendezvous": ours, "echo_floor": base,
            "throughput_ratio_to_echo": ours["pairs_per_s"] / base["pairs_per_s"],
            "p50_ratio_to_echo": ours["p50_ms"] / base["p50_ms"],
            "cpu_ratio_to_echo": ours["server_cpu_s"] / max(base["server_cpu_s"], 1e-9)}


class _Process:
    """A server command on a free loopback port, up once the port accepts connections."""

    def __init__(self, command: list[str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([c.replace("{port}", str(self.port)) for c in command],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{command[0]} did not listen on {self.port}")

    def __enter__(self) -> "_Process":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _measure_v1(pattern, pairs: int, concurrency: int, tcpunchd: str) -> dict:
    """TCPunch v1 clients: ours (--allow-v1), then tcpunchd, with the same load pattern."""
    ours_cmd = [sys.executable, "-m", "rendezvous", "serve", "--host", "127.0.0.1", "--port", "{port}",
                "--health-port", "-1", "--allow-v1"]
    with _Process(ours_cmd) as server:
        ours = _run(pattern, _v1_client, server.port, server.proc.pid, pairs, concurrency)
    with _Process([tcpunchd, "{port}"]) as server:
        theirs = _run(pattern, _v1_client, server.port, server.proc.pid, pairs, concurrency)
    return {"pairs": pairs, "concurrency": concurrency, "rendezvous": ours, "tcpunchd": theirs,
            "throughput_ratio_to_tcpunchd": ours["pairs_per_s"] / theirs["pairs_per_s"],
            "p50_ratio_to_tcpunchd": ours["p50_ms"] / theirs["p50_ms"],
            "p99_ratio_to_tcpunchd": ours["p99_ms"] / theirs["p99_ms"],
            "cpu_ratio_to_tcpunchd": ours["server_cpu_s"] / max(theirs["server_cpu_s"], 1e-9)}


def _print_v1(title: str, row: dict) -> None:
    print(title)
    for label in ("rendezvous", "tcpunchd"):
        r = row[label]
        print(f"  {label}: {r['pairs_per_s']:8.0f} pairs/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"server CPU {r['server_cpu_ms_per_pair']:.3f} ms/pair")
    print(f"  ratios rendezvous / tcpunchd: throughput {row['throughput_ratio_to_tcpunchd']:.2f}  "
          f"p50 {row['p50_ratio_to_tcpunchd']:.2f}  p99 {row['p99_ratio_to_tcpunchd']:.2f}  "
          f"server CPU {row['cpu_ratio_to_tcpunchd']:.2f}")


def _print(title: str, row: dict) -> None:
    print(title)
    for label, key in (("rendezvous", "rendezvous"), ("echo floor", "echo_floor")):
        r = row[key]
        print(f"  {label}: {r['pairs_per_s']:8.0f} pairs/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"server CPU {r['server_cpu_ms_per_pair']:.3f} ms/pair")
    print(f"  ratios rendezvous / echo floor: throughput {row['throughput_ratio_to_echo']:.2f}  "
          f"p50 {row['p50_ratio_to_echo']:.2f}  server CPU {row['cpu_ratio_to_echo']:.2f}")


def _median_row(rows: list[dict]) -> dict:
    """Field-wise median of rounds (ratios are medians of each round's own ratio), plus the rounds."""
    def merge(values: list):
        if isinstance(values[0], dict):
            return {k: merge([v[k] for v in values]) for k in values[0]}
        return statistics.median(values) if isinstance(values[0], (int, float)) else values[0]
    return {**merge(rows), "rounds": rows}


def _rounds(measure, rounds: int, *args) -> dict:
    return _median_row([measure(*args) for _ in range(rounds)])


def main() -> None:
    global CLIENT_PROCESSES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "burst", "sustained"), default="both")
    parser.add_argument("--pairs", type=int, default=1000, help="burst: pairs at once (default 1000)")
    parser.add_argument("--total", type=int, default=10_000, help="sustained: pairs in all (default 10000)")
    parser.add_argument("--concurrency", type=int, default=200, help="sustained: pairs in flight (default 200)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (ours, baseline), reported as medians: a shared machine is noisy (default 3)")
    parser.add_argument("--tcpunchd", help="a tcpunchd binary: also compare with it using v1 clients")
    parser.add_argument("--clients", type=int, default=CLIENT_PROCESSES,
                        help=f"load-generating processes (default {CLIENT_PROCESSES}, the CPU count)")
    args = parser.parse_args()
    CLIENT_PROCESSES = args.clients
    results: dict = {"cpus": os.cpu_count(), "rounds": args.rounds, "client_processes": args.clients, "load_average_at_start": os.getloadavg()}
    suffix = f" (median of {args.rounds} rounds)"
    if args.mode in ("both", "burst"):
        results["burst"] = _rounds(_measure, args.rounds, _burst, args.pairs, args.pairs)
        _print(f"burst: {args.pairs} concurrent pairs ({2 * args.pairs} clients) on loopback" + suffix, results["burst"])
        if args.tcpunchd:
            results["burst_v1"] = _rounds(_measure_v1, args.rounds, _burst, args.pairs, args.pairs, args.tcpunchd)
            _print_v1(f"burst, TCPunch v1 clients: {args.pairs} concurrent pairs" + suffix, results["burst_v1"])
    if args.mode in ("both", "sustained"):
        row = results["sustained"] = _rounds(_measure, args.rounds, _sustained, args.total, args.concurrency)
        _print(f"sustained: {args.total} pairs, {args.concurrency} in flight, on loopback" + suffix, row)
        if args.tcpunchd:
            results["sustained_v1"] = _rounds(_measure_v1, args.rounds, _sustained, args.total, args.concurrency,
                                              args.tcpunchd)
            _print_v1(f"sustained, TCPunch v1 clients: {args.total} pairs, {args.concurrency} in flight" + suffix,
                      results["sustained_v1"])
        goals = {"pairs_per_s_ge_4500": row["rendezvous"]["pairs_per_s"] >= GOAL_PAIRS_PER_S,
                 "cpu_ms_per_pair_le_0.15": row["rendezvous"]["server_cpu_ms_per_pair"] <= GOAL_CPU_MS_PER_PAIR}
        results["goals"] = goals
        print("goals (medians): " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
        print("  per round: " + ", ".join(f"{r['rendezvous']['pairs_per_s']:.0f} pairs/s "
                                          f"{r['rendezvous']['server_cpu_ms_per_pair']:.3f} ms CPU/pair"
                                          for r in row["rounds"]))
    results["load_average_at_end"] = os.getloadavg()
    print(f"load average (1/5/15 min) at start {results['load_average_at_start']}, end {results['load_average_at_end']} "
          f"on {os.cpu_count()} CPUs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
