"""The SimPy model, prices, calibration and planning: real SimPy runs, hand-computed bills."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from emulator.cli.main import main
from emulator.contracts.lambdas import InvocationRecord
from emulator.contracts.runrecord import RunRecord, save
from sim.calibrate import cross_validate, fit, load_observations, observations_from_cloudwatch, predict_duration
from sim.model import BYTES_PER_SAMPLE, JobSpec, simulate
from sim.params import ModelParams
from sim.plan import pareto_front, recommend, sweep
from sim.prices import PriceTable, Usage, bill_for_record, bill_for_usage, load_prices

REFERENCE = Path(__file__).resolve().parent.parent / "sim" / "reference"
SEED_REPORT = ("REPORT RequestId: 3f2b1c4e-0a1b-4c2d-9e8f-000000000001\tDuration: 620.23 ms\tBilled Duration: 621 ms\t"
               "Memory Size: 128 MB\tMax Memory Used: 89 MB\tInit Duration: 486.66 ms\t")


# -- prices ------------------------------------------------------------------------------

def test_seed_bill_by_hand():
    # 41 invocations x 621 ms billed x 128 MB: 41 * 0.621 * 0.125 GB-s = 3.182625 GB-s.
    bill = bill_for_usage(Usage(lambda_gb_seconds=41 * 0.621 * 0.125, lambda_requests=41), PriceTable())
    lines = {line.item: line.cost for line in bill.lines}
    assert lines["Lambda compute (x86_64)"] == pytest.approx(3.182625 * 0.0000166667)
    assert lines["Lambda requests"] == pytest.approx(41 * 0.20 / 1e6)
    assert bill.total == pytest.approx(3.182625 * 0.0000166667 + 41 * 2e-7)


def test_bill_for_a_record_uses_billed_durations_and_history():
    invs = [InvocationRecord("w", f"r{i}", 0, 1, 620.23, 621, 128, 89, 486.66, "success") for i in range(41)]
    history = [{"type": t} for t in ("ExecutionStarted", "TaskStateEntered", "MapStateEntered", "TaskStateEntered", "ExecutionSucceeded")]
    record = RunRecord("r", "aws", functions={"w": {"role": "worker"}}, invocations=invs, history=history,
                       map_runs=[{"children": [{"history": [{"type": "TaskStateEntered"}]}] * 41}])
    bill = bill_for_record(record, PriceTable())
    lines = {line.item: line for line in bill.lines}
    assert lines["Lambda compute (x86_64)"].quantity == pytest.approx(41 * 0.621 * 0.125)
    assert lines["Step Functions Standard transitions"].quantity == 3 + 41


def test_tiers_free_tier_and_overrides(tmp_path):
    prices = PriceTable()
    assert prices.lambda_compute_cost(1e9, already_used_gb_s=5.5e9) == pytest.approx(0.5e9 * 0.0000166667 + 0.5e9 * 0.000015)
    free = bill_for_usage(Usage(lambda_gb_seconds=1000, lambda_requests=10, sfn_transitions=100), prices, free_tier=True)
    assert free.total == pytest.approx(0.0)
    (tmp_path / "p.json").write_text(json.dumps({"lambda_per_request": 1e-6}))
    assert load_prices(tmp_path / "p.json").lambda_per_request == 1e-6
    (tmp_path / "bad.json").write_text(json.dumps({"lambda_price": 1}))
    with pytest.raises(ValueError, match="unknown field"):
        load_prices(tmp_path / "bad.json")


# -- the model -------------------------------------------------------------------------------

def spec(n_workers: int, **kw) -> JobSpec:
    return JobSpec(data_size_bytes=n_workers * 25_000_000, **kw)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = (simulate(spec(200), seed=s) for s in (1, 1, 2))
    assert a.makespan_s == b.makespan_s and a.bill.total == b.bill.total
    assert a.makespan_s != c.makespan_s


def test_concurrency_limit_and_scaling_rate_show_in_the_timeline():
    # 3,000 workers, MaxConcurrency 1,000: never more than 1,000 run; the second wave reuses warm environments.
    result = simulate(spec(3000, max_concurrency=1000), seed=0)
    assert result.peak_concurrency == 1000 and result.items_failed == 0
    assert result.cold_starts == 1000  # 1,000 environments, then warm reuse
    assert max(running for _, running in result.concurrency) == 1000
    # A burst of 200 new environments, refilled at 10/s: cold starts never outrun the bucket.
    slow = simulate(spec(500, burst=200, scale_rate_per_s=10.0, retry_max_attempts=20, retry_interval_s=1.0), seed=0)
    starts = sorted(inv["start"] for inv in slow.worker_invocations if inv["cold"])
    assert len(starts) > 200 and slow.throttles > 0
    assert all(n + 1 <= 200 + 10.0 * (t - starts[0]) + 1e-6 for n, t in enumerate(starts))


def test_over_the_account_limit_throttles_and_fails_items_like_the_asl_retry():
    result = simulate(spec(3000), seed=0)  # Distributed Map's default MaxConcurrency (10,000) > 1,000
    assert result.throttles > 0 and result.items_failed > 0 and result.peak_concurrency == 1000


def test_cold_then_warm_and_idle_expiry():
    warm = simulate(spec(20, max_concurrency=5, noise_sigma=0.0), seed=0)
    colds = [inv for inv in warm.worker_invocations if inv["cold"]]
    assert len(colds) == 5 and all(inv["init_s"] == 0 for inv in warm.worker_invocations if not inv["cold"])
    expired = simulate(spec(20, max_concurrency=5, idle_expiry_s=0.0, noise_sigma=0.0), seed=0)
    assert expired.cold_starts == 20


def test_more_memory_is_faster_per_worker_and_oom_and_timeouts():
    small, big = (simulate(spec(10, memory_mb=m, noise_sigma=0.0), seed=0) for m in (1769, 3538))
    per = lambda r: r.worker_invocations[0]["compute_s"]
    assert per(small) / per(big) == pytest.approx(1 + ModelParams().parallel_efficiency)
    oom = simulate(spec(4, memory_mb=256), seed=0)
    assert oom.items_failed == 4 and {i["error"] for i in oom.worker_invocations} == {"Runtime.OutOfMemory"}
    late = simulate(spec(4, timeout_s=1.0), seed=0)
    assert {i["status"] for i in late.worker_invocations} == {"timeout"}
    assert all(i["duration_s"] == 1.0 for i in late.worker_invocations)


def test_collectives_need_every_rank_running():
    ok = simulate(spec(16, comm="direct"), seed=0)
    assert ok.items_failed == 0 and all(i["comm_s"] > 0 for i in ok.worker_invocations)
    assert any(line.item.startswith("Fargate") for line in ok.bill.lines)
    stuck = simulate(spec(16, comm="direct", max_concurrency=8, timeout_s=30), seed=0)
    assert stuck.items_failed == 16


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="memory"):
        simulate(spec(1, memory_mb=64))
    with pytest.raises(ValueError, match="comm"):
        simulate(spec(1, comm="pigeon"))


# -- calibration -------------------------------------------------------------------------------

def synthetic_record(run_id: str, truth: ModelParams, sizes_mb: list[int], memory_mb: int = 3538) -> RunRecord:
    invs, ranks = [], []
    for i, mb in enumerate(sizes_mb):
        nbytes = mb * 1_000_000
        rows = nbytes / BYTES_PER_SAMPLE
        cpus = memory_mb / 1769
        compute = rows * truth.compute_s_per_sample_vcpu / truth.speedup(memory_mb)
        read = nbytes / truth.s3_bandwidth_bytes_s
        duration = truth.overhead_s + truth.model_load_s + read + compute
        rid = f"{run_id}-{i}"
        invs.append(InvocationRecord("w", rid, 0, duration, duration * 1000, math.ceil(duration * 1000), memory_mb, 500,
                                     truth.init_median_s * 1000 * (1.1 if i % 2 else 0.9), "success"))
        ranks.append({"request_id": rid, "rows": rows, "bytes_read": nbytes, "cpus": cpus, "compute_seconds": compute,
                      "s3_read_seconds": read, "model_load_seconds": truth.model_load_s,
                      "comm": {"pairing_seconds": 2 * truth.pairing_latency_s}})
    return RunRecord(run_id, "local", functions={"w": {"role": "worker"}}, invocations=invs,
                     summary={"ranks": ranks, "world_size": len(sizes_mb)})


def test_calibration_recovers_known_parameters(tmp_path):
    truth = ModelParams(compute_s_per_sample_vcpu=0.0123, s3_bandwidth_bytes_s=55e6, model_load_s=0.4, overhead_s=0.07,
                        init_median_s=2.2, pairing_latency_s=0.031)
    for name, sizes in (("a", [5, 10, 20]), ("b", [15, 25, 40])):
        save(synthetic_record(name, truth, sizes), tmp_path / name)
    obs = load_observations([tmp_path / "a", tmp_path / "b"])
    fitted = fit(obs)
    assert fitted.compute_s_per_sample_vcpu == pytest.approx(0.0123, rel=1e-3)
    assert fitted.s3_bandwidth_bytes_s == pytest.approx(55e6, rel=1e-3)
    assert fitted.model_load_s == pytest.approx(0.4) and fitted.overhead_s == pytest.approx(0.07, abs=2e-3)
    inits = [o.init_s for o in obs]
    assert fitted.init_median_s == pytest.approx(math.exp(sum(map(math.log, inits)) / len(inits)))
    assert fitted.pairing_latency_s == pytest.approx(0.031)  # 3 ranks: 2 pairing rounds
    assert fitted.residuals["mape_pct"] < 1.0
    assert all(err["mape_pct"] < 1.0 for err in cross_validate(obs).values())


def test_reference_figures_predict_75_and_100_mb_within_15_percent():
    train = load_observations([REFERENCE / "cosmicai_10240mb_25mb.json", REFERENCE / "cosmicai_10240mb_50mb.json"])
    params = fit(train)
    for mb, reported in ((75, (16.0, 18.0)), (100, (21.0, 23.0))):
        [obs, *_] = load_observations([REFERENCE / f"cosmicai_10240mb_{mb}mb.json"])
        predicted = predict_duration(params, obs)
        midpoint = sum(reported) / 2
        assert abs(predicted - midpoint) / midpoint < 0.15, (mb, predicted)


def test_calibration_from_a_cloudwatch_export():
    lines = [SEED_REPORT, "START RequestId: x Version: $LATEST",
             SEED_REPORT.replace("620.23", "700.00").replace("Init Duration: 486.66 ms\t", "")]
    obs = observations_from_cloudwatch(lines, 1_000_000)
    assert [o.duration_s for o in obs] == pytest.approx([0.62023, 0.7]) and obs[0].init_s == pytest.approx(0.48666)
    assert fit(obs).init_median_s == pytest.approx(0.48666)


# -- planning and the CLI ---------------------------------------------------------------------------

def test_sweep_pareto_and_recommendation():
    base = JobSpec(data_size_bytes=20_000_000_000)
    candidates = sweep(base, [1024, 4096], [25_000_000, 100_000_000], [1000], ModelParams(), PriceTable(), seeds=2)
    front = pareto_front(candidates)
    assert front and all(not any(o.cost_p50_usd < c.cost_p50_usd and o.makespan_p95_s < c.makespan_p95_s
                                 for o in candidates) for c in front)
    picks = recommend(candidates, deadline_s=10_000)
    assert picks["cost"][0].cost_p50_usd == min(c.cost_p50_usd for c in front)
    assert picks["speed"][0].makespan_p95_s == min(c.makespan_p95_s for c in front)


def test_cli_simulate_plan_calibrate(tmp_path, capsys):
    assert main(["simulate", "--data-size", "1GB", "--partition-size", "25MB", "--memory", "2048", "--seeds", "2",
                 "--gantt", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "makespan p50 / p95" in out and "Lambda compute" in out and (tmp_path / "g" / "gantt.png").exists()
    assert main(["plan", "--data-size", "5GB", "--deadline", "10min", "--memories", "1024,2048",
                 "--partition-sizes", "25MB,50MB", "--seeds", "1", "--out", str(tmp_path / "plan")]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "cost:" in out and (tmp_path / "plan" / "sweep_cost_makespan.svg").exists()
    assert main(["calibrate", "--reference", "-o", str(tmp_path / "cal.json"), "--plot", str(tmp_path / "c")]) == 0
    assert ModelParams.load(tmp_path / "cal.json").source.startswith("worker durations only")
    assert main(["simulate", "--data-size", "banana"]) == 2
    assert "not understood" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "nothing")]) == 2
