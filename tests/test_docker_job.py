"""The whole job on the Docker emulator: the repo's state machine, every invocation a container behind NAT,
S3 and the rendezvous as containers; collectives punched through cone NATs or relayed past symmetric ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator.contracts.job import JobConfig
from emulator import pipeline
from emulator.docker import job as docker_job
from emulator.docker.environment import ContainerEnvironment
from emulator.docker.job import EmulatorOptions, run_emulated_job
from emulator.docker.network import NetworkConfig
from emulator.cli.report import collectives_line
from emulator.contracts.runrecord import read_log_lines
from tests.docker_helpers import docker, leftovers, worker_image  # noqa: F401  (fixtures)

pytestmark = pytest.mark.docker
WORLD = 3


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datasets")


def _run(tmp_path: Path, data_cache: Path, docker: Any, image: str, nat: str, comm: str = "none",
         **job: Any) -> tuple[pipeline.JobResult, dict]:
    """Run a 3-rank job and check that nothing of it is left on the engine afterwards."""
    config = JobConfig(data_size_bytes=3_000_000, partition_size_bytes=1_000_000, workers=WORLD,
                                batch_size=64, comm=comm, worker_timeout_s=120, **job)
    seen: dict[str, str] = {}
    result = run_emulated_job(config, EmulatorOptions(network=NetworkConfig(nat=nat), image=image),
                              runs_dir=tmp_path / "runs", data_cache=data_cache,
                              on_topology=lambda topo: seen.setdefault("run_id", topo.run_id))
    assert leftovers(docker, seen["run_id"]) == [], "every container and network of the run must be removed"
    return result, json.loads((result.run_dir / "record.json").read_text())


def _pairs(record: dict) -> set[str]:
    return {channel for rank in record["summary"]["ranks"] for channel in rank["comm"]["pairs"].values()}


def test_job_through_cone_nats_uses_direct_connections(tmp_path, data_cache, docker, worker_image):
    result, record = _run(tmp_path, data_cache, docker, worker_image, nat="cone", comm="direct")
    assert result.status == "SUCCEEDED", result.cause
    assert record["backend"] == "docker" and record["config"]["docker"]["nat"] == "cone"
    summary = record["summary"]
    assert summary["complete"] and summary["ranks_ok"] == list(range(WORLD))
    assert _pairs(record) == {"direct"}, "cone NATs must let every pair punch through"
    assert collectives_line(summary).startswith("3 direct pair(s)")
    rank0 = next(r for r in summary["ranks"] if r["rank"] == 0)
    assert rank0["comm"]["global"]["rows"] == summary["rows"]
    assert rank0["comm"]["global"]["mae"] == pytest.approx(summary["mae"], rel=1e-9)
    # One REPORT line per invocation, written under the function's log group, as CloudWatch has them.
    lines = read_log_lines(result.run_dir)
    reports = [line for line in lines if line.startswith("REPORT")]
    assert len(reports) == len(record["invocations"]) == WORLD + 2
    workers = [inv for inv in record["invocations"] if inv["function"].endswith("-worker")]
    # Each worker is a cold start: Init Duration, or, when INIT passed Lambda's 10 s limit (torch on a
    # loaded host), a suppressed init re-run inside the invocation, as on AWS.
    assert all(inv["status"] == "success" and (inv["init_duration_ms"] or inv.get("init_phase") == "suppressed")
               for inv in workers)
    assert all(0 < inv["max_memory_used_mb"] < inv["memory_size_mb"] for inv in workers)


def test_symmetric_nats_defeat_punching_and_the_relay_completes_the_job(tmp_path, data_cache, docker, worker_image):
    result, record = _run(tmp_path, data_cache, docker, worker_image, nat="symmetric", comm="direct",
                          punch_timeout_s=2.0)
    assert result.status == "SUCCEEDED", result.cause
    assert record["summary"]["complete"] and _pairs(record) == {"relay"}
    assert collectives_line(record["summary"]).startswith("3 relay pair(s)")
    waits = [r["comm"]["pairing_seconds"] for r in record["summary"]["ranks"]]
    assert min(waits) >= 2.0, "each pair tried to punch for the whole window first"


class _KilledOnce(ContainerEnvironment):
    """Kills its own container the first time any worker logs that rank 1 has started inferring."""

    killed: list[str] = []

    def log(self, line: str) -> None:
        super().log(line)
        if not _KilledOnce.killed and self.function.name.endswith("-worker") and f"rank 1/{WORLD}:" in line:
            _KilledOnce.killed.append(self.container.name)
            self.container.kill()  # SIGKILL mid-invocation, as a crashed sandbox


def test_worker_container_killed_mid_run_is_retried_and_the_summary_is_right(tmp_path, data_cache, docker,
                                                                             worker_image, monkeypatch):
    _, reference_record = _run(tmp_path / "clean", data_cache, docker, worker_image, nat="cone")
    _KilledOnce.killed.clear()
    monkeypatch.setattr(docker_job, "ContainerEnvironment", _KilledOnce)
    result, record = _run(tmp_path / "killed", data_cache, docker, worker_image, nat="cone")
    assert _KilledOnce.killed, "the kill hook never fired"
    assert result.status == "SUCCEEDED", result.cause
    workers = [inv for inv in record["invocations"] if inv["function"].endswith("-worker")]
    failed = [inv for inv in workers if inv["status"] != "success"]
    assert len(failed) == 1 and failed[0]["error_type"] == "Runtime.ExitError", failed
    assert len(workers) == WORLD + 1, "exactly one retry (the state machine's Retry on Runtime.ExitError)"
    summary, reference = record["summary"], reference_record["summary"]
    assert summary["complete"] and summary["ranks_ok"] == list(range(WORLD))
    assert summary["rows"] == reference["rows"] and summary["mae"] == pytest.approx(reference["mae"], rel=1e-9)
