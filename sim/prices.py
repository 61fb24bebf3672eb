"""AWS prices the bill is computed from: one dated table, overridable from a JSON file.

Defaults: the local region (emulator/contracts/aws.py), as published for 2026 (see PRICES_AS_OF). Lambda bills
GB-seconds of billed duration (1 ms granularity; INIT included since
2025-08-01, which the REPORT line's Billed Duration already carries) plus
requests. Free tier is optional and off by default.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emulator.contracts.aws import REGION
from emulator.contracts.runrecord import RunRecord

PRICES_AS_OF = f"2026-01 ({REGION})"
PRICES_SOURCE = ("https://aws.amazon.com/lambda/pricing/, https://aws.amazon.com/step-functions/pricing/, "
                 "https://aws.amazon.com/s3/pricing/, https://aws.amazon.com/fargate/pricing/, "
                 "https://aws.amazon.com/cloudwatch/pricing/")


@dataclass(frozen=True)
class PriceTable:
    """Unit prices in USD. Override any field with ``load_prices(path)``."""

    as_of: str = PRICES_AS_OF
    source: str = PRICES_SOURCE
    region: str = REGION
    # Lambda: per GB-second by monthly tier (x86), arm64 flat first tier; per request.
    lambda_gb_s_x86_tiers: tuple[tuple[float, float], ...] = (
        (6e9, 0.0000166667), (15e9, 0.000015), (math.inf, 0.000013334))
    lambda_gb_s_arm64_tiers: tuple[tuple[float, float], ...] = (
        (7.5e9, 0.0000133334), (18.75e9, 0.0000120001), (math.inf, 0.0000106667))
    lambda_per_request: float = 0.20 / 1e6
    lambda_billing_granularity_ms: int = 1
    # Step Functions.
    sfn_standard_per_transition: float = 0.025 / 1000
    sfn_express_per_request: float = 1.00 / 1e6
    sfn_express_per_gb_hour: float = 0.06
    # S3 requests.
    s3_put_list_per_request: float = 0.005 / 1000
    s3_get_per_request: float = 0.0004 / 1000
    # Fargate (Linux/x86) with a 1-minute minimum.
    fargate_per_vcpu_hour: float = 0.04048
    fargate_per_gb_hour: float = 0.004445
    fargate_minimum_seconds: int = 60
    # CloudWatch Logs ingestion.
    logs_per_gb_ingested: float = 0.50
    # Free tier (monthly), applied only when asked for.
    free_lambda_gb_s: float = 400_000
    free_lambda_requests: float = 1_000_000
    free_sfn_transitions: float = 4_000

    def lambda_compute_cost(self, gb_seconds: float, arch: str = "x86_64", already_used_gb_s: float = 0.0) -> float:
        """Cost of ``gb_seconds`` given how many GB-s were already billed this month (tiers)."""
        tiers = self.lambda_gb_s_arm64_tiers if arch == "arm64" else self.lambda_gb_s_x86_tiers
        cost, start, remaining = 0.0, already_used_gb_s, gb_seconds
        lower = 0.0
        for upper, price in tiers:
            if remaining <= 0:
                break
            if start < upper:
                take = min(remaining, upper - max(start, lower))
                cost += take * price
                remaining -= take
                start += take
            lower = upper
        return cost


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The default table, with fields overridden by a JSON object from ``path``.

    Raises:
        ValueError: unknown field names or a file that is not a JSON object.
    """
    if path is None:
        return PriceTable()
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"price file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"price file {path}: must hold a JSON object of price fields")
    known = {f.name for f in fields(PriceTable)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"price file {path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key in ("lambda_gb_s_x86_tiers", "lambda_gb_s_arm64_tiers"):
        if key in data:
            data[key] = tuple((math.inf if u is None else float(u), float(p)) for u, p in data[key])
    return PriceTable(**data)


@dataclass(frozen=True)
class BillLine:
    item: str
    quantity: float
    unit: str
    unit_price: float
    cost: float


@dataclass
class Bill:
    """An itemised bill; ``total`` is the sum of the lines."""

    lines: list[BillLine] = field(default_factory=list)
    prices_as_of: str = PRICES_AS_OF
    prices_source: str = PRICES_SOURCE

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)

    def add(self, item: str, quantity: float, unit: str, unit_price: float, cost: float | None = None) -> None:
        self.lines.append(BillLine(item, quantity, unit, unit_price, quantity * unit_price if cost is None else cost))

    def to_dict(self) -> dict[str, Any]:
        return {"prices_as_of": self.prices_as_of, "prices_source": self.prices_source, "total_usd": self.total, "lines": [asdict(line) for line in self.lines]}


@dataclass(frozen=True)
class Usage:
    """What a job consumed, the input of :func:`bill_for_usage`."""

    lambda_gb_seconds: float
    lambda_requests: int
    sfn_transitions: int = 0
    sfn_express_requests: int = 0
    sfn_express_gb_hours: float = 0.0
    s3_put_list: int = 0
    s3_get: int = 0
    fargate_seconds: float = 0.0
    fargate_vcpu: float = 0.25
    fargate_gb: float = 0.5
    log_bytes: float = 0.0
    arch: str = "x86_64"


def bill_for_usage(usage: Usage, prices: PriceTable, *, free_tier: bool = False) -> Bill:
    """Itemise ``usage`` at ``prices`` (free tier subtracted when asked)."""
    bill = Bill(prices_as_of=prices.as_of, prices_source=prices.source)
    gb_s = max(0.0, usage.lambda_gb_seconds - (prices.free_lambda_gb_s if free_tier else 0.0))
    compute = prices.lambda_compute_cost(gb_s, usage.arch)
    bill.add(f"Lambda compute ({usage.arch})", gb_s, "GB-s", compute / gb_s if gb_s else 0.0, compute)
    requests = max(0, usage.lambda_requests - (prices.free_lambda_requests if free_tier else 0))
    bill.add("Lambda requests", requests, "requests", prices.lambda_per_request)
    transitions = max(0, usage.sfn_transitions - (prices.free_sfn_transitions if free_tier else 0))
    bill.add("Step Functions Standard transitions", transitions, "transitions", prices.sfn_standard_per_transition)
    if usage.sfn_express_requests:
        bill.add("Step Functions Express requests", usage.sfn_express_requests, "requests", prices.sfn_express_per_request)
        bill.add("Step Functions Express duration", usage.sfn_express_gb_hours, "GB-hours", prices.sfn_express_per_gb_hour)
    bill.add("S3 PUT/LIST requests", usage.s3_put_list, "requests", prices.s3_put_list_per_request)
    bill.add("S3 GET requests", usage.s3_get, "requests", prices.s3_get_per_request)
    if usage.fargate_seconds > 0:
        seconds = max(usage.fargate_seconds, prices.fargate_minimum_seconds)
        hourly = usage.fargate_vcpu * prices.fargate_per_vcpu_hour + usage.fargate_gb * prices.fargate_per_gb_hour
        bill.add(f"Fargate rendezvous ({usage.fargate_vcpu} vCPU, {usage.fargate_gb} GB)", seconds / 3600, "hours", hourly)
    bill.add("CloudWatch Logs ingestion", usage.log_bytes / 1e9, "GB", prices.logs_per_gb_ingested)
    return bill


def s3_requests(world: int, partitions: int) -> tuple[int, int]:
    """(PUT/LIST, GET) requests of one job: listing, assignment, results, summary, Map result files; reads."""
    put_list = world + 4 + max(1, math.ceil(partitions / 1000))
    get = partitions + 2 * world + 2  # partitions, each result twice (exists + read), assignment, manifest
    return put_list, get


def usage_from_record(record: RunRecord) -> Usage:
    """What a measured run consumed, from its REPORT fields, history and logs."""
    gb_s = sum(inv.billed_duration_ms / 1000.0 * inv.memory_size_mb / 1024.0 for inv in record.invocations)
    transitions = sum(1 for e in record.history if e.get("type", "").endswith("StateEntered"))
    express_requests, express_gb_s = 0, 0.0
    for run in record.map_runs:
        if run.get("express_billing"):  # EXPRESS children: billed per request and GB-s, not per transition
            express_requests += int(run["express_billing"]["requests"])
            express_gb_s += float(run["express_billing"]["gb_seconds"])
            continue
        for child in run.get("children") or []:
            transitions += sum(1 for e in child.get("history", []) if e.get("type", "").endswith("StateEntered"))
    world = int(record.summary.get("world_size") or len(record.invocations_of("worker")) or 0)
    partitions = sum(len(r.get("keys", [])) for r in record.summary.get("ranks", [])) or world
    log_bytes = float(record.config.get("log_bytes") or 0.0)
    if not log_bytes:
        # START + END + REPORT lines are about 300 bytes; handler lines add a few hundred.
        log_bytes = 600.0 * len(record.invocations)
    makespan = (record.execution.get("stop") or 0) - (record.execution.get("start") or 0)
    uses_rendezvous = record.config.get("comm", "none") not in (None, "none")
    put_list, get = s3_requests(world, partitions)
    return Usage(
        lambda_gb_seconds=gb_s, lambda_requests=len(record.invocations), sfn_transitions=transitions,
        sfn_express_requests=express_requests, sfn_express_gb_hours=express_gb_s / 3600.0,
        s3_put_list=put_list, s3_get=get, fargate_seconds=makespan if uses_rendezvous else 0.0, log_bytes=log_bytes,
        arch=str(record.config.get("arch", "x86_64")),
    )


def bill_for_record(record: RunRecord, prices: PriceTable, *, free_tier: bool = False) -> Bill:
    """The actual cost of a measured run (billed durations from its REPORT lines)."""
    return bill_for_usage(usage_from_record(record), prices, free_tier=free_tier)
