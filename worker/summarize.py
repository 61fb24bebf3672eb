"""``Summarize``: combine every rank's result and name the ranks that are missing or failed.

Input: the Initialize output plus ``map_run`` (the Map's ResultWriter output).
Writes ``<result_prefix>/summary.json`` (the returned summary plus every rank's
result under ``ranks`` and untruncated failure causes) and returns the summary.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from worker import s3io
from worker.events import EventError, require

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

READ_THREADS = 32  # rank results are small; reading them is latency-bound
CAUSE_CHARS = 500  # per failed rank in the returned payload (Step Functions caps state data at 256 KB)
MESSAGE_RANKS = 20  # failed ranks spelled out in the message (it becomes the Fail state's cause)


def failed_items(bucket: str, map_run: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """Rank -> ``{rank, error, cause}`` from the Map's ResultWriter FAILED files.

    Each failed item's ``Input`` is the assignment item (with its ``rank``). A
    manifest that cannot be read only loses this detail: those ranks are then
    reported as missing rather than failing the summary.
    """
    details = (map_run or {}).get("ResultWriterDetails") or {}
    if not details.get("Key"):
        return {}
    manifest_bucket = details.get("Bucket") or bucket
    failed: dict[int, dict[str, Any]] = {}
    try:
        manifest = s3io.get_json(manifest_bucket, details["Key"])
        for entry in manifest.get("ResultFiles", {}).get("FAILED", []):
            for item in s3io.get_json(manifest_bucket, entry["Key"]):
                rank = _item_rank(item.get("Input"))
                if rank is not None:
                    failed[rank] = {"rank": rank, "error": item.get("Error"), "cause": item.get("Cause")}
    except (s3io.S3AccessError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("cannot read the Map's failures from s3://%s/%s: %s", manifest_bucket, details["Key"], exc)
    return failed


def _item_rank(item_input: Any) -> int | None:
    """The ``rank`` of a Map item's input (a JSON string on AWS, maybe already parsed)."""
    if isinstance(item_input, str):
        try:
            item_input = json.loads(item_input)
        except json.JSONDecodeError:
            return None
    rank = item_input.get("rank") if isinstance(item_input, dict) else None
    return rank if isinstance(rank, int) and not isinstance(rank, bool) else None


def _short_cause(cause: Any) -> str:
    """The ``errorMessage`` of a Lambda error cause (a JSON string), else the cause itself, shortened."""
    text = "" if cause is None else str(cause)
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("errorMessage"):
            text = str(parsed["errorMessage"])
    except json.JSONDecodeError:
        pass
    return text if len(text) <= CAUSE_CHARS else text[:CAUSE_CHARS - 3] + "..."


def _ranges(ranks: list[int]) -> str:
    """``0-3, 7, 9-10`` for a sorted list of ranks."""
    spans: list[list[int]] = []
    for r in ranks:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _read_result(bucket: str, key: str, job_id: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None), or (None, why it does not count)."""
    try:
        result = s3io.get_json_if_exists(bucket, key)
    except ValueError as exc:  # results are written whole, so this is not ours
        return None, str(exc)
    if result is None:
        return None, None
    if not isinstance(result, dict) or not isinstance(result.get("rows"), int):
        return None, f"s3://{bucket}/{key} is not a rank result"
    if job_id and result.get("job_id") not in (None, job_id):
        return None, f"s3://{bucket}/{key} is from job {result['job_id']!r}, not {job_id!r}"
    return result, None


def _message(world: int, rows: int, failed: list[dict[str, Any]], missing: list[int]) -> str:
    if not failed and not missing:
        return f"all {world} ranks finished: {rows} rows"
    parts = []
    if failed:
        shown = "; ".join(f"{f['rank']} ({f['error']}: {_short_cause(f['cause'])[:200]})"
                          for f in failed[:MESSAGE_RANKS])
        more = f"; and {len(failed) - MESSAGE_RANKS} more" if len(failed) > MESSAGE_RANKS else ""
        parts.append(f"failed ranks {shown}{more}")
    if missing:
        parts.append(f"missing ranks {_ranges(missing)} (no result and no Map failure recorded)")
    return f"{len(failed) + len(missing)} of {world} ranks did not finish: " + "; ".join(parts)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: read ``<result_prefix>/<rank>.json`` for every rank and write the summary."""
    bucket = require(event, "bucket", str)
    world = require(event, "world_size", int)
    if world < 1:
        raise EventError(f"'world_size' must be at least 1, got {world}")
    result_prefix = require(event, "result_prefix", str).rstrip("/")
    job_id = event.get("job_id")

    keys = [f"{result_prefix}/{rank}.json" for rank in range(world)]
    with ThreadPoolExecutor(max(1, min(READ_THREADS, world))) as pool:
        read = list(pool.map(lambda key: _read_result(bucket, key, job_id), keys))
    ranks = [result for result, _ in read if result is not None]
    absent = [rank for rank, (result, _) in enumerate(read) if result is None]
    for rank, (_, why) in enumerate(read):
        if why:
            log.warning("rank %d: %s; counted as not finished", rank, why)

    failures = failed_items(bucket, event.get("map_run"))
    failed = [failures[r] for r in absent if r in failures]
    missing = [r for r in absent if r not in failures]
    rows = sum(r["rows"] for r in ranks)
    walls = [r["wall_seconds"] for r in ranks if r.get("wall_seconds")]
    summary: dict[str, Any] = {
        "complete": not absent,
        "world_size": world,
        "ranks_ok": [r["rank"] for r in ranks],
        "missing_ranks": missing,
        "failed_ranks": [{**f, "cause": _short_cause(f["cause"])} for f in failed],
        "rows": rows,
        "mae": sum(r["sum_abs_err"] for r in ranks) / rows if rows else None,
        "rmse": math.sqrt(sum(r["sum_sq_err"] for r in ranks) / rows) if rows else None,
        "samples_per_second": sum(r.get("samples_per_second") or 0.0 for r in ranks),  # compute rate, summed
        "job_samples_per_second": rows / max(walls) if walls else None,  # rows over the slowest rank's wall
        "bytes_read": sum(r.get("bytes_read") or 0 for r in ranks),
        "max_worker_wall_seconds": max(walls, default=None),
        "job_id": job_id,
        "summary_key": f"{result_prefix}/summary.json",
        "message": _message(world, rows, failed, missing),
    }
    s3io.put_json(bucket, summary["summary_key"], {**summary, "failed_ranks": failed, "ranks": ranks})
    (log.info if summary["complete"] else log.error)(summary["message"])
    return summary
