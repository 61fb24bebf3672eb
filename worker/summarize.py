"""``Summarize``: combine every rank's result and name the ranks that are missing or failed."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from worker import s3io
from worker.events import require

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)


def failed_items(client: Any, map_run: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """Rank -> {error, cause} from the Map's ResultWriter FAILED files (if it wrote any)."""
    details = (map_run or {}).get("ResultWriterDetails")
    if not details:
        return {}
    manifest = s3io.get_json(client, details["Bucket"], details["Key"])
    failed: dict[int, dict[str, Any]] = {}
    for entry in manifest.get("ResultFiles", {}).get("FAILED", []):
        for item in s3io.get_json(client, details["Bucket"], entry["Key"]):
            try:
                rank = json.loads(item.get("Input") or "{}").get("rank")
            except json.JSONDecodeError:
                continue
            if isinstance(rank, int):
                failed[rank] = {"rank": rank, "error": item.get("Error"), "cause": item.get("Cause")}
    return failed


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bucket = require(event, "bucket", str)
    world = require(event, "world_size", int)
    result_prefix = require(event, "result_prefix", str).rstrip("/")
    client = s3io.s3_client()

    ranks: list[dict[str, Any]] = []
    absent: list[int] = []
    for rank in range(world):
        key = f"{result_prefix}/{rank}.json"
        if s3io.exists(client, bucket, key):
            ranks.append(s3io.get_json(client, bucket, key))
        else:
            absent.append(rank)
    failures = failed_items(client, event.get("map_run"))
    failed = [failures.get(r, {"rank": r, "error": None, "cause": None}) for r in absent if r in failures]
    missing = [r for r in absent if r not in failures]

    rows = sum(r["rows"] for r in ranks)
    summary: dict[str, Any] = {
        "complete": not absent,
        "world_size": world,
        "ranks_ok": [r["rank"] for r in ranks],
        "missing_ranks": missing,
        "failed_ranks": failed,
        "rows": rows,
        "mae": sum(r["sum_abs_err"] for r in ranks) / rows if rows else None,
        "rmse": math.sqrt(sum(r["sum_sq_err"] for r in ranks) / rows) if rows else None,
        "samples_per_second": sum(r.get("samples_per_second") or 0.0 for r in ranks),
        "bytes_read": sum(r["bytes_read"] for r in ranks),
        "max_worker_wall_seconds": max((r["wall_seconds"] for r in ranks), default=None),
        "summary_key": f"{result_prefix}/summary.json",
    }
    if absent:
        parts = []
        if failed:
            parts.append("failed ranks " + ", ".join(f"{f['rank']} ({f['error']})" for f in failed))
        if missing:
            parts.append("missing ranks " + ", ".join(map(str, missing)))
        summary["message"] = f"{len(absent)} of {world} ranks did not finish: " + "; ".join(parts)
    else:
        summary["message"] = f"all {world} ranks finished: {rows} rows"
    s3io.put_json(client, bucket, summary["summary_key"], {**summary, "ranks": ranks})
    log.info(summary["message"])
    return summary
