"""SimPy model of one job as AWS runs it: Step Functions, Distributed Map, Lambda, S3, the bill.

The job is the same :class:`~emulator.contracts.job.JobConfig` that ``lambdatwin
run`` builds (ranks, partition bytes and execution input come from there and
from ``worker/layout.py``); the workflow's retries, MaxConcurrency, failure
tolerance, Express/Standard children and transition counts come from the ASL
file (``sim/asl.py``); Retry backoff is ``emulator.stepfunctions.retry``'s.

Lambda: account (or reserved) concurrency is shared; scaling is per function
(https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html: each
function may add 1,000 environments every 10 s), modelled as a token bucket
per function. A worker invocation runs the phases of ``sim/params.py``; random
draws (INIT, the CPU spread and stragglers, failures, jitter) come from
generators seeded by ``seed``, so a run is deterministic for its seed.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from emulator.contracts import aws
from emulator.contracts.errors import ConfigError
from emulator.contracts.job import (COMM_MODES, DEFAULT_BATCH_SIZE, DEFAULT_CONTROL_MEMORY_MB, DEFAULT_CONTROL_TIMEOUT_S,
                                    DEFAULT_WORKER_MEMORY_MB, DEFAULT_WORKER_TIMEOUT_S, JobConfig, execution_input,
                                    resolve_partition_size)
from emulator.stepfunctions.retry import RetryCounter
from sim.asl import Workflow, read_workflow
from sim.params import SUMMARIZE_READS, ModelParams
from sim.prices import Bill, PriceTable, Usage, bill_for_usage, s3_requests
from worker.layout import partition_plan, rank_counts

LOG_BYTES_PER_INVOCATION = 600.0
READ_MODES = ("rank", "whole")  # read my partitions | read the whole object and slice my rank out
SIM_COMM_MODES = COMM_MODES + ("s3",)
EXPRESS_BILLING_MEMORY_MB = 64  # Express duration is billed at 64 MB per execution


@dataclass
class JobSpec:
    """What to simulate: the job (as ``JobConfig``) plus what only a simulation needs."""

    data_size_bytes: int
    partition_size_bytes: int | None = None  # None: data / workers, else the default (as `run`)
    workers: int | None = None  # world size; None = one per partition
    batch_size: int = DEFAULT_BATCH_SIZE
    memory_mb: int = DEFAULT_WORKER_MEMORY_MB
    timeout_s: float = DEFAULT_WORKER_TIMEOUT_S
    max_concurrency: int | None = None  # as `run --max-concurrency`; None = all ranks (0 = the Map's own 10,000)
    account_concurrency: int = aws.DEFAULT_ACCOUNT_CONCURRENCY
    reserved_concurrency: int | None = None  # the worker function's reserved concurrency
    comm: str = "none"  # none | direct | relay | s3
    control_memory_mb: int = DEFAULT_CONTROL_MEMORY_MB
    control_timeout_s: float = DEFAULT_CONTROL_TIMEOUT_S
    # Simulation only.
    definition: str | None = None  # ASL file; None = statemachines/data_parallel.asl.json
    express_children: bool | None = None  # None = as the ASL says
    read_mode: str = "rank"
    summarize_reads: str = "keys"  # how Summarize finds the results (sim/params.py SUMMARIZE_READS)
    package_mb: float | None = None  # deployment package / image size (INIT scaling)
    burst: int = aws.SCALING_ENVIRONMENTS_PER_PERIOD  # new environments at once, per function
    scale_rate_per_s: float = aws.SCALING_ENVIRONMENTS_PER_PERIOD / aws.SCALING_PERIOD_S
    idle_expiry_s: float = 300.0
    failure_rate: float = 0.0  # per-invocation probability of a crash (Runtime.ExitError)
    arch: str = "x86_64"
    noise: bool = True  # draw the spreads; False = every invocation at its expected time
    collective_bytes: int = 64  # payload of the metrics allreduce
    job: JobConfig | None = None  # the job this spec was built from (``from_job``)

    @classmethod
    def from_job(cls, config: JobConfig, **simulation: Any) -> "JobSpec":
        """The spec of ``config`` (the job ``run`` would run), plus the simulation-only fields in ``simulation``."""
        fields: dict[str, Any] = dict(
            data_size_bytes=config.data_size_bytes, partition_size_bytes=config.partition_size_bytes,
            workers=config.workers, batch_size=config.batch_size, memory_mb=config.worker_memory_mb,
            timeout_s=config.worker_timeout_s, max_concurrency=config.max_concurrency,
            account_concurrency=config.account_concurrency, comm=config.comm,
            control_memory_mb=config.control_memory_mb, control_timeout_s=config.control_timeout_s)
        return cls(**{**fields, "job": config, **simulation})

    def job_config(self) -> JobConfig:
        """The job contract this spec simulates (the one `run` builds from the same flags).

        Raises:
            ConfigError: a value outside AWS's limits or an impossible layout.
        """
        part = resolve_partition_size(self.data_size_bytes, self.partition_size_bytes, self.workers)
        modelled = dict(
            data_size_bytes=self.data_size_bytes, partition_size_bytes=part, workers=self.workers,
            batch_size=self.batch_size, worker_memory_mb=self.memory_mb, worker_timeout_s=self.timeout_s,
            control_memory_mb=self.control_memory_mb, control_timeout_s=self.control_timeout_s,
            max_concurrency=self.max_concurrency, account_concurrency=self.account_concurrency,
            comm=self.comm if self.comm in COMM_MODES else "none")
        # What the model does not vary (seed, punch window, bucket ...) comes from the job it was built from.
        return replace(self.job, **modelled) if self.job is not None else JobConfig(**modelled)

    @property
    def partition_bytes(self) -> int:
        return resolve_partition_size(self.data_size_bytes, self.partition_size_bytes, self.workers)

    @property
    def partitions(self) -> int:
        """Partitions `run` generates (worker/layout.py's plan: a rest under one sample is dropped)."""
        return len(partition_plan(self.data_size_bytes, self.partition_bytes))

    @property
    def world(self) -> int:
        return self.workers or self.partitions

    def validate(self) -> JobConfig:
        """The job config, after checking what only the simulation adds.

        Raises:
            ConfigError: with a message for the user.
        """
        config = self.job_config()
        if self.comm not in SIM_COMM_MODES:
            raise ConfigError(f"--comm {self.comm!r} must be one of {', '.join(SIM_COMM_MODES)}")
        if self.read_mode not in READ_MODES:
            raise ConfigError(f"read mode {self.read_mode!r} must be one of {', '.join(READ_MODES)}")
        if self.summarize_reads not in SUMMARIZE_READS:
            raise ConfigError(f"summarize reads {self.summarize_reads!r} must be one of {', '.join(SUMMARIZE_READS)}")
        if not 0 <= self.failure_rate < 1:
            raise ConfigError("--failure-rate must be in [0, 1)")
        return config


@dataclass
class SimResult:
    """One simulated execution."""

    spec: JobSpec
    seed: int
    status: str  # SUCCEEDED | FAILED
    makespan_s: float
    invocations: list[dict[str, Any]]
    items_failed: int
    throttles: int
    cold_starts: int
    peak_concurrency: int
    concurrency: list[tuple[float, int]]  # (time, running) after each change
    bill: Bill
    usage: Usage
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)  # state -> (entered, exited)
    params_source: str = "defaults"
    workflow_source: str = ""
    failures: dict[str, int] = field(default_factory=dict)  # final error of each failed item -> items
    control_failure: tuple[str, str] | None = None  # (role, error) of a failed Initialize or Summarize
    worker_memory_needed_mb: float = 0.0  # predicted Max Memory Used of a worker, whatever its MemorySize

    @property
    def worker_invocations(self) -> list[dict[str, Any]]:
        return [inv for inv in self.invocations if inv["function"] == "worker"]


class _Lambda:
    """Account concurrency, per-function scaling tokens and warm environments."""

    def __init__(self, env: simpy.Environment, spec: JobSpec) -> None:
        self.env = env
        self.spec = spec
        self.limit = spec.account_concurrency
        self.running = 0
        self.running_of: dict[str, int] = {}
        self.peak = 0
        self.tokens: dict[str, float] = {}
        self.token_time: dict[str, float] = {}
        self.idle: dict[str, deque[float]] = {}
        self.throttles = 0
        self.cold_starts = 0
        self.series: list[tuple[float, int]] = [(0.0, 0)]

    def _take_token(self, function: str) -> bool:
        now = self.env.now
        tokens = self.tokens.get(function, float(self.spec.burst))
        tokens = min(float(self.spec.burst), tokens + (now - self.token_time.get(function, 0.0)) * self.spec.scale_rate_per_s)
        self.token_time[function] = now
        if tokens < 1.0:
            self.tokens[function] = tokens
            return False
        self.tokens[function] = tokens - 1.0
        return True

    def _limit_of(self, function: str) -> int:
        """Reserved concurrency is the worker's own; the other functions share what the account has left."""
        reserved = self.spec.reserved_concurrency or 0
        if function == "worker" and reserved:
            return reserved
        return self.limit - reserved

    def acquire(self, function: str) -> bool | None:
        """Start an invocation: True = cold, False = warm, None = throttled."""
        others = self.running - self.running_of.get("worker", 0) if function != "worker" else 0
        mine = self.running_of.get(function, 0) if function == "worker" else others
        if self.running >= self.limit or mine >= self._limit_of(function):
            self.throttles += 1
            return None
        pool = self.idle.setdefault(function, deque())
        while pool and self.env.now - pool[-1] >= self.spec.idle_expiry_s:
            pool.pop()
        if pool:
            pool.pop()
            cold = False
        else:
            if not self._take_token(function):
                self.throttles += 1
                return None
            cold = True
            self.cold_starts += function == "worker"
        self.running += 1
        self.running_of[function] = self.running_of.get(function, 0) + 1
        self.peak = max(self.peak, self.running)
        self.series.append((self.env.now, self.running))
        return cold

    def release(self, function: str, reusable: bool) -> None:
        self.running -= 1
        self.running_of[function] -= 1
        self.series.append((self.env.now, self.running))
        if reusable:
            self.idle.setdefault(function, deque()).append(self.env.now)


class _Simulation:
    def __init__(self, spec: JobSpec, params: ModelParams, seed: int, workflow: Workflow) -> None:
        self.config = spec.validate()
        self.spec, self.params, self.seed, self.flow = spec, params, seed, workflow
        self.rng = np.random.default_rng(seed)
        self.jitter = random.Random(seed)
        self.env = simpy.Environment()
        self.lam = _Lambda(self.env, spec)
        self.invocations: list[dict[str, Any]] = []
        self.items_failed = 0
        self.items_caught = 0
        self.failures: dict[str, int] = {}
        self.control_failure: tuple[str, str] | None = None
        self.parent_transitions = 0
        self.child_transitions = 0
        self.steps: dict[str, tuple[float, float]] = {}
        # The partitions `run` generates (worker/layout.py), hence the keys Initialize lists.
        self.parts = spec.partitions
        self.world = self.config.workers or self.parts
        self.barrier = self.env.event()
        self.arrived = 0
        self.express = workflow.express_children if spec.express_children is None else spec.express_children
        self._layout()

    def _layout(self) -> None:
        """Bytes, samples and GETs per rank, from the job's partitions and worker/layout.py's assignment."""
        config, p = self.config, self.params
        part, parts = config.partition_size_bytes, self.parts
        last = config.data_size_bytes - (parts - 1) * part  # the short last partition (any sub-sample rest included)
        counts = rank_counts(parts, self.world)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        sizes = np.full(parts, float(part))
        sizes[-1] = float(last)
        before = np.concatenate([[0.0], np.cumsum(sizes)])
        own = before[starts[1:]] - before[starts[:-1]]
        self.samples = own / p.bytes_per_sample
        if self.spec.read_mode == "whole":  # every rank reads the whole object, then slices its rank out
            self.bytes_read = np.full(self.world, float(config.data_size_bytes))
            self.gets = np.ones(self.world, dtype=int)
            self.bytes_held = float(config.data_size_bytes)
        else:
            self.bytes_read = own
            self.gets = np.asarray(counts, dtype=int)
            self.bytes_held = float(sizes.max())  # one partition alive at a time (worker/infer.py)
        self.memory_needed_mb = p.max_memory_mb(self.bytes_held)  # every worker's Max Memory Used
        if self.spec.noise:
            self.body = np.exp(p.cpu_sigma * self.rng.standard_normal(self.world))
            tail = self.rng.random(self.world) < p.straggler_prob
            slow = p.straggler_factor * np.exp(p.straggler_sigma * self.rng.standard_normal(int(tail.sum())))
            self.body[tail] *= np.minimum(slow, p.straggler_cap) if p.straggler_cap > 0 else slow
        else:
            self.body = np.ones(self.world)
        self.max_concurrency = self._max_concurrency()

    def _max_concurrency(self) -> int:
        """MaxConcurrency as the ASL gets it: a literal, or the execution input's value (0 = no limit)."""
        if self.flow.max_concurrency is not None:
            value = int(self.flow.max_concurrency)
        elif self.flow.max_concurrency_path:
            value = int(execution_input(self.config, "sim")["max_concurrency"] or 0)
        else:
            value = 0
        return min(value or aws.MAX_MAP_CONCURRENCY, aws.MAX_MAP_CONCURRENCY)

    # -- one invocation ------------------------------------------------------------
    def _init_s(self, function: str) -> float:
        p = self.params
        if function == "worker":
            median, sigma = p.init_median(self.spec.package_mb), p.init_sigma
        else:
            median, sigma = p.control_init_median_s, p.control_init_sigma
        draw = math.exp(sigma * float(self.rng.standard_normal())) if self.spec.noise else 1.0
        return float(min(p.init_cap_s, median * draw))

    def invoke(self, function: str, memory_mb: int, timeout_s: float, rank: int | None = None):
        """A SimPy process for one invocation; its value is (status, error name or None)."""
        cold = self.lam.acquire(function)
        if cold is None:
            return "throttled", aws.LAMBDA_THROTTLED
        start = self.env.now
        init = self._init_s(function) if cold else 0.0
        p = self.params
        if function == "worker":
            phases = p.worker_phases(float(self.samples[rank]), float(self.bytes_read[rank]), memory_mb,
                                     self.config.batch_size, cold, int(self.gets[rank]))
            factor = float(self.body[rank])
            phases["deserialize_s"] *= factor
            phases["compute_s"] *= factor
            used = self.memory_needed_mb
            work = {"samples": float(self.samples[rank]), "bytes_read": float(self.bytes_read[rank]), "gets": int(self.gets[rank])}
        else:
            work = ({"results_read": self.params.summarize_requests(self.world, self.spec.summarize_reads)[2]}
                    if function == "summarize" else {})
            phases = {"handler_s": self._control_seconds(function, memory_mb)}
            used = p.control_memory_used_mb
        handler_s = sum(phases.values())
        status, error = "success", None
        if used > memory_mb:
            status, error, handler_s = "error", aws.LAMBDA_OUT_OF_MEMORY, min(handler_s, timeout_s) * 0.5
            used = memory_mb
        elif function == "worker" and self.spec.failure_rate and self.rng.random() < self.spec.failure_rate:
            status, error, handler_s = "error", aws.LAMBDA_EXIT_ERROR, handler_s * float(self.rng.random())
        if status == "error":  # the phases ran until the failure
            scale = handler_s / max(1e-9, sum(phases.values()))
            phases = {k: v * scale for k, v in phases.items()}
        comm_s = 0.0
        if function == "worker" and self.spec.comm != "none" and status == "success":
            yield self.env.timeout(init + min(handler_s, timeout_s))
            compute_end = self.env.now
            if handler_s < timeout_s:
                self.arrived += 1
                if self.arrived == self.world:
                    self.barrier.succeed()
                remaining = timeout_s - (self.env.now - start - init)
                yield self.barrier | self.env.timeout(remaining)
                if not self.barrier.triggered:
                    self.arrived -= 1  # this rank is gone; the barrier must wait for a live one
                    status, error = "timeout", aws.LAMBDA_TIMEOUT
                else:
                    yield self.env.timeout(self.collective_s())
                    comm_s = self.env.now - compute_end  # waiting at the barrier + the collectives
            duration = self.env.now - start - init
            if duration >= timeout_s:
                status, error, duration = "timeout", aws.LAMBDA_TIMEOUT, timeout_s
        else:
            duration = min(handler_s, timeout_s)
            if handler_s >= timeout_s:
                status, error = "timeout", aws.LAMBDA_TIMEOUT
            yield self.env.timeout(init + duration)
        billed_ms = max(1, math.ceil((duration + init) * 1000))
        self.invocations.append({
            "function": function, "rank": rank, "start": start, "end": self.env.now, "init_s": init,
            "duration_s": duration, "billed_ms": billed_ms, "memory_mb": memory_mb, "max_memory_used_mb": used,
            "status": status, "error": error, "cold": bool(cold), "comm_s": comm_s, **phases, **work,
        })
        self.lam.release(function, reusable=status == "success" or error == aws.LAMBDA_OUT_OF_MEMORY)
        return status, error

    def _control_seconds(self, function: str, memory_mb: int) -> float:
        p = self.params
        if function == "initialize":
            return p.initialize_seconds(memory_mb, self.parts, self.world)
        return p.summarize_seconds(memory_mb, self.world, self.spec.summarize_reads)

    def collective_s(self) -> float:
        """Pairing plus barrier and allreduce time (alpha-beta, recursive doubling)."""
        p, world = self.params, self.world
        if world <= 1:
            return 0.0
        rounds = math.ceil(math.log2(world))
        channel = self.spec.comm
        pairing = p.pairing_latency_s * rounds if channel in ("direct", "relay") else 0.0
        alpha, beta = p.alpha_s[channel], p.beta_s_per_byte[channel]
        return pairing + rounds * alpha + 2 * rounds * alpha + 2 * (world - 1) / world * self.spec.collective_bytes * beta

    # -- the state machine ----------------------------------------------------------
    def task(self, role: str, memory_mb: int, timeout_s: float, rank: int | None = None):
        """A Task state invoking ``role``'s function with the ASL's Retry and Catch; value: (final status, error).

        "caught": the retries are spent and a Catch matched (the state does not fail).
        """
        counter = RetryCounter(self.flow.retriers_for(role))
        while True:
            if rank is None:
                self.parent_transitions += 1
            else:
                self.child_transitions += 1
            status, error = yield from self.invoke(role, memory_mb, timeout_s, rank)
            if status == "success":
                return status, None
            delay = counter.next_delay(error, self.jitter)
            if delay is None:
                return ("caught" if self.flow.caught(role, error) else status), error
            yield self.env.timeout(delay)

    def map_slot(self):
        """One of MaxConcurrency slots: runs child executions one after another.

        Equivalent to one process per item waiting on a semaphore, with far
        fewer SimPy events (what makes 100,000 workers fast).
        """
        p = self.params
        interval = 1.0 / p.child_start_rate_per_s
        while self.next_rank < self.world:
            rank = self.next_rank
            self.next_rank += 1
            launch = max(self.env.now, self.next_launch)  # Distributed Map starts children at a bounded rate
            self.next_launch = launch + interval
            yield self.env.timeout(launch - self.env.now + p.child_start_latency_s)
            status, error = yield from self.task("worker", self.config.worker_memory_mb, self.config.worker_timeout_s,
                                                 rank)
            if status == "caught":
                self.items_caught += 1  # the child succeeds; its rank's result is missing for Summarize
            elif status != "success":
                self.items_failed += 1
            if status != "success":
                self.failures[error] = self.failures.get(error, 0) + 1

    def job(self):
        p, config = self.params, self.config
        t0 = self.env.now
        status, error = yield from self.task("initialize", config.control_memory_mb, config.control_timeout_s)
        self.steps["Initialize"] = (t0, self.env.now)
        if status != "success":  # a caught control error leaves the success path: the job does not complete
            self.control_failure = ("initialize", error)
            return "FAILED"
        yield self.env.timeout(p.transition_latency_s)
        t1 = self.env.now
        self.next_rank, self.next_launch = 0, self.env.now
        slots = max(1, min(self.max_concurrency, self.world))
        yield simpy.AllOf(self.env, [self.env.process(self.map_slot()) for _ in range(slots)])
        yield self.env.timeout(p.map_item_overhead_s * self.world + p.result_writer_s + p.result_writer_s_per_item * self.world)
        self.steps["Map"] = (t1, self.env.now)
        if self.flow.map_failed(self.items_failed, self.world):
            return "FAILED"
        yield self.env.timeout(p.transition_latency_s)
        t2 = self.env.now
        status, error = yield from self.task("summarize", config.control_memory_mb, config.control_timeout_s)
        self.steps["Summarize"] = (t2, self.env.now)
        if status != "success":
            self.control_failure = ("summarize", error)
            return "FAILED"
        # Summarize reports missing or failed ranks; the Choice then ends in Fail.
        return "SUCCEEDED" if self.items_failed == 0 and self.items_caught == 0 else "FAILED"

    def run(self, prices: PriceTable) -> SimResult:
        process = self.env.process(self.job())
        # Run until the job ends: timers of ranks that already left a barrier must not extend it.
        self.env.run(until=process)
        status = process.value
        spec, world = self.spec, self.world
        # Transitions the ASL path adds besides the Task attempts counted as they ran (Map, Choice, end state).
        tasks_on_path = sum(1 for role in ("initialize", "summarize") if role in self.flow.states)
        parent = self.parent_transitions + max(0, self.flow.parent_transitions - tasks_on_path)
        child_extra = max(0, self.flow.child_transitions - 1) * world
        gb_s = sum(inv["billed_ms"] / 1000.0 * inv["memory_mb"] / 1024.0 for inv in self.invocations)
        makespan = float(self.env.now)
        put_list, get = s3_requests(world, self.parts)
        workers = [i for i in self.invocations if i["function"] == "worker"]
        usage = Usage(
            lambda_gb_seconds=gb_s, lambda_requests=len(self.invocations),
            sfn_transitions=parent + (0 if self.express else self.child_transitions + child_extra),
            sfn_express_requests=world if self.express else 0,
            sfn_express_gb_hours=(sum(math.ceil(i["duration_s"] * 10) / 10 for i in workers)
                                  * EXPRESS_BILLING_MEMORY_MB / 1024 / 3600 if self.express else 0.0),
            s3_put_list=put_list, s3_get=get,
            fargate_seconds=makespan if spec.comm in ("direct", "relay") else 0.0,
            log_bytes=LOG_BYTES_PER_INVOCATION * len(self.invocations), arch=spec.arch,
        )
        return SimResult(spec, self.seed, status, makespan, self.invocations, self.items_failed, self.lam.throttles,
                         self.lam.cold_starts, self.lam.peak, self.lam.series, bill_for_usage(usage, prices), usage,
                         self.steps, self.params.source, self.flow.source, dict(self.failures), self.control_failure,
                         self.memory_needed_mb)


def simulate(spec: JobSpec, params: ModelParams | None = None, seed: int = 0,
             prices: PriceTable | None = None, workflow: Workflow | None = None) -> SimResult:
    """Simulate one execution of ``spec``; deterministic for ``seed``.

    ``params`` default to :class:`ModelParams` defaults (the CLI passes the
    shipped calibration); ``workflow`` to the ASL file of ``spec.definition``.
    """
    flow = workflow or read_workflow(spec.definition)
    return _Simulation(spec, params or ModelParams(), seed, flow).run(prices or PriceTable())
