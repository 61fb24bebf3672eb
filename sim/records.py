"""A simulated execution as a run record (the format every backend writes).

Used to check the calibration loop (simulate with known parameters, write the
record, calibrate, compare) and to compare a simulation with a real run in the
same tools. Ranks carry the per-phase seconds a real worker reports, history
events carry ISO timestamps as the ASL engine and AWS write them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from emulator.contracts.lambdas import InvocationRecord
from emulator.contracts.runrecord import RunRecord
from sim.model import SimResult

EPOCH = 1_800_000_000.0  # simulated time 0, as an epoch (any fixed instant works)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(EPOCH + t, timezone.utc).isoformat()


def to_run_record(result: SimResult, run_id: str = "simulated", breakdown: bool = True) -> RunRecord:
    """The run record of ``result``; without ``breakdown`` the ranks carry no phase seconds (REPORT-only evidence)."""
    spec = result.spec
    names = {role: f"sim-{role}" for role in ("initialize", "worker", "summarize")}
    invocations, ranks = [], []
    for i, inv in enumerate(result.invocations):
        rid = f"00000000-0000-4000-8000-{i:012d}"
        status = inv["status"] if inv["status"] in ("success", "timeout") else "error"
        invocations.append(InvocationRecord(
            names[inv["function"]], rid, EPOCH + inv["start"], EPOCH + inv["end"], inv["duration_s"] * 1000.0,
            inv["billed_ms"], inv["memory_mb"], int(round(inv["max_memory_used_mb"])),
            inv["init_s"] * 1000.0 if inv["cold"] else None, status, inv["error"]))
        if inv["function"] == "worker" and inv["status"] == "success":
            rank: dict[str, Any] = {"request_id": rid, "rank": inv["rank"], "batch_size": spec.batch_size,
                                    "bytes_read": inv["bytes_read"], "keys": ["k"] * inv["gets"]}
            if breakdown:
                rank.update({"rows": inv["samples"], "compute_seconds": inv["compute_s"], "s3_read_seconds": inv["read_s"],
                             "deserialize_seconds": inv["deserialize_s"], "download_seconds": inv["download_s"],
                             "model_load_seconds": inv["load_s"] or None})
            ranks.append(rank)
    history: list[dict[str, Any]] = [{"type": "ExecutionStarted", "timestamp": _iso(0.0)}]
    for name, (a, b) in result.steps.items():
        kind = "Map" if name == "Map" else "Task"
        history.append({"type": f"{kind}StateEntered", "timestamp": _iso(a), "stateEnteredEventDetails": {"name": name}})
        history.append({"type": f"{kind}StateExited", "timestamp": _iso(b), "stateExitedEventDetails": {"name": name}})
    return RunRecord(
        run_id=run_id, backend="reference",
        config={"data_size_bytes": spec.data_size_bytes, "partition_size_bytes": spec.partition_bytes,
                "workers": spec.world, "batch_size": spec.batch_size, "memory_mb": spec.memory_mb,
                "summarize_reads": spec.summarize_reads,
                "source": f"simulated (seed {result.seed}, parameters: {result.params_source})"},
        functions={name: {"role": role, "memory_mb": spec.memory_mb if role == "worker" else spec.control_memory_mb,
                          **({"package_mb": spec.package_mb} if role == "worker" and spec.package_mb else {})}
                   for role, name in names.items()},
        execution={"status": result.status, "start": EPOCH, "stop": EPOCH + result.makespan_s},
        history=history, invocations=invocations,
        summary={"world_size": spec.world, "ranks": ranks},
    )
