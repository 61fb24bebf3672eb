"""Handlers, model, partitions and data generation against a real local S3 endpoint."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from worker import initialize, infer, summarize
from worker.datagen import generate_partitions, partition_plan
from worker.events import EventError
from worker.model import ModelLoadError, build_model, load_model
from worker.partitions import BYTES_PER_SAMPLE, PartitionError, load_partition
from worker.s3io import S3AccessError


def put_partitions(client, bucket, prefix, n, samples=8, seed=0):
    parts = generate_partitions(samples * BYTES_PER_SAMPLE * n, samples * BYTES_PER_SAMPLE, seed)
    for i, part in enumerate(parts):
        buf = io.BytesIO()
        torch.save(part.to_dict(), buf)
        client.put_object(Bucket=bucket, Key=f"{prefix}part-{i:05d}.pt", Body=buf.getvalue())
    return parts


def test_initialize_paginates_past_1000_keys_and_splits_evenly(s3_server, bucket):
    client = s3_server.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"many/p{i:05d}.pt", Body=b"x"), range(1003)))
    client.put_object(Bucket=bucket, Key="many/readme.txt", Body=b"not a partition")
    out = initialize.handler({"bucket": bucket, "prefix": "many/", "world_size": 4, "result_prefix": "r"}, None)
    assert out["partitions"] == 1003 and out["world_size"] == 4
    items = json.loads(client.get_object(Bucket=bucket, Key=out["assignment_key"])["Body"].read())
    assert [len(i["keys"]) for i in items] == [251, 251, 251, 250]
    assert sorted(k for i in items for k in i["keys"]) == [f"many/p{i:05d}.pt" for i in range(1003)]
    assert [i["rank"] for i in items] == [0, 1, 2, 3] and all(i["batch_size"] == 512 for i in items)


def test_initialize_defaults_to_one_rank_per_partition(s3_server, bucket):
    put_partitions(s3_server.client(), bucket, "d/", 3)
    out = initialize.handler({"bucket": bucket, "prefix": "d/", "result_prefix": "r", "comm": "none"}, None)
    assert out["world_size"] == 3 and out["map_results_prefix"] == "r/map"


@pytest.mark.parametrize("event, error, words", [
    ({"prefix": "d/", "result_prefix": "r"}, EventError, ["'bucket'"]),
    ({"bucket": "no-such-bucket-x", "prefix": "d/", "result_prefix": "r"}, S3AccessError, ["no-such-bucket-x", "does not exist"]),
    ({"bucket": "BUCKET", "prefix": "empty/", "result_prefix": "r"}, initialize.NoPartitionsError, ["empty/"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "world_size": 0}, EventError, ["world_size", "at least 1"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "world_size": 9}, EventError, ["larger than"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "comm": "direct"}, EventError, ["rendezvous"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "comm": "direct", "rendezvous": "h:1",
      "max_concurrency": 1}, EventError, ["max_concurrency"]),
])
def test_initialize_rejects_bad_input_clearly(s3_server, bucket, event, error, words):
    put_partitions(s3_server.client(), bucket, "d/", 3)
    event = {k: bucket if v == "BUCKET" else v for k, v in event.items()}
    with pytest.raises(error) as info:
        initialize.handler(event, None)
    for word in words:
        assert word in str(info.value)


def test_infer_writes_complete_metrics_and_reuses_the_model(s3_server, bucket):
    client = s3_server.client()
    parts = put_partitions(client, bucket, "d/", 2, samples=20)
    event = {"bucket": bucket, "keys": ["d/part-00000.pt", "d/part-00001.pt"], "rank": 3, "world_size": 4,
             "batch_size": 7, "result_prefix": "res"}
    out = infer.handler(event, None)
    assert out["rows"] == 40 and out["result_key"] == "res/3.json"
    result = json.loads(client.get_object(Bucket=bucket, Key="res/3.json")["Body"].read())
    for field in ("mae", "rmse", "wall_seconds", "cpu_seconds", "peak_memory_mb", "samples_per_second",
                  "bytes_read", "s3_read_seconds", "compute_seconds", "torch_threads"):
        assert result[field] is not None and result[field] >= 0, field
    assert result["bytes_read"] > 40 * BYTES_PER_SAMPLE and result["comm"] is None
    # Batching does not change predictions: the error sums match a single batch.
    model = build_model(0)
    with torch.inference_mode():
        preds = torch.cat([model(p.images, p.magnitudes) for p in parts])
    truth = torch.cat([p.redshifts for p in parts])
    assert result["sum_abs_err"] == pytest.approx(float((preds - truth).abs().sum()), rel=1e-4)
    again = json.loads(client.get_object(Bucket=bucket, Key="res/3.json")["Body"].read())
    infer.handler(event, None)
    assert json.loads(client.get_object(Bucket=bucket, Key="res/3.json")["Body"].read())["model_load_seconds"] == 0.0
    assert again["rows"] == 40


@pytest.mark.parametrize("payload, words", [
    (b"definitely not torch", ["not a readable torch"]),
    ({"images": torch.zeros(2, 5, 32, 32), "magnitudes": torch.zeros(2, 5), "redshifts": torch.zeros(2)}, ["images", "[N, 5, 64, 64]"]),
    ({"images": torch.zeros(2, 5, 64, 64), "redshifts": torch.zeros(2)}, ["missing tensor 'magnitudes'"]),
    ({"images": torch.zeros(2, 5, 64, 64), "magnitudes": torch.zeros(3, 5), "redshifts": torch.zeros(2)}, ["disagree"]),
    ({"images": torch.zeros(2, 5, 64, 64, dtype=torch.int32), "magnitudes": torch.zeros(2, 5), "redshifts": torch.zeros(2)}, ["dtype"]),
])
def test_bad_partitions_raise_partition_error(payload, words):
    if isinstance(payload, dict):
        buf = io.BytesIO()
        torch.save(payload, buf)
        payload = buf.getvalue()
    with pytest.raises(PartitionError) as info:
        load_partition(payload, name="s3://b/bad.pt")
    assert "s3://b/bad.pt" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_float64_partitions_load_as_float32():
    buf = io.BytesIO()
    torch.save({"images": torch.ones(1, 5, 64, 64, dtype=torch.float64), "magnitudes": torch.ones(1, 5),
                "redshifts": torch.ones(1, dtype=torch.float64), "extra": "ignored"}, buf)
    part = load_partition(buf.getvalue())
    assert part.images.dtype == torch.float32 and len(part) == 1


def test_summarize_names_failed_and_missing_ranks(s3_server, bucket):
    client = s3_server.client()
    for rank in (0, 2):
        client.put_object(Bucket=bucket, Key=f"res/{rank}.json", Body=json.dumps({
            "rank": rank, "rows": 10, "sum_abs_err": 1.0, "sum_sq_err": 0.4, "bytes_read": 100,
            "wall_seconds": 1.0 + rank, "samples_per_second": 50.0}).encode())
    client.put_object(Bucket=bucket, Key="map/run/FAILED_0.json", Body=json.dumps([
        {"Input": json.dumps({"rank": 1}), "Error": "PartitionError", "Cause": "corrupt"}]).encode())
    client.put_object(Bucket=bucket, Key="map/run/manifest.json", Body=json.dumps({
        "ResultFiles": {"FAILED": [{"Key": "map/run/FAILED_0.json"}], "SUCCEEDED": [], "PENDING": []}}).encode())
    out = summarize.handler({"bucket": bucket, "world_size": 4, "result_prefix": "res",
                             "map_run": {"ResultWriterDetails": {"Bucket": bucket, "Key": "map/run/manifest.json"}}}, None)
    assert out["complete"] is False and out["ranks_ok"] == [0, 2]
    assert out["failed_ranks"] == [{"rank": 1, "error": "PartitionError", "cause": "corrupt"}]
    assert out["missing_ranks"] == [3]
    assert out["rows"] == 20 and out["mae"] == pytest.approx(0.1) and out["rmse"] == pytest.approx(0.2)
    assert "failed ranks 1 (PartitionError)" in out["message"] and "missing ranks 3" in out["message"]
    stored = json.loads(client.get_object(Bucket=bucket, Key="res/summary.json")["Body"].read())
    assert len(stored["ranks"]) == 2


def test_model_is_deterministic_and_state_dicts_round_trip(tmp_path):
    a, b, c = build_model(1), build_model(1), build_model(2)
    x, m = torch.randn(4, 5, 64, 64), torch.randn(4, 5) + 20
    with torch.inference_mode():
        assert torch.equal(a(x, m), b(x, m)) and not torch.equal(a(x, m), c(x, m))
    path = tmp_path / "w.pt"
    torch.save(c.state_dict(), path)
    with torch.inference_mode():
        assert torch.equal(load_model(path)(x, m), c(x, m))
    torch.save({"nope": torch.zeros(1)}, path)
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model(path)


def test_datagen_is_reproducible_and_sized(tmp_path):
    one = generate_partitions(3_000_000, 1_000_000, seed=5, out_dir=tmp_path / "a")
    two = generate_partitions(3_000_000, 1_000_000, seed=5, out_dir=tmp_path / "b")
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    assert all(abs(p.stat().st_size - 1_000_000) / 1_000_000 < 0.1 for p in one)
    part = load_partition(one[0])
    assert 0.005 <= float(part.redshifts.min()) and float(part.redshifts.max()) <= 0.6
    # Redder with redshift: g - r correlates positively with z.
    g_r = part.magnitudes[:, 1] - part.magnitudes[:, 2]
    assert float(torch.corrcoef(torch.stack([g_r, part.redshifts]))[0, 1]) > 0.3
    assert partition_plan(100_000_000, 25_000_000) == [305] * 4
