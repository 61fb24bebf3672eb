"""SimPy model of one job as AWS runs it: Step Functions, Distributed Map, Lambda, S3, the bill.

One SimPy process per Map item; Lambda's account/reserved concurrency and its
scaling rate (a token bucket: ``burst`` new environments, refilled at
``scale_rate`` per second) are counters checked at invoke time. A throttled or
failed invocation is retried as the state machine's Retry says. Random draws
(Init Duration, duration noise, failures) come from one seeded numpy
generator, so a run is deterministic for its seed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from sim.params import ModelParams
from sim.prices import Bill, PriceTable, Usage, bill_for_usage, s3_requests

BYTES_PER_SAMPLE = 81944  # worker/partitions.py: float32 5x64x64 image + 5 magnitudes + redshift
LOG_BYTES_PER_INVOCATION = 600.0


@dataclass
class JobSpec:
    """What to simulate."""

    data_size_bytes: int
    partition_size_bytes: int = 25_000_000
    workers: int | None = None  # world size; None = one per partition
    memory_mb: int = 2048
    timeout_s: float = 900.0
    max_concurrency: int | None = None  # Map MaxConcurrency; None = Distributed Map's default, 10,000
    account_concurrency: int = 1000
    reserved_concurrency: int | None = None
    burst: int = 1000  # new environments available at once
    scale_rate_per_s: float = 100.0  # 1,000 new environments per 10 s, refilled continuously
    idle_expiry_s: float = 300.0
    comm: str = "none"  # none | direct | relay | s3
    express_children: bool = False
    failure_rate: float = 0.0  # per-invocation probability of a crash (Runtime.ExitError)
    retry_interval_s: float = 1.0
    retry_backoff: float = 2.0
    retry_max_attempts: int = 2
    control_memory_mb: int = 256
    arch: str = "x86_64"
    noise_sigma: float = 0.05  # lognormal spread of handler durations
    collective_bytes: int = 64  # payload of the metrics allreduce

    @property
    def partitions(self) -> int:
        return max(1, math.ceil(self.data_size_bytes / self.partition_size_bytes))

    @property
    def world(self) -> int:
        return min(self.workers or self.partitions, self.partitions)

    def validate(self) -> None:
        """Raise ValueError with a message for the user when the spec cannot run."""
        if self.data_size_bytes <= 0 or self.partition_size_bytes <= 0:
            raise ValueError("data and partition sizes must be positive")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"memory {self.memory_mb} MB is outside Lambda's 128-10240 MB")
        if not 0 < self.timeout_s <= 900:
            raise ValueError(f"timeout {self.timeout_s} s is outside Lambda's 1-900 s")
        if self.comm not in ("none", "direct", "relay", "s3"):
            raise ValueError(f"comm {self.comm!r} must be none, direct, relay or s3")
        if not 0 <= self.failure_rate < 1:
            raise ValueError("failure rate must be in [0, 1)")


@dataclass
class SimResult:
    """One simulated execution."""

    spec: JobSpec
    seed: int
    makespan_s: float
    invocations: list[dict[str, Any]]
    items_failed: int
    throttles: int
    cold_starts: int
    peak_concurrency: int
    concurrency: list[tuple[float, int]]  # (time, running) after each change
    bill: Bill
    usage: Usage

    @property
    def worker_invocations(self) -> list[dict[str, Any]]:
        return [inv for inv in self.invocations if inv["function"] == "worker"]


class _Lambda:
    """Concurrency, scaling tokens and warm environments of the account."""

    def __init__(self, env: simpy.Environment, spec: JobSpec) -> None:
        self.env = env
        self.spec = spec
        self.limit = spec.reserved_concurrency or spec.account_concurrency
        self.running = 0
        self.peak = 0
        self.tokens = float(spec.burst)
        self.token_time = 0.0
        self.idle: dict[str, deque[float]] = {}
        self.throttles = 0
        self.cold_starts = 0
        self.series: list[tuple[float, int]] = [(0.0, 0)]

    def _refill(self) -> None:
        now = self.env.now
        self.tokens = min(float(self.spec.burst), self.tokens + (now - self.token_time) * self.spec.scale_rate_per_s)
        self.token_time = now

    def acquire(self, function: str) -> bool | None:
        """Start an invocation: True = cold, False = warm, None = throttled."""
        if self.running >= self.limit:
            self.throttles += 1
            return None
        pool = self.idle.setdefault(function, deque())
        while pool and self.env.now - pool[-1] >= self.spec.idle_expiry_s:
            pool.pop()
        if pool:
            pool.pop()
            cold = False
        else:
            self._refill()
            if self.tokens < 1.0:
                self.throttles += 1
                return None
            self.tokens -= 1.0
            cold = True
            self.cold_starts += function == "worker"
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.series.append((self.env.now, self.running))
        return cold

    def release(self, function: str, reusable: bool) -> None:
        self.running -= 1
        self.series.append((self.env.now, self.running))
        if reusable:
            self.idle.setdefault(function, deque()).append(self.env.now)


class _Simulation:
    def __init__(self, spec: JobSpec, params: ModelParams, seed: int) -> None:
        spec.validate()
        self.spec, self.params, self.seed = spec, params, seed
        self.rng = np.random.default_rng(seed)
        self.env = simpy.Environment()
        self.lam = _Lambda(self.env, spec)
        self.invocations: list[dict[str, Any]] = []
        self.items_failed = 0
        self.transitions = 0
        self.child_transitions = 0  # the Map's child workflows' share of self.transitions
        world = spec.world
        self.barrier = self.env.event()
        self.arrived = 0
        partitions = spec.partitions
        base, extra = divmod(partitions, world)
        self.keys_per_rank = [base + (1 if r < extra else 0) for r in range(world)]
        self.first_key = np.concatenate([[0], np.cumsum(self.keys_per_rank)]).astype(int)
        last = spec.data_size_bytes - (partitions - 1) * spec.partition_size_bytes
        # Cumulative bytes so a rank's share is one subtraction, not a sum over partitions.
        self.bytes_before = np.concatenate([[0], np.cumsum([spec.partition_size_bytes] * (partitions - 1) + [max(1, last)])])

    # -- one invocation ------------------------------------------------------------
    def _init_s(self) -> float:
        p = self.params
        return float(min(p.init_cap_s, p.init_median_s * math.exp(p.init_sigma * self.rng.standard_normal())))

    def invoke(self, function: str, memory_mb: int, handler_s: float, *, rank: int | None = None, parts: dict | None = None):
        """A SimPy process for one invocation; its value is "success" | "throttled" | "error" | "timeout"."""
        cold = self.lam.acquire(function)
        if cold is None:
            return "throttled"
        start = self.env.now
        init = self._init_s() if cold else 0.0
        if cold and function == "worker":
            handler_s += self.params.model_load_s
        noise = math.exp(self.spec.noise_sigma * self.rng.standard_normal()) if self.spec.noise_sigma else 1.0
        handler_s *= noise
        if parts:  # keep the phase split consistent with the noisy total
            parts = {k: v * noise if k.endswith("_s") else v for k, v in parts.items()}
        status, error = "success", None
        timeout = self.spec.timeout_s if function == "worker" else 60.0
        if function == "worker" and self.params.memory_need_mb > memory_mb:
            status, error, handler_s = "error", "Runtime.OutOfMemory", min(handler_s, timeout) * 0.5
        elif self.spec.failure_rate and self.rng.random() < self.spec.failure_rate:
            status, error, handler_s = "error", "Runtime.ExitError", handler_s * self.rng.random()
        comm_s = 0.0
        if function == "worker" and self.spec.comm != "none" and status == "success":
            yield self.env.timeout(init + min(handler_s, timeout))
            compute_end = self.env.now
            if handler_s < timeout:
                self.arrived += 1
                if self.arrived == self.spec.world:
                    self.barrier.succeed()
                remaining = timeout - (self.env.now - start - init)
                yield self.barrier | self.env.timeout(remaining)
                if not self.barrier.triggered:
                    self.arrived -= 1  # this rank is gone; the barrier must wait for a live one
                    status, error = "timeout", "Sandbox.Timedout"
                else:
                    yield self.env.timeout(self.collective_s())
                    comm_s = self.env.now - compute_end  # waiting at the barrier + the collectives
            duration = self.env.now - start - init
            if duration >= timeout:
                status, error, duration = "timeout", "Sandbox.Timedout", timeout
        else:
            duration = min(handler_s, timeout)
            if handler_s >= timeout:
                status, error = "timeout", "Sandbox.Timedout"
            yield self.env.timeout(init + duration)
        billed_ms = max(1, math.ceil((duration + init) * 1000))
        self.invocations.append({
            "function": function, "rank": rank, "start": start, "end": self.env.now, "init_s": init,
            "duration_s": duration, "billed_ms": billed_ms, "memory_mb": memory_mb, "status": status,
            "error": error, "cold": bool(cold), "comm_s": comm_s, **(parts or {}),
        })
        self.lam.release(function, reusable=status in ("success", "error") and error != "Runtime.ExitError")
        return status

    def collective_s(self) -> float:
        """Pairing plus barrier and allreduce time (alpha-beta, recursive doubling)."""
        p, world = self.params, self.spec.world
        if world <= 1:
            return 0.0
        rounds = math.ceil(math.log2(world))
        channel = self.spec.comm
        pairing = p.pairing_latency_s * rounds if channel in ("direct", "relay") else 0.0
        alpha, beta = p.alpha_s[channel], p.beta_s_per_byte[channel]
        barrier = rounds * alpha
        allreduce = 2 * rounds * alpha + 2 * (world - 1) / world * self.spec.collective_bytes * beta
        return pairing + barrier + allreduce

    # -- the state machine ----------------------------------------------------------
    def call_with_retry(self, function: str, memory_mb: int, handler_s: float, **kw):
        attempt = 0
        while True:
            self.transitions += 1
            self.child_transitions += function == "worker"
            status = yield from self.invoke(function, memory_mb, handler_s, **kw)
            retryable = status == "throttled" or (status == "error" and self.invocations[-1]["error"] == "Runtime.ExitError")
            if status == "success" or not retryable or attempt >= self.spec.retry_max_attempts:
                return status
            delay = self.spec.retry_interval_s * self.spec.retry_backoff**attempt
            yield self.env.timeout(float(self.rng.uniform(0, delay)))  # JitterStrategy FULL
            attempt += 1

    def worker_parts(self, rank: int) -> tuple[float, dict[str, float]]:
        p, spec = self.params, self.spec
        first, stop = self.first_key[rank], self.first_key[rank + 1]
        nbytes = float(self.bytes_before[stop] - self.bytes_before[first])
        samples = nbytes / BYTES_PER_SAMPLE
        read = nbytes / p.s3_bandwidth_bytes_s + self.keys_per_rank[rank] * p.s3_first_byte_s
        compute = samples * p.compute_s_per_sample_vcpu / p.speedup(spec.memory_mb)
        return p.overhead_s + read + compute, {"read_s": read, "compute_s": compute, "bytes": nbytes, "samples": samples}

    def map_slot(self):
        """One of MaxConcurrency slots: runs child executions one after another.

        Equivalent to one process per item waiting on a semaphore, with far
        fewer SimPy events (what makes 100,000 workers fast).
        """
        interval = 1.0 / self.params.child_start_rate_per_s
        while self.next_rank < self.spec.world:
            rank = self.next_rank
            self.next_rank += 1
            # Distributed Map starts children at a bounded rate.
            launch = max(self.env.now, self.next_launch)
            self.next_launch = launch + interval
            if launch > self.env.now:
                yield self.env.timeout(launch - self.env.now)
            handler_s, parts = self.worker_parts(rank)
            status = yield from self.call_with_retry("worker", self.spec.memory_mb, handler_s, rank=rank, parts=parts)
            if status != "success":
                self.items_failed += 1

    def job(self):
        p, spec = self.params, self.spec
        self.transitions += 1  # execution start
        yield from self.call_with_retry("initialize", spec.control_memory_mb, 0.1 + 0.05 * math.ceil(spec.partitions / 1000))
        yield self.env.timeout(p.transition_latency_s)
        world = spec.world
        self.next_rank, self.next_launch = 0, self.env.now
        slots = max(1, min(spec.max_concurrency or 10_000, 10_000, world))
        yield simpy.AllOf(self.env, [self.env.process(self.map_slot()) for _ in range(slots)])
        self.transitions += 1
        yield self.env.timeout(p.transition_latency_s)
        yield from self.call_with_retry("summarize", spec.control_memory_mb, 0.1 + 0.002 * world)
        self.transitions += 3  # Choice, Succeed/Fail, end

    def run(self, prices: PriceTable) -> SimResult:
        # Run until the job ends: timers of ranks that already left a barrier must not extend it.
        self.env.run(until=self.env.process(self.job()))
        spec = self.spec
        gb_s = sum(inv["billed_ms"] / 1000.0 * inv["memory_mb"] / 1024.0 for inv in self.invocations)
        makespan = float(self.env.now)
        world = spec.world
        put_list, get = s3_requests(world, spec.partitions)
        usage = Usage(
            lambda_gb_seconds=gb_s, lambda_requests=len(self.invocations),
            # EXPRESS children bill requests + GB-s; the parent's own transitions are Standard either way.
            sfn_transitions=self.transitions - self.child_transitions if spec.express_children else self.transitions,
            sfn_express_requests=world if spec.express_children else 0,
            sfn_express_gb_hours=(sum(math.ceil(i["duration_s"] * 10) / 10 for i in self.worker_invocations()) * 64 / 1024 / 3600
                                  if spec.express_children else 0.0),
            s3_put_list=put_list, s3_get=get,
            fargate_seconds=makespan if spec.comm in ("direct", "relay") else 0.0,
            log_bytes=LOG_BYTES_PER_INVOCATION * len(self.invocations), arch=spec.arch,
        )
        return SimResult(spec, self.seed, makespan, self.invocations, self.items_failed, self.lam.throttles,
                         self.lam.cold_starts, self.lam.peak, self.lam.series, bill_for_usage(usage, prices), usage)

    def worker_invocations(self) -> list[dict[str, Any]]:
        return [inv for inv in self.invocations if inv["function"] == "worker"]


def simulate(spec: JobSpec, params: ModelParams | None = None, seed: int = 0,
             prices: PriceTable | None = None) -> SimResult:
    """Simulate one execution of ``spec``; deterministic for ``seed``."""
    return _Simulation(spec, params or ModelParams(), seed).run(prices or PriceTable())
