"""The three Lambda handlers against a real local S3 endpoint (moto server process)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from worker import infer, initialize, summarize
from worker.datagen import generate_partitions
from worker.events import EventError
from worker.model import ModelLoadError, build_model
from worker.partitions import BYTES_PER_SAMPLE, PartitionError, partition_bytes
from worker.s3io import S3AccessError

INIT_OUTPUT = {"bucket", "prefix", "world_size", "max_concurrency", "result_prefix", "job_id",
               "assignment_key", "map_results_prefix", "partitions", "batch_size"}
ITEM = {"bucket", "prefix", "keys", "rank", "world_size", "batch_size", "result_prefix", "comm", "rendezvous", "job_id"}
RESULT = {"rank", "world_size", "keys", "rows", "mae", "rmse", "sum_abs_err", "sum_sq_err", "wall_seconds",
          "cpu_seconds", "peak_memory_mb", "samples_per_second", "bytes_read", "s3_read_seconds",
          "model_load_seconds", "compute_seconds", "torch_threads", "batch_size", "comm"}
SUMMARY = {"complete", "world_size", "ranks_ok", "missing_ranks", "failed_ranks", "rows", "mae", "rmse",
           "summary_key", "message"}


class Context:
    """The attributes of Lambda's context object the handlers use."""

    aws_request_id = "req-1"
    function_name = "worker"
    memory_limit_in_mb = "2048"

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def put_partitions(client, bucket, prefix, n, samples=8, seed=0):
    parts = generate_partitions(samples * BYTES_PER_SAMPLE * n, samples * BYTES_PER_SAMPLE, seed)
    for i, part in enumerate(parts):
        client.put_object(Bucket=bucket, Key=f"{prefix}part-{i:05d}.pt", Body=partition_bytes(part))
    return parts


def read_json(client, bucket, key):
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(autouse=True)
def fresh_model_cache(monkeypatch):
    monkeypatch.setattr(infer, "_MODELS", {})


# -- Initialize ------------------------------------------------------------

def test_initialize_paginates_past_1000_keys_and_splits_evenly(s3_server, bucket):
    client = s3_server.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"many/p{i:05d}.pt", Body=b"x"), range(1003)))
    client.put_object(Bucket=bucket, Key="many/readme.txt", Body=b"not a partition")
    out = initialize.handler({"bucket": bucket, "prefix": "many/", "world_size": 4, "result_prefix": "r/",
                              "job_id": "j1"}, Context())
    assert set(out) == INIT_OUTPUT
    assert out["partitions"] == 1003 and out["world_size"] == 4 and out["assignment_key"] == "r/assignment.json"
    assert out["map_results_prefix"] == "r/map" and out["batch_size"] == 512 and out["job_id"] == "j1"
    items = read_json(client, bucket, out["assignment_key"])
    assert [len(i["keys"]) for i in items] == [251, 251, 251, 250]
    assert [k for i in items for k in i["keys"]] == [f"many/p{i:05d}.pt" for i in range(1003)]  # contiguous, in order
    assert [i["rank"] for i in items] == [0, 1, 2, 3]
    assert all(set(i) == ITEM and i["world_size"] == 4 and i["comm"] == "none" and i["job_id"] == "j1" for i in items)


def test_initialize_defaults_to_one_rank_per_partition_and_splits_by_ceiling(s3_server, bucket):
    client = s3_server.client()
    for i in range(10):
        client.put_object(Bucket=bucket, Key=f"d/part-{i:05d}.pt", Body=b"x")
    client.put_object(Bucket=bucket, Key="model.pt", Body=b"w")
    out = initialize.handler({"bucket": bucket, "prefix": "d/", "result_prefix": "r", "comm": None,
                              "world_size": None, "model_key": "model.pt", "batch_size": 64}, Context())
    assert out["world_size"] == 10 and out["job_id"] == "req-1"
    items = read_json(client, bucket, out["assignment_key"])
    assert [i["keys"] for i in items] == [[f"d/part-{i:05d}.pt"] for i in range(10)]
    assert all(i["model_key"] == "model.pt" and i["batch_size"] == 64 for i in items)
    out = initialize.handler({"bucket": bucket, "prefix": "d/", "result_prefix": "r", "world_size": 4}, None)
    items = read_json(client, bucket, out["assignment_key"])
    assert [len(i["keys"]) for i in items] == [3, 3, 2, 2] and "model_key" not in items[0]
    assert max(len(i["keys"]) for i in items) == -(-10 // 4)


@pytest.mark.parametrize("event, error, words", [
    ({"prefix": "d/", "result_prefix": "r"}, EventError, ["'bucket'"]),
    ({"bucket": "", "prefix": "d/", "result_prefix": "r"}, EventError, ["'bucket'", "empty"]),
    ({"bucket": "no-such-bucket-x", "prefix": "d/", "result_prefix": "r"}, S3AccessError,
     ["bucket 'no-such-bucket-x' does not exist"]),
    ({"bucket": "BUCKET", "prefix": "empty/", "result_prefix": "r"}, initialize.NoPartitionsError,
     ["no .pt partitions under s3://BUCKET/empty/"]),
    ({"bucket": "BUCKET", "prefix": "d/"}, EventError, ["'result_prefix'"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "world_size": 0}, EventError, ["world_size", "at least 1"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "world_size": "2"}, EventError, ["world_size", "integer"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "world_size": 9}, EventError, ["larger than the 3 partitions"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "batch_size": 0}, EventError, ["batch_size"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "comm": "carrier-pigeon"}, EventError, ["'comm'"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "comm": "direct"}, EventError, ["rendezvous"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "comm": "relay", "rendezvous": "h:1",
      "max_concurrency": 2}, EventError, ["max_concurrency is 2", "3 ranks"]),
    ({"bucket": "BUCKET", "prefix": "d/", "result_prefix": "r", "model_key": "nope.pt"}, S3AccessError,
     ["model weights s3://BUCKET/nope.pt do not exist"]),
])
def test_initialize_rejects_bad_input_clearly(s3_server, bucket, event, error, words):
    client = s3_server.client()
    for i in range(3):
        client.put_object(Bucket=bucket, Key=f"d/part-{i:05d}.pt", Body=b"x")
    event = {k: bucket if v == "BUCKET" else v for k, v in event.items()}
    with pytest.raises(error) as info:
        initialize.handler(event, None)
    for word in words:
        assert word.replace("BUCKET", bucket) in str(info.value)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="r/"), "no assignment on error"


def test_initialize_accepts_comm_when_all_ranks_fit(s3_server, bucket):
    put_partitions(s3_server.client(), bucket, "d/", 2)
    out = initialize.handler({"bucket": bucket, "prefix": "d/", "result_prefix": "r", "comm": "direct",
                              "rendezvous": "127.0.0.1:10000", "max_concurrency": 2}, None)
    items = read_json(s3_server.client(), bucket, out["assignment_key"])
    assert [(i["comm"], i["rendezvous"]) for i in items] == [("direct", "127.0.0.1:10000")] * 2


# -- Infer -----------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 7, 512])
def test_infer_writes_complete_metrics_for_any_batch_size(s3_server, bucket, batch_size):
    client = s3_server.client()
    parts = put_partitions(client, bucket, "d/", 2, samples=20)
    event = {"bucket": bucket, "keys": ["d/part-00000.pt", "d/part-00001.pt"], "rank": 3, "world_size": 4,
             "batch_size": batch_size, "result_prefix": "res/", "job_id": "j"}
    out = infer.handler(event, Context())
    assert out["rank"] == 3 and out["rows"] == 40 and out["result_key"] == "res/3.json"
    result = read_json(client, bucket, "res/3.json")
    assert RESULT <= set(result) and result["comm"] is None
    for field in RESULT - {"comm", "keys"}:
        assert isinstance(result[field], (int, float)) and result[field] >= 0, field
    assert result["keys"] == event["keys"] and result["batch_size"] == batch_size and result["job_id"] == "j"
    assert result["bytes_read"] > 40 * BYTES_PER_SAMPLE and result["s3_read_seconds"] > 0
    assert result["request_id"] == "req-1" and result["memory_limit_mb"] == 2048
    assert result["wall_seconds"] >= result["compute_seconds"] + result["s3_read_seconds"]
    assert result["samples_per_second"] == pytest.approx(40 / result["compute_seconds"])
    # Batching does not change the predictions: the sums match one unbatched pass.
    model = build_model(0)
    with torch.inference_mode():
        preds = torch.cat([model(p.images, p.magnitudes) for p in parts]).double()
    truth = torch.cat([p.redshifts for p in parts]).double()
    assert result["sum_abs_err"] == pytest.approx(float((preds - truth).abs().sum()), rel=1e-4)
    assert result["sum_sq_err"] == pytest.approx(float((preds - truth).square().sum()), rel=1e-4)
    assert result["mae"] == pytest.approx(result["sum_abs_err"] / 40)
    assert result["rmse"] == pytest.approx((result["sum_sq_err"] / 40) ** 0.5)
    assert out["mae"] == result["mae"]


def test_infer_loads_weights_from_s3_once_per_environment(s3_server, bucket):
    client = s3_server.client()
    put_partitions(client, bucket, "d/", 1, samples=5)
    trained = build_model(seed=42)
    client.put_object(Bucket=bucket, Key="models/w.pt", Body=_state_bytes(trained))
    event = {"bucket": bucket, "keys": ["d/part-00000.pt"], "rank": 0, "world_size": 1, "result_prefix": "r",
             "model_key": "models/w.pt"}
    infer.handler(event, None)
    cold = read_json(client, bucket, "r/0.json")
    infer.handler(event, None)
    warm = read_json(client, bucket, "r/0.json")
    assert cold["model_load_seconds"] > 0 and warm["model_load_seconds"] == 0.0
    assert cold["sum_abs_err"] == warm["sum_abs_err"]
    infer.handler({**event, "model_key": None}, None)  # the seeded model gives different predictions
    assert read_json(client, bucket, "r/0.json")["sum_abs_err"] != cold["sum_abs_err"]
    client.put_object(Bucket=bucket, Key="models/bad.pt", Body=_state_bytes(torch.nn.Linear(2, 2)))
    with pytest.raises(ModelLoadError, match="do not match RedshiftRegressor"):
        infer.handler({**event, "model_key": "models/bad.pt"}, None)


def _state_bytes(module: torch.nn.Module) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getvalue()


@pytest.mark.parametrize("body, error, words", [
    (b"\x80\x02garbage", PartitionError, ["s3://BUCKET/d/bad.pt", "not a readable torch"]),
    ({"images": torch.zeros(2, 5, 64, 60), "magnitudes": torch.zeros(2, 5), "redshifts": torch.zeros(2)},
     PartitionError, ["s3://BUCKET/d/bad.pt", "'images' has shape [2, 5, 64, 60]"]),
    ({"images": torch.zeros(2, 5, 64, 64), "redshifts": torch.zeros(2)}, PartitionError, ["missing tensor 'magnitudes'"]),
    ({"images": torch.full((2, 5, 64, 64), float("nan")), "magnitudes": torch.zeros(2, 5), "redshifts": torch.zeros(2)},
     infer.InferenceError, ["s3://BUCKET/d/bad.pt", "2 of 2 samples", "non-finite"]),
    (None, S3AccessError, ["s3://BUCKET/d/bad.pt does not exist"]),
])
def test_infer_fails_clearly_and_writes_no_result(s3_server, bucket, body, error, words):
    client = s3_server.client()
    if body is not None:
        if isinstance(body, dict):
            import io

            buf = io.BytesIO()
            torch.save(body, buf)
            body = buf.getvalue()
        client.put_object(Bucket=bucket, Key="d/bad.pt", Body=body)
    with pytest.raises(error) as info:
        infer.handler({"bucket": bucket, "keys": ["d/bad.pt"], "rank": 0, "world_size": 1, "result_prefix": "r"}, None)
    for word in words:
        assert word.replace("BUCKET", bucket) in str(info.value)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="r/")


@pytest.mark.parametrize("event, words", [
    ({"keys": []}, ["'keys'", "non-empty"]),
    ({"keys": "d/a.pt"}, ["'keys'", "list"]),
    ({"rank": 4}, ["'rank'", "0..3"]),
    ({"rank": None}, ["'rank'"]),
    ({"batch_size": -1}, ["batch_size"]),
])
def test_infer_rejects_bad_items(event, words):
    base = {"bucket": "b", "keys": ["d/a.pt"], "rank": 0, "world_size": 4, "result_prefix": "r"}
    with pytest.raises(EventError) as info:
        infer.handler({**base, **event}, None)
    for word in words:
        assert word in str(info.value)


def test_infer_comm_none_never_runs_collectives(s3_server, bucket, monkeypatch):
    put_partitions(s3_server.client(), bucket, "d/", 1, samples=3)

    def allreduce_job_metrics(*args, **kwargs):
        raise AssertionError("comm=none must not pair with anyone")

    monkeypatch.setattr(infer, "allreduce_job_metrics", allreduce_job_metrics)
    result = infer.handler({"bucket": bucket, "keys": ["d/part-00000.pt"], "rank": 0, "world_size": 1,
                            "result_prefix": "r", "comm": "none"}, None)
    assert result["rows"] == 3


def test_infer_runs_collectives_after_metrics_and_before_the_write(s3_server, bucket, monkeypatch):
    client = s3_server.client()
    put_partitions(client, bucket, "d/", 1, samples=3)
    calls = []

    def allreduce_job_metrics(event, metrics, deadline_s):
        assert not client.list_objects_v2(Bucket=bucket, Prefix="r/").get("Contents"), "result written too early"
        calls.append((event["comm"], metrics["rows"], metrics["sum_abs_err"], deadline_s))
        return {"channel": event["comm"], "global": {"rows": 6}}

    monkeypatch.setattr(infer, "allreduce_job_metrics", allreduce_job_metrics)
    event = {"bucket": bucket, "keys": ["d/part-00000.pt"], "rank": 1, "world_size": 2, "result_prefix": "r",
             "comm": "relay", "rendezvous": "127.0.0.1:1", "job_id": "j"}
    infer.handler(event, Context(remaining_ms=20_000))
    assert len(calls) == 1 and calls[0][:2] == ("relay", 3) and calls[0][2] > 0
    assert calls[0][3] == pytest.approx(20.0 - infer.COMM_MARGIN_S)
    assert read_json(client, bucket, "r/1.json")["comm"] == {"channel": "relay", "global": {"rows": 6}}


# -- Summarize -------------------------------------------------------------

def _rank_result(rank, rows=10, job_id=None, **extra):
    return {"rank": rank, "rows": rows, "sum_abs_err": 1.0, "sum_sq_err": 0.4, "bytes_read": 100,
            "wall_seconds": 1.0 + rank, "samples_per_second": 50.0, "job_id": job_id, **extra}


def _put(client, bucket, key, value):
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(value).encode())


def test_summarize_with_every_rank(s3_server, bucket):
    client = s3_server.client()
    for rank in range(3):
        _put(client, bucket, f"res/{rank}.json", _rank_result(rank, job_id="j"))
    out = summarize.handler({"bucket": bucket, "world_size": 3, "result_prefix": "res", "job_id": "j",
                             "map_run": {"MapRunArn": "arn", "ResultWriterDetails": {"Bucket": bucket, "Key": "map/none.json"}}},
                            None)
    assert SUMMARY <= set(out)
    assert out["complete"] is True and out["ranks_ok"] == [0, 1, 2] and out["missing_ranks"] == [] == out["failed_ranks"]
    assert out["rows"] == 30 and out["mae"] == pytest.approx(0.1) and out["rmse"] == pytest.approx(0.2)
    assert out["samples_per_second"] == 150.0 and out["job_samples_per_second"] == pytest.approx(10.0)
    assert out["message"] == "all 3 ranks finished: 30 rows" and out["summary_key"] == "res/summary.json"
    stored = read_json(client, bucket, "res/summary.json")
    assert [r["rank"] for r in stored["ranks"]] == [0, 1, 2] and stored["complete"] is True


def test_summarize_names_failed_and_missing_ranks(s3_server, bucket):
    client = s3_server.client()
    for rank in (0, 2):
        _put(client, bucket, f"res/{rank}.json", _rank_result(rank, job_id="j"))
    _put(client, bucket, "res/5.json", _rank_result(5, job_id="an-older-job"))  # stale: does not count
    cause = json.dumps({"errorMessage": "s3://b/d/part-00001.pt: not a readable torch .pt file",
                        "errorType": "PartitionError", "stackTrace": ["x" * 5000]})
    _put(client, bucket, "map/run/FAILED_0.json", [
        {"Input": json.dumps({"rank": 1, "keys": ["d/part-00001.pt"]}), "Error": "PartitionError", "Cause": cause},
        {"Input": {"rank": 4}, "Error": "Sandbox.Timedout", "Cause": "Task timed out after 3.00 seconds"}])
    _put(client, bucket, "map/run/manifest.json", {
        "ResultFiles": {"FAILED": [{"Key": "map/run/FAILED_0.json", "Size": 1}], "SUCCEEDED": [], "PENDING": []}})
    out = summarize.handler({"bucket": bucket, "world_size": 7, "result_prefix": "res", "job_id": "j",
                             "map_run": {"ResultWriterDetails": {"Bucket": bucket, "Key": "map/run/manifest.json"}}},
                            None)
    assert out["complete"] is False and out["ranks_ok"] == [0, 2]
    assert [(f["rank"], f["error"]) for f in out["failed_ranks"]] == [(1, "PartitionError"), (4, "Sandbox.Timedout")]
    assert out["failed_ranks"][0]["cause"] == "s3://b/d/part-00001.pt: not a readable torch .pt file"
    assert out["missing_ranks"] == [3, 5, 6]
    assert out["rows"] == 20 and out["mae"] == pytest.approx(0.1)
    assert out["message"].startswith("5 of 7 ranks did not finish: failed ranks 1 (PartitionError: s3://b/d/part-00001.pt")
    assert "4 (Sandbox.Timedout: Task timed out" in out["message"] and "missing ranks 3, 5-6" in out["message"]
    stored = read_json(client, bucket, "res/summary.json")
    assert len(stored["ranks"]) == 2 and stored["failed_ranks"][0]["cause"] == cause  # full cause kept in S3
    assert len(json.dumps(out)) < 5000


def test_summarize_without_map_details_reports_missing_ranks(s3_server, bucket):
    client = s3_server.client()
    _put(client, bucket, "res/1.json", _rank_result(1))
    for map_run in (None, {"ResultWriterDetails": {"Bucket": bucket, "Key": "map/absent/manifest.json"}}):
        out = summarize.handler({"bucket": bucket, "world_size": 3, "result_prefix": "res", "map_run": map_run}, None)
        assert out["complete"] is False and out["ranks_ok"] == [1] and out["missing_ranks"] == [0, 2]
        assert out["failed_ranks"] == [] and "missing ranks 0, 2" in out["message"]


def test_summarize_with_no_results_at_all(s3_server, bucket):
    out = summarize.handler({"bucket": bucket, "world_size": 2, "result_prefix": "res"}, None)
    assert out["complete"] is False and out["rows"] == 0 and out["mae"] is None and out["missing_ranks"] == [0, 1]
    with pytest.raises(S3AccessError, match="does not exist"):
        summarize.handler({"bucket": "no-such-bucket-y", "world_size": 1, "result_prefix": "res"}, None)


def test_pipeline_of_handlers_end_to_end(s3_server, bucket):
    """Initialize -> every worker -> Summarize, passing payloads as the state machine does."""
    client = s3_server.client()
    put_partitions(client, bucket, "data/", 3, samples=6)
    job = initialize.handler({"bucket": bucket, "prefix": "data/", "world_size": 2, "batch_size": 4,
                              "result_prefix": "runs/x/results", "job_id": "x", "comm": "none"}, Context())
    for item in read_json(client, bucket, job["assignment_key"]):
        infer.handler(item, Context())
    out = summarize.handler({**job, "map_run": {"MapRunArn": "arn"}}, Context())
    assert out["complete"] is True and out["rows"] == 18 and out["ranks_ok"] == [0, 1]
    ranks = read_json(client, bucket, out["summary_key"])["ranks"]
    assert [r["rows"] for r in ranks] == [12, 6] and {r["batch_size"] for r in ranks} == {4}
