"""A failed simulation says why and what to change; following the advice makes the same job succeed."""

from __future__ import annotations

import re
from dataclasses import replace

from sim.diagnose import diagnose
from sim.model import JobSpec, simulate
from sim.params import ModelParams, reference_params


def _one(lines: list[str], error: str) -> str:
    [line] = [line for line in lines if error in line]
    return line


def test_out_of_memory_names_the_memory_that_fits():
    p = reference_params()  # CosmicAI's model: about 5.9 GB before any input
    spec = JobSpec(data_size_bytes=400_000_000, workers=4, memory_mb=2048, timeout_s=900, noise=False)
    failed = simulate(spec, p)
    line = _one(diagnose(failed, p), "Runtime.OutOfMemory")
    memory = int(re.search(r"pass --memory ([0-9,]+)", line).group(1).replace(",", ""))
    assert line.startswith("4 items failed") and 6_000 < memory <= 10_240 and memory % 64 == 0
    assert simulate(replace(spec, memory_mb=memory), p).status == "SUCCEEDED"


def test_out_of_memory_past_lambdas_largest_size_asks_for_smaller_partitions():
    p = ModelParams(memory_base_mb=400, memory_per_input_mb=2.0)
    spec = JobSpec(data_size_bytes=10_000_000_000, partition_size_bytes=5_000_000_000, memory_mb=10240, timeout_s=900,
                   noise=False)
    line = _one(diagnose(simulate(spec, p), p), "Runtime.OutOfMemory")
    assert "over Lambda's 10,240 MB: use smaller partitions" in line


def test_account_concurrency_throttling_names_a_max_concurrency_that_completes():
    p = ModelParams(compute_s_per_sample_vcpu=0.2)  # workers of about 40 s: the queue outlasts the Retry
    spec = JobSpec(data_size_bytes=3000 * 25_000_000, partition_size_bytes=25_000_000, memory_mb=3538, timeout_s=900,
                   max_concurrency=0, account_concurrency=1000)
    failed = simulate(spec, p)
    line = _one(diagnose(failed, p), "Lambda.TooManyRequestsException")
    assert "more workers at once than the account's concurrency (1,000)" in line
    cap = int(re.search(r"--max-concurrency ([0-9,]+)", line).group(1).replace(",", ""))
    fixed = simulate(replace(spec, max_concurrency=cap), p)
    assert fixed.status == "SUCCEEDED" and fixed.throttles == 0


def test_scaling_rate_throttling_points_at_the_retry():
    # Enough concurrency, but children start faster than 100 new environments/s for long workers.
    p = ModelParams(child_start_rate_per_s=1000.0, compute_s_per_sample_vcpu=0.2)
    spec = JobSpec(data_size_bytes=5000 * 10_000_000, partition_size_bytes=10_000_000, memory_mb=3538, timeout_s=900,
                   max_concurrency=0, account_concurrency=10_000, noise=False)
    failed = simulate(spec, p)
    line = _one(diagnose(failed, p), "Lambda.TooManyRequestsException")
    assert "faster than Lambda adds environments" in line and "Retry" in line
    assert simulate(spec, replace(p, child_start_rate_per_s=90.0)).items_failed == 0


def test_worker_timeout_and_a_success_say_nothing_wrong():
    p = ModelParams()
    spec = JobSpec(data_size_bytes=100_000_000, workers=2, memory_mb=2048, timeout_s=1, noise=False)
    failed = simulate(spec, p)
    assert "raise --timeout" in _one(diagnose(failed, p), "Sandbox.Timedout")
    ok = simulate(replace(spec, timeout_s=900), p)
    assert ok.status == "SUCCEEDED" and diagnose(ok, p) == []
