"""The shipped reference: real CosmicAI measurements on AWS, and the calibration built from them.

``sim/reference/cosmicai-aws/`` is a copy of the published measurements (see
its README): per-worker inference timings of 1 GB jobs at 25 and 50 MB
partitions (batch 512, 10,240 MB) and a worker's CloudWatch log with REPORT
lines for 75 MB partitions. :func:`build` turns them into observations and
fits the model; the result is saved as ``sim/reference/cosmicai_calibration.json``,
the default parameters of ``simulate`` and ``plan``.
"""

from __future__ import annotations

import ast
import json
import re
import statistics
from datetime import datetime
from pathlib import Path

from emulator.contracts.cloudwatch import parse_report_line
from sim.calibrate import Observation, OutsideMap, fit
from sim.params import REFERENCE_CALIBRATION, ModelParams

DATA = Path(__file__).resolve().parent / "reference" / "cosmicai-aws"
MEMORY_MB = 10_240
SAMPLES_PER_100MB = 5_113  # README: a "100MB" partition holds 5,113 samples
SOURCE = ("CosmicAI on AWS (sim/reference/cosmicai-aws: 25/50 MB worker timings of 1 GB jobs, "
          "75 MB REPORT lines, all at 10,240 MB, batch 512; issue 15: outside-Map times at 41 and 517 "
          "workers, the seed's Initialize REPORTs)")
# The real pipeline's time outside the Map (execution minus Map: Initialize, Summarize, transitions), as issue 15
# publishes it. Its Summarize (AI-for-Astronomy aws/lambda/summarizer.py, github.com/mstaylor/AI-for-Astronomy) lists
# ONE ListObjectsV2 page (no continuation token: at most 1,000 keys) and GETs those results one after another.
# The control functions' memory is not published: Lambda's default, 128 MB, is assumed. The two smaller worlds
# are fitted; the plateau (50-58 s from 2,600 workers up) is held out as the check.
OUTSIDE_MAP_READS = "list-page"
OUTSIDE_MAP_MEMORY_MB = 128
OUTSIDE_MAP_FITTED = ((41, 4.7), (517, 28.0))  # (workers, seconds)
OUTSIDE_MAP_PLATEAU = (2_600, 50.0, 58.0)  # from this many workers up, seconds low-high
# The seed system's Initialize at 128 MB (issue 15): REPORT Duration 587-637 ms, Init Duration 468-487 ms, Max
# Memory Used 87-89 MB at 41 workers; the two ends of each range become two cold invocations. Python + boto3 like
# CosmicAI's initializer; they identify the control functions' INIT, fixed CPU and memory.
SEED_INITIALIZE = ((0.587, 0.468, 87.0), (0.637, 0.487, 89.0))  # (Duration s, Init s, Max Memory MB)
SEED_WORLD = 41
_LINE = re.compile(r"^(?P<ts>\S+ \S+) - (?P<msg>.*)$")
_SIZE = re.compile(r"^(?P<mb>[0-9.]+)MB/")


def _mb(data_path: str) -> float:
    m = _SIZE.match(data_path)
    if not m:
        raise ValueError(f"cannot read a partition size from data path {data_path!r}")
    return float(m.group("mb"))


def _samples(mb: float) -> int:
    return int(SAMPLES_PER_100MB * mb / 100)


def worker_timings(path: Path) -> list[Observation]:
    """One observation per worker record: inference-loop time (compute), samples, bytes; no Duration."""
    run = path.name.removesuffix(".workers.json")
    out = []
    for rec in json.loads(path.read_text()):
        mb = _mb(rec["data_path"])
        out.append(Observation(run=run, samples=float(_samples(mb)), bytes_read=mb * 1e6, memory_mb=MEMORY_MB,
                               batch_size=int(rec["batch_size"]), compute_s=float(rec["total_cpu_time (seconds)"])))
    return out


def report_invocations(path: Path, run: str = "cloudwatch-75MB") -> list[Observation]:
    """REPORT lines of the worker log, with each invocation's partition (``received:``) and download phase.

    The download phase runs from the first ``s3key:`` line to the last
    ``downloading key`` line plus the median gap between earlier downloads
    (the last file's end is not logged).
    """
    out: list[Observation] = []
    current: dict = {}
    for raw in path.read_text().splitlines():
        m = _LINE.match(raw.strip())
        if not m:
            continue
        ts, msg = datetime.fromisoformat(m.group("ts")).timestamp(), m.group("msg")
        if msg.startswith("START RequestId"):
            current = {"downloads": []}
        elif msg.startswith("received:"):
            current["event"] = ast.literal_eval(msg.split(":", 1)[1].strip())
        elif msg.startswith("s3key:") or msg.startswith("downloading key"):
            current.setdefault("downloads", []).append(ts)
        elif msg.startswith("REPORT"):
            report = parse_report_line(msg)
            if report is None or report.status is not None or "event" not in current:
                continue
            event, marks = current["event"], current.get("downloads", [])
            download = None
            if len(marks) >= 4:
                gaps = [b - a for a, b in zip(marks[2::2], marks[3::2])]  # within later (small) files
                download = marks[-1] - marks[0] + statistics.median(gaps or [0.0])
            mb = _mb(event["DATA_PATH"])
            out.append(Observation(
                run=run, bytes_read=mb * 1e6, memory_mb=report.memory_size_mb, batch_size=int(event.get("BATCH_SIZE", 512)),
                duration_s=report.duration_ms / 1000.0, cold=report.init_duration_ms is not None,
                init_s=report.init_duration_ms / 1000.0 if report.init_duration_ms is not None else None,
                max_memory_mb=float(report.max_memory_used_mb), world=int(event.get("WORLD_SIZE", 0)) or None,
                download_s=download))
    return out


def seed_initialize() -> list[Observation]:
    """The seed system's two published Initialize REPORTs (the ends of its ranges)."""
    return [Observation(run="issue-15-seed-initialize", role="initialize", memory_mb=OUTSIDE_MAP_MEMORY_MB,
                        duration_s=duration, cold=True, init_s=init, max_memory_mb=memory, world=SEED_WORLD)
            for duration, init, memory in SEED_INITIALIZE]


def observations(data: Path = DATA) -> list[Observation]:
    """Every observation of the shipped data, and the seed system's published Initialize REPORTs."""
    obs: list[Observation] = []
    for path in sorted(data.glob("*.workers.json")):
        obs.extend(worker_timings(path))
    obs.extend(report_invocations(data / "cloudwatch-worker-log-example.txt"))
    return obs + seed_initialize()


def outside_map() -> list[OutsideMap]:
    """The published outside-Map times the reference calibration fits (not the held-out plateau)."""
    return [OutsideMap(f"issue-15-outside-map-{world}", world, seconds, OUTSIDE_MAP_MEMORY_MB,
                       summarize_reads=OUTSIDE_MAP_READS) for world, seconds in OUTSIDE_MAP_FITTED]


def build(data: Path = DATA) -> ModelParams:
    """The reference calibration: the model fitted to the shipped data and the published outside-Map times."""
    return fit(observations(data), ModelParams(), source=SOURCE, outside=outside_map())


def main() -> None:  # pragma: no cover - regenerates the shipped file
    params = build()
    params.save(REFERENCE_CALIBRATION)
    print(f"saved {REFERENCE_CALIBRATION}")


if __name__ == "__main__":
    main()
