"""Fit the model's parameters to measured runs, with residuals and leave-one-run-out validation.

Two kinds of evidence:
- run records with per-rank breakdowns (local, Docker, AWS): compute, S3 read
  and model load are fitted separately from the workers' own timings;
- durations only (reference figures, plain CloudWatch exports): worker
  duration = overhead + per-sample cost x samples / speedup(memory), with the
  S3 read folded into the per-sample cost.
Init Duration is fitted as a lognormal from every cold start seen.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from emulator.contracts.cloudwatch import parse_report_lines
from emulator.contracts.runrecord import RunRecord
from sim.model import BYTES_PER_SAMPLE
from sim.params import MB_PER_VCPU, ModelParams


@dataclass(frozen=True)
class Observation:
    """One worker invocation as calibration sees it."""

    run: str
    samples: float
    bytes_read: float
    memory_mb: float
    cpus: float | None  # CPUs the handler measured (local runs), else None
    duration_s: float  # handler duration (REPORT Duration)
    cold: bool
    init_s: float | None
    compute_s: float | None = None
    read_s: float | None = None
    load_s: float | None = None
    pairing_s: float | None = None  # per pairing round, from the rank's collectives

    def speedup(self, params: ModelParams) -> float:
        memory = self.cpus * MB_PER_VCPU if self.cpus else self.memory_mb
        return params.speedup(memory)


def observations_from_record(record: RunRecord) -> list[Observation]:
    """Worker invocations of a run record, joined with their rank metrics by request id."""
    ranks = {r.get("request_id"): r for r in record.summary.get("ranks", []) if r.get("request_id")}
    out = []
    for inv in record.invocations_of("worker"):
        if inv.status != "success":
            continue
        rank = ranks.get(inv.request_id, {})
        nbytes = float(rank.get("bytes_read") or record.config.get("partition_size_bytes") or 0)
        samples = float(rank.get("rows") or nbytes / BYTES_PER_SAMPLE)
        out.append(Observation(
            run=record.run_id, samples=samples, bytes_read=nbytes, memory_mb=inv.memory_size_mb,
            cpus=rank.get("cpus"), duration_s=inv.duration_ms / 1000.0, cold=inv.init_duration_ms is not None,
            init_s=inv.init_duration_ms / 1000.0 if inv.init_duration_ms is not None else None,
            compute_s=rank.get("compute_seconds"), read_s=rank.get("s3_read_seconds"),
            load_s=rank.get("model_load_seconds"), pairing_s=_pairing_round_s(rank, record),
        ))
    return out


def _pairing_round_s(rank: dict, record: RunRecord) -> float | None:
    comm = rank.get("comm") or {}
    world = int(record.summary.get("world_size") or 0)
    if not comm.get("pairing_seconds") or world < 2:
        return None
    return comm["pairing_seconds"] / math.ceil(math.log2(world))


def observations_from_cloudwatch(lines: Iterable[str], partition_size_bytes: int, run: str = "cloudwatch") -> list[Observation]:
    """REPORT lines of a worker's log export; every invocation is taken to read one partition."""
    return [Observation(run=run, samples=partition_size_bytes / BYTES_PER_SAMPLE, bytes_read=float(partition_size_bytes),
                        memory_mb=r.memory_size_mb, cpus=None, duration_s=r.duration_ms / 1000.0,
                        cold=r.init_duration_ms is not None,
                        init_s=r.init_duration_ms / 1000.0 if r.init_duration_ms is not None else None)
            for r in parse_report_lines(lines) if r.status is None]


def fit(observations: list[Observation], base: ModelParams | None = None) -> ModelParams:
    """Parameters that best explain ``observations`` (least squares); see the module docstring.

    Raises:
        ValueError: no usable observation.
    """
    if not observations:
        raise ValueError("no successful worker invocations to calibrate from")
    params = replace(base or ModelParams(), residuals={})
    detailed = [o for o in observations if o.compute_s is not None and o.read_s is not None]
    if detailed:
        x = np.array([o.samples / o.speedup(params) for o in detailed])
        y = np.array([o.compute_s for o in detailed])
        params.compute_s_per_sample_vcpu = float((x @ y) / (x @ x)) if x @ x > 0 else params.compute_s_per_sample_vcpu
        read_bytes = sum(o.bytes_read for o in detailed)
        read_time = sum(o.read_s for o in detailed)
        if read_time > 0:
            params.s3_bandwidth_bytes_s = read_bytes / read_time
            params.s3_first_byte_s = 0.0
        loads = [o.load_s for o in detailed if o.load_s]
        if loads:
            params.model_load_s = statistics.fmean(loads)
        rest = [o.duration_s - o.compute_s - o.read_s - (o.load_s or 0.0) for o in detailed]
        params.overhead_s = max(0.0, statistics.median(rest))
        params.source = "run records with per-rank breakdowns"
    else:
        # Durations only: duration = overhead + k * samples / speedup (read folded into k).
        x = np.array([o.samples / o.speedup(params) for o in observations])
        y = np.array([o.duration_s for o in observations])
        design = np.column_stack([np.ones_like(x), x]) if len(set(x.round(9))) > 1 else x[:, None]
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        intercept, slope = (float(coef[0]), float(coef[1])) if design.shape[1] == 2 else (0.0, float(coef[0]))
        params.overhead_s = max(0.0, intercept)
        params.compute_s_per_sample_vcpu = slope
        params.s3_bandwidth_bytes_s, params.s3_first_byte_s, params.model_load_s = math.inf, 0.0, 0.0
        params.source = "worker durations only (S3 read folded into the per-sample cost)"
    pairings = [o.pairing_s for o in observations if o.pairing_s]
    if pairings:
        params.pairing_latency_s = statistics.median(pairings)
    inits = [o.init_s for o in observations if o.init_s]
    if inits:
        logs = np.log(inits)
        params.init_median_s = float(np.exp(logs.mean()))
        params.init_sigma = float(logs.std()) if len(inits) > 1 else params.init_sigma
    params.residuals = residuals(params, observations)
    return params


def predict_duration(params: ModelParams, o: Observation) -> float:
    """Predicted handler duration for an observation's work and memory."""
    read = o.bytes_read / params.s3_bandwidth_bytes_s + (params.s3_first_byte_s if math.isfinite(params.s3_bandwidth_bytes_s) else 0.0)
    load = params.model_load_s if o.cold else 0.0
    return params.overhead_s + load + read + o.samples * params.compute_s_per_sample_vcpu / o.speedup(params)


def residuals(params: ModelParams, observations: list[Observation]) -> dict[str, float]:
    """Mean/max absolute percentage error and RMSE (seconds) of predicted durations."""
    errors = [(predict_duration(params, o) - o.duration_s) for o in observations]
    pct = [abs(e) / o.duration_s * 100 for e, o in zip(errors, observations) if o.duration_s > 0]
    return {"n": len(observations), "mape_pct": statistics.fmean(pct) if pct else 0.0,
            "max_ape_pct": max(pct) if pct else 0.0, "rmse_s": math.sqrt(statistics.fmean(e * e for e in errors))}


def cross_validate(observations: list[Observation], base: ModelParams | None = None) -> dict[str, dict[str, float]]:
    """Leave-one-run-out: fit on the other runs, report errors on the held-out one."""
    runs = sorted({o.run for o in observations})
    out = {}
    for held in runs if len(runs) > 1 else []:
        train = [o for o in observations if o.run != held]
        test = [o for o in observations if o.run == held]
        out[held] = residuals(fit(train, base), test)
    return out


def load_observations(paths: Iterable[str | Path]) -> list[Observation]:
    """Observations from run record directories or record.json files."""
    from emulator.contracts import runrecord

    obs: list[Observation] = []
    for path in paths:
        obs.extend(observations_from_record(runrecord.load(path)))
    return obs
