"""What calibration reads: evidence from any backend, as typed observations.

- REPORT lines (Duration, Billed, Max Memory Used, Init Duration), optionally
  with the bytes each invocation read and the function's package size;
- run records, whose ranks may carry per-phase seconds (``compute_seconds``,
  ``s3_read_seconds``, ``model_load_seconds``, ``deserialize_seconds``,
  ``download_seconds``) and whose history timestamps give the orchestration
  overheads (Initialize, Map, Summarize spans against the world size);
- compute-only timings (e.g. a profiler's inference-loop time);
- published figures: time outside the Map (``OutsideMap``) and runs known to
  have completed (``CompletedRun``).

``sim.calibrate`` fits the model to these.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

from emulator.contracts.aws import MB_PER_VCPU
from emulator.contracts.cloudwatch import parse_report_lines
from emulator.contracts.job import DEFAULT_BATCH_SIZE
from emulator.contracts import runrecord
from emulator.contracts.runrecord import RunRecord
from sim.asl import Workflow
from sim.model import JobSpec
from sim.params import ModelParams


@dataclass(frozen=True)
class Observation:
    """One invocation as calibration sees it; None = not measured."""

    run: str
    role: str = "worker"  # worker | initialize | summarize
    samples: float | None = None
    bytes_read: float | None = None
    gets: int = 1
    memory_mb: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE
    cpus: float | None = None  # CPUs the handler measured (local runs), else the Lambda share is used
    duration_s: float | None = None  # REPORT Duration
    cold: bool = False
    init_s: float | None = None
    max_memory_mb: float | None = None
    world: int | None = None
    summarize_reads: str = "keys"  # for a Summarize: how its code reads the results (sim/params.py SUMMARIZE_READS)
    package_mb: float | None = None  # the function's deployment package (zip + layers) or image size
    compute_s: float | None = None
    read_s: float | None = None
    deserialize_s: float | None = None
    download_s: float | None = None
    load_s: float | None = None
    pairing_s: float | None = None  # per pairing round

    @property
    def cpu_memory_mb(self) -> float:
        """The MemorySize whose CPU share the handler had (local runs measure their CPUs instead)."""
        return self.cpus * MB_PER_VCPU if self.cpus else self.memory_mb

    def speedup(self, params: ModelParams) -> float:
        return params.speedup(self.cpu_memory_mb)


@dataclass(frozen=True)
class Orchestration:
    """Step spans of one execution (seconds), from its history timestamps."""

    run: str
    world: int
    transition_gap_s: float | None  # median gap between one step's exit and the next step's entry
    map_tail_s: float | None  # Map exit minus the last worker's end (bookkeeping + ResultWriter)
    child_start_rate: float | None  # children started per second while the Map ramped up
    outside_map: "OutsideMap | None" = None  # the execution's time outside the Map


@dataclass(frozen=True)
class OutsideMap:
    """Execution time outside the Map (Initialize, Summarize, two transitions) of one execution of ``world`` ranks.

    From a run record's history, or a published figure; ``summarize_reads`` names how that
    system's Summarize reads the results (sim/params.py SUMMARIZE_READS).
    """

    run: str
    world: int
    seconds: float
    control_memory_mb: float
    partitions: int | None = None  # keys Initialize lists; None = one per rank
    summarize_reads: str = "keys"
    cold_starts: int = 2  # of Initialize and Summarize (published figures: a fresh deployment assumed)


@dataclass(frozen=True)
class CompletedRun:
    """A job known to have completed on AWS with no failed item (e.g. a published run), and its state machine.

    Completion alone is evidence: with ``workflow``'s Retry and failure tolerance, a
    Distributed Map that started children faster than Lambda adds environments
    (1,000 per 10 s per function) would have failed items on
    ``Lambda.TooManyRequestsException``. So the child start rate is at most the
    largest rate at which the simulation completes ``spec`` on ``seeds``.
    """

    run: str
    spec: JobSpec
    workflow: Workflow
    seeds: int = 3


# -- evidence ---------------------------------------------------------------------------------

def observations_from_record(record: RunRecord) -> list[Observation]:
    """Every successful invocation of a run record, workers joined with their rank metrics."""
    ranks = {r.get("request_id"): r for r in record.summary.get("ranks", []) if r.get("request_id")}
    world = int(record.summary.get("world_size") or len(record.invocations_of("worker")) or 0) or None
    batch = int(record.config.get("batch_size") or DEFAULT_BATCH_SIZE)
    packages = {name: fn.get("package_mb") for name, fn in record.functions.items()}
    out = []
    for role in ("worker", "initialize", "summarize"):
        for inv in record.invocations_of(role):
            if inv.status != "success":
                continue
            rank = ranks.get(inv.request_id, {}) if role == "worker" else {}
            nbytes = rank.get("bytes_read")
            if nbytes is None and role == "worker":
                nbytes = record.config.get("partition_size_bytes")
            out.append(Observation(
                run=record.run_id, role=role, samples=float(rank["rows"]) if rank.get("rows") else None,
                bytes_read=float(nbytes) if nbytes else None, gets=len(rank.get("keys") or [1]),
                memory_mb=inv.memory_size_mb, batch_size=int(rank.get("batch_size") or batch), cpus=rank.get("cpus"),
                duration_s=inv.duration_ms / 1000.0, cold=inv.init_duration_ms is not None,
                init_s=inv.init_duration_ms / 1000.0 if inv.init_duration_ms is not None else None,
                max_memory_mb=float(inv.max_memory_used_mb) if inv.max_memory_used_mb else None, world=world,
                compute_s=rank.get("compute_seconds"), read_s=rank.get("s3_read_seconds"),
                deserialize_s=rank.get("deserialize_seconds"), download_s=rank.get("download_seconds"),
                load_s=rank.get("model_load_seconds"), pairing_s=_pairing_round_s(rank, world),
                summarize_reads=str(record.config.get("summarize_reads") or "keys"),
                package_mb=float(packages[inv.function]) if packages.get(inv.function) else None,
            ))
    return out


def _pairing_round_s(rank: dict, world: int | None) -> float | None:
    comm = rank.get("comm") or {}
    if not comm.get("pairing_seconds") or not world or world < 2:
        return None
    return comm["pairing_seconds"] / math.ceil(math.log2(world))


def _time(value: object) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _spans(history: list[dict]) -> dict[str, tuple[float, float]]:
    """State name -> (entered, exited) from history events with timestamps."""
    entered: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for event in history:
        kind = event.get("type", "")
        t = _time(event.get("timestamp"))
        if t is None:
            continue
        if kind.endswith("StateEntered"):
            entered[(event.get("stateEnteredEventDetails") or {}).get("name", "")] = t
        elif kind.endswith("StateExited"):
            name = (event.get("stateExitedEventDetails") or {}).get("name", "")
            if name in entered:
                spans[name] = (entered[name], t)
    return spans


def orchestration_from_record(record: RunRecord) -> Orchestration | None:
    """The step overheads of one execution, or None when its history has no timestamps."""
    spans = _spans(record.history)
    workers = sorted(record.invocations_of("worker"), key=lambda i: i.start)
    if not spans or not workers:
        return None
    world = int(record.summary.get("world_size") or len(workers))
    map_tail = rate = None
    ordered = sorted(spans.values())
    gaps = [b[0] - a[1] for a, b in zip(ordered, ordered[1:]) if b[0] >= a[1]]
    gap = statistics.median(gaps) if gaps else None
    map_name = next((n for n, (a, b) in spans.items() if a <= workers[0].start and b >= workers[-1].start), None)
    if map_name:
        map_tail = spans[map_name][1] - max(i.end for i in workers)
    # The ramp: children started before the first one ended (later starts wait for a free slot).
    first_end = min(i.end for i in workers)
    starts = [i.start for i in workers if i.start < first_end]
    if len(starts) > 1 and starts[-1] > starts[0]:
        rate = (len(starts) - 1) / (starts[-1] - starts[0])
    return Orchestration(record.run_id, world, gap, map_tail, rate, _outside_map(record, spans, map_name, world))


def _outside_map(record: RunRecord, spans: dict[str, tuple[float, float]], map_name: str | None,
                 world: int) -> OutsideMap | None:
    """The execution's span minus its Map's, when the record has both and a control function's memory."""
    start, stop = _time(record.execution.get("start")), _time(record.execution.get("stop"))
    memory = next((f.get("memory_mb") for f in record.functions.values() if f.get("role") == "summarize"), None)
    if map_name is None or start is None or stop is None or not memory:
        return None
    size, part = record.config.get("data_size_bytes"), record.config.get("partition_size_bytes")
    partitions = math.ceil(size / part) if size and part else None
    a, b = spans[map_name]
    cold = sum(1 for role in ("initialize", "summarize") for i in record.invocations_of(role)
               if i.status == "success" and i.init_duration_ms is not None)
    return OutsideMap(record.run_id, world, (stop - start) - (b - a), float(memory), partitions,
                      str(record.config.get("summarize_reads") or "keys"), cold)


def observations_from_cloudwatch(lines: Iterable[str], bytes_read: int | None = None, run: str = "cloudwatch",
                                 role: str = "worker", batch_size: int = DEFAULT_BATCH_SIZE,
                                 world: int | None = None, summarize_reads: str = "keys",
                                 package_mb: float | None = None) -> list[Observation]:
    """Successful REPORT lines of one function's log export; each invocation read ``bytes_read`` (if known).

    ``role`` names the function (worker, initialize, summarize); ``world`` the job's world size;
    ``summarize_reads`` how a Summarize reads the results; ``package_mb`` its package or image size.
    """
    return [Observation(run=run, role=role, bytes_read=float(bytes_read) if bytes_read else None, world=world,
                        summarize_reads=summarize_reads, package_mb=package_mb,
                        memory_mb=r.memory_size_mb, batch_size=batch_size, duration_s=r.duration_ms / 1000.0,
                        cold=r.init_duration_ms is not None,
                        init_s=r.init_duration_ms / 1000.0 if r.init_duration_ms is not None else None,
                        max_memory_mb=float(r.max_memory_used_mb) or None)
            for r in parse_report_lines(lines) if r.status is None]


def load_observations(paths: Iterable[str | Path]) -> tuple[list[Observation], list[Orchestration]]:
    """Observations and step overheads from run record directories or record.json files."""
    obs: list[Observation] = []
    orch: list[Orchestration] = []
    for path in paths:
        record = runrecord.load(path)
        obs.extend(observations_from_record(record))
        o = orchestration_from_record(record)
        if o:
            orch.append(o)
    return obs, orch
