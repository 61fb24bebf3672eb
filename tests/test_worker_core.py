"""worker/ building blocks: model, partition format, synthetic data, resource probes, S3 helpers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from worker import s3io
from worker.datagen import generate_partitions
from worker.model import ModelLoadError, build_model, load_model
from worker.layout import BYTES_PER_SAMPLE, partition_plan
from worker.partitions import Partition, PartitionError, load_partition
from worker.resources import available_cpus, cgroup_cpu_quota, cpu_seconds, peak_memory_mb, torch_threads_for


def saved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def good(n: int = 2) -> dict[str, torch.Tensor]:
    return {"images": torch.rand(n, 5, 64, 64), "magnitudes": torch.rand(n, 5) + 18, "redshifts": torch.rand(n)}


# -- model -----------------------------------------------------------------

def test_model_is_deterministic_and_state_dicts_round_trip(tmp_path):
    a, b, c = build_model(1), build_model(1), build_model(2)
    x, m = torch.randn(4, 5, 64, 64), torch.randn(4, 5) + 20
    rng = torch.random.get_rng_state()
    build_model(3)
    assert torch.equal(rng, torch.random.get_rng_state()), "building a model must not move the caller's RNG"
    with torch.inference_mode():
        assert torch.equal(a(x, m), b(x, m)) and not torch.equal(a(x, m), c(x, m))
        assert a(x, m).shape == (4,)
        path = tmp_path / "w.pt"
        torch.save(c.state_dict(), path)
        assert torch.equal(load_model(path)(x, m), c(x, m))
        assert torch.equal(load_model(path.read_bytes(), seed=7)(x, m), c(x, m))  # weights win over the seed
        # Common checkpoint wrappers load too.
        wrapped = saved({"state_dict": {f"module.{k}": v for k, v in c.state_dict().items()}, "epoch": 3})
        assert torch.equal(load_model(wrapped)(x, m), c(x, m))


def test_model_uses_only_the_centre_crop():
    model, x, m = build_model(0), torch.randn(2, 5, 64, 64), torch.randn(2, 5) + 20
    y = x.clone()
    y[..., :16, :] = 99.0  # outside the central 32x32
    with torch.inference_mode():
        assert torch.equal(model(x, m), model(y, m))


@pytest.mark.parametrize("payload, words", [
    (saved({"nope": torch.zeros(1)}), ["do not match", "Missing key"]),
    (b"not a torch file", ["not a readable torch state dict"]),
    (saved([1, 2]), ["list", "expected a state dict"]),
])
def test_bad_model_weights_raise_model_load_error(payload, words):
    with pytest.raises(ModelLoadError) as info:
        load_model(payload)
    for word in words:
        assert word in str(info.value)


# -- partitions ------------------------------------------------------------

@pytest.mark.parametrize("payload, words", [
    (b"definitely not torch", ["not a readable torch"]),
    (b"", ["not a readable torch"]),
    ({**good(), "images": torch.zeros(2, 5, 16, 16)}, ["'images'", "[N, 5, 64, 64]"]),
    ({**good(), "images": torch.zeros(2, 3, 64, 64)}, ["'images'", "[2, 3, 64, 64]"]),
    ({"images": torch.zeros(2, 5, 64, 64), "redshifts": torch.zeros(2)}, ["missing tensor 'magnitudes'"]),
    ({**good(), "magnitudes": torch.zeros(3, 5)}, ["disagree", "magnitudes 3"]),
    ({**good(), "magnitudes": torch.zeros(2, 4)}, ["'magnitudes'", "[N, 5]"]),
    ({**good(), "redshifts": torch.zeros(2, 2)}, ["'redshifts'", "[N]"]),
    ({**good(), "images": torch.zeros(2, 5, 64, 64, dtype=torch.int32)}, ["dtype torch.int32"]),
    ({**good(), "redshifts": [0.1, 0.2]}, ["'redshifts' is a list"]),
    (torch.zeros(3), ["holds a Tensor", "dict"]),
    ((torch.zeros(2, 5, 64, 64), torch.zeros(2, 5)), ["sequence of 2"]),
])
def test_bad_partitions_raise_partition_error(payload, words):
    if not isinstance(payload, bytes):
        payload = saved(payload)
    with pytest.raises(PartitionError) as info:
        load_partition(payload, name="s3://b/bad.pt")
    assert str(info.value).startswith("s3://b/bad.pt: ")
    for word in words:
        assert word in str(info.value)


def test_partitions_refuse_arbitrary_pickles():
    class Sneaky:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(PartitionError, match="not a readable torch"):
        load_partition(saved({**good(), "extra": Sneaky()}))


def test_accepted_variants_load_as_the_documented_format(tmp_path):
    base = good(3)
    nhwc = base["images"].permute(0, 2, 3, 1).contiguous()
    variants = [
        base,
        {**base, "images": base["images"].double(), "redshifts": base["redshifts"].half().float(), "extra": "x"},
        TensorDataset(nhwc, base["magnitudes"], base["redshifts"][:, None]),  # how CosmicAI saves data
        (base["images"], base["magnitudes"].double(), base["redshifts"]),
    ]
    for variant in variants:
        part = load_partition(saved(variant))
        assert len(part) == 3 and part.images.shape == (3, 5, 64, 64) and part.redshifts.shape == (3,)
        assert all(t.dtype == torch.float32 and t.is_contiguous() for t in part.to_dict().values())
        assert torch.allclose(part.images, base["images"]) and torch.allclose(part.magnitudes, base["magnitudes"])
    path = tmp_path / "p.pt"
    torch.save(base, path)
    assert len(load_partition(path)) == len(load_partition(str(path))) == 3
    cropped = load_partition(saved({**base, "images": base["images"][..., 16:48, 16:48]}))
    assert cropped.images.shape == (3, 5, 32, 32)


# -- synthetic data --------------------------------------------------------

def test_datagen_is_reproducible_and_sized(tmp_path):
    calls = []
    one = generate_partitions(3_000_000, 1_000_000, seed=5, out_dir=tmp_path / "a", progress=lambda d, t: calls.append((d, t)))
    two = generate_partitions(3_000_000, 1_000_000, seed=5, out_dir=tmp_path / "b")
    other = generate_partitions(1_000_000, 1_000_000, seed=6)
    assert [p.name for p in one] == ["part-00000.pt", "part-00001.pt", "part-00002.pt"]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    assert not torch.equal(load_partition(one[0]).images, other[0].images)
    assert all(abs(p.stat().st_size - 1_000_000) / 1_000_000 < 0.05 for p in one)
    assert abs(sum(p.stat().st_size for p in one) - 3_000_000) / 3_000_000 < 0.05
    assert partition_plan(100_000_000, 25_000_000) == [305] * 4
    assert partition_plan(60_000_000, 25_000_000) == [305, 305, 122]


def test_datagen_is_physically_plausible():
    [part] = generate_partitions(400 * BYTES_PER_SAMPLE, 400 * BYTES_PER_SAMPLE, seed=1)
    z, mags = part.redshifts, part.magnitudes
    assert 0.0 < float(z.min()) and float(z.max()) <= 0.6 and 0.05 < float(z.median()) < 0.2
    assert torch.isfinite(part.images).all() and torch.isfinite(mags).all()
    # Redder and fainter with redshift.
    g_r, r = mags[:, 1] - mags[:, 2], mags[:, 2]
    assert float(torch.corrcoef(torch.stack([g_r, z]))[0, 1]) > 0.3
    assert float(torch.corrcoef(torch.stack([r, torch.log(z)]))[0, 1]) > 0.3
    assert 12 < float(r.median()) < 19  # SDSS main sample: r < 17.77
    # Image fluxes agree with the magnitudes (nanomaggies; noise, PSF losses and magnitude errors aside).
    flux_r = part.images[:, 2].sum(dim=(1, 2))
    implied = 22.5 - 2.5 * torch.log10(flux_r.clamp_min(1e-3))
    assert float((implied - r).abs().median()) < 0.1


# -- resources -------------------------------------------------------------

def test_resource_probes_measure_this_process():
    cpus = available_cpus()
    assert 0 < cpus <= (len(__import__("os").sched_getaffinity(0)))
    assert torch_threads_for(0.3) == 1 and torch_threads_for(1.0) == 1 and torch_threads_for(1.8) == 2
    assert torch_threads_for(cpus) >= 1
    before = cpu_seconds()
    sum(i * i for i in range(200_000))
    assert cpu_seconds() > before
    assert 10 < peak_memory_mb() < 100_000


def test_cgroup_quotas_v2_and_v1(tmp_path):
    proc = tmp_path / "cgroup"
    v2 = tmp_path / "v2"
    (v2 / "job" / "fn").mkdir(parents=True)
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "job" / "cpu.max").write_text("150000 100000\n")
    (v2 / "job" / "fn" / "cpu.max").write_text("max 100000\n")
    proc.write_text("0::/job/fn\n")
    assert cgroup_cpu_quota(v2, proc) == 1.5  # a parent's quota applies to its children
    (v2 / "job" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(v2, proc) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_quota(v1, proc) == 0.5  # container sees its own cgroup mounted at the root
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(v1, proc) is None


# -- S3 helpers ------------------------------------------------------------

def test_s3_helpers_explain_errors_and_write_whole_objects(s3_server, bucket):
    client = s3io.s3_client()
    assert client is s3io.s3_client(), "a warm environment reuses its client"
    with pytest.raises(s3io.S3AccessError, match="bucket 'nope-missing' does not exist"):
        s3io.list_keys("nope-missing", "")
    with pytest.raises(s3io.S3AccessError, match=f"s3://{bucket}/absent.json does not exist"):
        s3io.get_bytes(bucket, "absent.json")
    assert s3io.get_json_if_exists(bucket, "absent.json") is None and not s3io.exists(bucket, "absent.json")
    with pytest.raises(ValueError):
        s3io.put_json(bucket, "nan.json", {"mae": float("nan")})
    assert not s3io.exists(bucket, "nan.json"), "an unwritable value leaves no object behind"
    s3io.put_json(bucket, "a/x.json", {"v": 1})
    s3io.put_json(bucket, "a/y.txt", [1])
    assert s3io.list_keys(bucket, "a/", ".json") == ["a/x.json"]
    body, seconds = s3io.get_bytes(bucket, "a/x.json")
    assert s3io.get_json(bucket, "a/x.json") == {"v": 1} and seconds > 0 and len(body) > 0
    client.put_object(Bucket=bucket, Key="bad.json", Body=b"{half")
    with pytest.raises(ValueError, match="not valid JSON"):
        s3io.get_json(bucket, "bad.json")


def test_s3_unreachable_endpoint_is_explained(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setattr(s3io, "_CONFIG", s3io._CONFIG.merge(
        __import__("botocore.config").config.Config(retries={"max_attempts": 1}, connect_timeout=1)))
    with pytest.raises(s3io.S3AccessError, match="cannot reach S3 at http://127.0.0.1:9"):
        s3io.list_keys("b", "")


def test_generated_partition_is_what_the_loader_reads(tmp_path):
    [path] = generate_partitions(30 * BYTES_PER_SAMPLE, 30 * BYTES_PER_SAMPLE, seed=2, out_dir=tmp_path)
    part = load_partition(Path(path).read_bytes())
    assert isinstance(part, Partition) and len(part) == 30
