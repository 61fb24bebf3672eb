"""The SimPy model, prices, calibration and planning: real SimPy runs, hand-computed bills."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli.main import main
from emulator.contracts.lambdas import InvocationRecord
from emulator.contracts.runrecord import RunRecord
from sim.asl import read_workflow
from sim.calibrate import fit
from sim.evidence import observations_from_cloudwatch
from sim.model import JobSpec, simulate
from sim.params import ModelParams, reference_params
from sim.plan import pareto_front, recommend, sweep
from sim.prices import PriceTable, Usage, bill_for_record, bill_for_usage, load_prices

ASL = Path(__file__).resolve().parent.parent / "statemachines" / "data_parallel.asl.json"
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
    kw.setdefault("timeout_s", 900.0)
    return JobSpec(data_size_bytes=n_workers * 25_000_000, partition_size_bytes=25_000_000, **kw)


def write_asl(tmp_path: Path, edit) -> str:
    definition = json.loads(ASL.read_text())
    edit(definition)
    path = tmp_path / "machine.asl.json"
    path.write_text(json.dumps(definition))
    return str(path)


def test_same_flags_same_job_as_run():
    # `run --workers 8 --data-size 100MB` runs 8 ranks of 12.5 MB; `simulate` models the same job
    # (every command's flags: tests/test_job_contract.py).
    result = simulate(JobSpec(data_size_bytes=100_000_000, workers=8), seed=0)
    assert result.spec.world == 8 and len(result.worker_invocations) == 8
    assert {w["bytes_read"] for w in result.worker_invocations} == {12_500_000}
    # A rest smaller than one sample makes no partition (worker/layout.py), so no rank either.
    edge = simulate(JobSpec(data_size_bytes=25_000_001, partition_size_bytes=25_000_000), seed=0)
    assert edge.spec.partitions == 1 and len(edge.worker_invocations) == 1


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = (simulate(spec(200), seed=s) for s in (1, 1, 2))
    assert a.makespan_s == b.makespan_s and a.bill.total == b.bill.total
    assert a.makespan_s != c.makespan_s


def test_the_asl_is_read_not_restated(tmp_path):
    flow = read_workflow(ASL)
    assert [r.max_attempts for r in flow.retriers_for("initialize")] == [3]
    assert [r.max_attempts for r in flow.retriers_for("summarize")] == [3]
    throttled, crashed = flow.retriers_for("worker")
    assert "Lambda.TooManyRequestsException" in throttled.error_equals and crashed.error_equals == ("Runtime.ExitError",)
    assert throttled.max_attempts == 6 and throttled.max_delay_s == 30 and throttled.jitter == "FULL"
    assert crashed.max_attempts == 2 and crashed.max_delay_s == 10 and crashed.jitter == "FULL"
    assert flow.max_concurrency_path == "$.max_concurrency" and flow.tolerated_failure_percentage == 100
    assert not flow.express_children and flow.parent_transitions == 5 and flow.child_transitions == 1

    def express(d):
        d["States"]["Infer"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "EXPRESS"
        d["States"]["Infer"]["MaxConcurrency"] = 7
        del d["States"]["Infer"]["MaxConcurrencyPath"]
    other = read_workflow(write_asl(tmp_path, express))
    assert other.express_children and other.max_concurrency == 7


def test_transitions_standard_and_express_children(tmp_path):
    # Standard: Initialize, Infer, Summarize, AllRanksDone, Done + one InferPartition per child.
    standard = simulate(spec(50, noise=False), seed=0)
    assert standard.status == "SUCCEEDED" and standard.usage.sfn_transitions == 5 + 50
    # Express children: the parent's 5 Standard transitions stay billed; children are requests + duration.
    express = simulate(spec(50, noise=False, express_children=True), seed=0)
    assert express.usage.sfn_transitions == 5 and express.usage.sfn_express_requests == 50
    items = {line.item for line in express.bill.lines}
    assert "Step Functions Express requests" in items and "Step Functions Standard transitions" in items


def test_max_concurrency_comes_from_the_definition(tmp_path):
    def literal(d):
        d["States"]["Infer"]["MaxConcurrency"] = 5
        del d["States"]["Infer"]["MaxConcurrencyPath"]
    result = simulate(spec(20, definition=write_asl(tmp_path, literal), max_concurrency=20), seed=0)
    assert result.peak_concurrency <= 5 + 1  # + Initialize/Summarize never overlap the Map
    assert max(r for _, r in result.concurrency) <= 5


def test_throttles_retry_as_the_asl_says(tmp_path):
    # 3,000 workers all at once (MaxConcurrency 0 = the Map's 10,000) against 1,000 account concurrency.
    # The shipped Retry (6 attempts, up to 30 s apart) rides out the queue of these short workers.
    patient = simulate(spec(3000, max_concurrency=0), seed=0)
    assert patient.throttles > 0 and patient.items_failed == 0 and patient.peak_concurrency == 1000
    assert patient.status == "SUCCEEDED"

    def impatient(d):
        retry = d["States"]["Infer"]["ItemProcessor"]["States"]["InferPartition"]["Retry"][0]
        retry.update(MaxAttempts=1)
    few = simulate(spec(3000, max_concurrency=0, definition=write_asl(tmp_path, impatient)), seed=0)
    assert few.items_failed > 0 and few.failures == {"Lambda.TooManyRequestsException": few.items_failed}
    assert few.status == "FAILED"  # ToleratedFailurePercentage 100: the Map succeeds, Summarize reports the ranks

    def strict(d):
        impatient(d)
        del d["States"]["Infer"]["ToleratedFailurePercentage"]
    failed_map = simulate(spec(3000, max_concurrency=0, definition=write_asl(tmp_path, strict)), seed=0)
    assert failed_map.status == "FAILED" and "Summarize" not in failed_map.steps

    def strict_but_caught(d):
        strict(d)
        task = d["States"]["Infer"]["ItemProcessor"]["States"]["InferPartition"]
        task["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "Gave up"}]
        task["End"] = False
        task["Next"] = "Gave up"
        d["States"]["Infer"]["ItemProcessor"]["States"]["Gave up"] = {"Type": "Pass", "End": True}
    caught = simulate(spec(3000, max_concurrency=0, definition=write_asl(tmp_path, strict_but_caught)), seed=0)
    assert caught.items_failed == 0 and "Summarize" in caught.steps and caught.status == "FAILED"


def test_reserved_concurrency_is_the_workers_own():
    result = simulate(spec(300, reserved_concurrency=100, max_concurrency=300, noise=False), seed=0)
    assert result.peak_concurrency == 100 and result.throttles > 0
    assert all(i["status"] == "success" for i in result.invocations if i["function"] != "worker")


def test_scaling_rate_is_per_function():
    # A burst of 200 new environments per function, refilled at 10/s: worker cold starts never outrun it,
    # while Initialize and Summarize have their own buckets.
    slow = simulate(spec(500, burst=200, scale_rate_per_s=10.0, max_concurrency=500), seed=0)
    starts = sorted(inv["start"] for inv in slow.worker_invocations if inv["cold"])
    assert slow.throttles > 0
    assert all(n + 1 <= 200 + 10.0 * (t - starts[0]) + 1e-6 for n, t in enumerate(starts))
    assert all(inv["status"] == "success" for inv in slow.invocations if inv["function"] != "worker")


def test_cold_then_warm_and_idle_expiry():
    warm = simulate(spec(20, max_concurrency=5, noise=False), seed=0)
    colds = [inv for inv in warm.worker_invocations if inv["cold"]]
    assert len(colds) == 5 and all(inv["init_s"] == 0 for inv in warm.worker_invocations if not inv["cold"])
    assert all(inv["load_s"] > 0 for inv in colds) and all(inv["load_s"] == 0 for inv in warm.worker_invocations if not inv["cold"])
    expired = simulate(spec(20, max_concurrency=5, idle_expiry_s=0.0, noise=False), seed=0)
    assert expired.cold_starts == 20


def test_phases_memory_batch_and_read_mode():
    p = ModelParams()
    small, big = (simulate(spec(10, memory_mb=m, noise=False), p, seed=0) for m in (1769, 3538))
    per = lambda r: r.worker_invocations[0]["compute_s"]
    assert per(small) / per(big) == pytest.approx(1 + p.parallel_efficiency)
    b32, b512 = (simulate(spec(4, batch_size=b, noise=False), p, seed=0).worker_invocations[0]["compute_s"] for b in (32, 512))
    assert 1.35 <= b32 / b512 <= 1.45  # the measured batch-size effect (prior)
    # Whole-object reads: every rank reads (and deserialises) all 100 MB, computes only its slice.
    whole = simulate(JobSpec(data_size_bytes=100_000_000, workers=4, read_mode="whole", noise=False), p, seed=0)
    ranked = simulate(JobSpec(data_size_bytes=100_000_000, workers=4, noise=False), p, seed=0)
    w, r = whole.worker_invocations[0], ranked.worker_invocations[0]
    assert w["bytes_read"] == 100_000_000 and r["bytes_read"] == 25_000_000
    assert w["deserialize_s"] == pytest.approx(4 * r["deserialize_s"]) and w["compute_s"] == pytest.approx(r["compute_s"])
    assert w["max_memory_used_mb"] == pytest.approx(p.max_memory_mb(100_000_000))


def test_oom_timeouts_and_stragglers():
    oom = simulate(spec(4, memory_mb=256), seed=0)
    assert oom.items_failed == 4 and {i["error"] for i in oom.worker_invocations} == {"Runtime.OutOfMemory"}
    late = simulate(spec(4, timeout_s=1.0), seed=0)
    assert {i["status"] for i in late.worker_invocations} == {"timeout"}
    assert all(i["duration_s"] == 1.0 for i in late.worker_invocations)
    tail = ModelParams(straggler_prob=0.1, straggler_factor=3.0, straggler_sigma=0.0, cpu_sigma=0.01)
    computes = sorted(i["compute_s"] for i in simulate(spec(400), tail, seed=0).worker_invocations)
    median = computes[len(computes) // 2]
    slow = [c for c in computes if c > 2 * median]
    assert 20 <= len(slow) <= 60 and max(computes) / median == pytest.approx(3.0, rel=0.1)


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
    with pytest.raises(ValueError, match="read mode"):
        simulate(spec(1, read_mode="some"))


# -- calibration -------------------------------------------------------------------------------

def test_calibration_from_a_cloudwatch_export():
    lines = [SEED_REPORT, "START RequestId: x Version: $LATEST",
             SEED_REPORT.replace("620.23", "700.00").replace("Init Duration: 486.66 ms\t", "")]
    obs = observations_from_cloudwatch(lines, 1_000_000)
    assert [o.duration_s for o in obs] == pytest.approx([0.62023, 0.7]) and obs[0].init_s == pytest.approx(0.48666)
    assert [o.max_memory_mb for o in obs] == [89, 89]
    fitted = fit(obs)
    assert fitted.init_median_s == pytest.approx(0.48666)
    assert fitted.sources["init_median_s"].startswith("fitted") and fitted.source_of("compute_s_per_sample_vcpu") == "prior"
    assert any("compute per sample" in u for u in fitted.unidentified)


# -- planning and the CLI ---------------------------------------------------------------------------

def test_sweep_pareto_and_recommendation():
    base = JobSpec(data_size_bytes=20_000_000_000, max_concurrency=1000, timeout_s=900)
    candidates = sweep(base, [1024, 4096], [25_000_000, 100_000_000], [1000], ModelParams(), PriceTable(), seeds=2)
    front = pareto_front(candidates)
    assert front and all(not any(o.cost_p50_usd < c.cost_p50_usd and o.makespan_p95_s < c.makespan_p95_s
                                 for o in candidates) for c in front)
    picks = recommend(candidates, deadline_s=10_000)
    assert picks["cost"][0].cost_p50_usd == min(c.cost_p50_usd for c in front)
    assert picks["speed"][0].makespan_p95_s == min(c.makespan_p95_s for c in front)


def test_cli_simulate_plan_calibrate(tmp_path, capsys):
    assert main(["simulate", "--data-size", "1GB", "--partition-size", "25MB", "--memory", "10240", "--seeds", "2",
                 "--gantt", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert "makespan p50 / p95" in out and "Lambda compute" in out and (tmp_path / "g" / "gantt.png").exists()
    assert "parameters: CosmicAI on AWS" in out and "Max Memory Used" in out and "state machine:" in out
    # The shipped calibration is CosmicAI's 5.9 GB model: 2,048 MB runs out of memory, says so and what to pass.
    assert main(["simulate", "--data-size", "100MB", "--workers", "4", "--seeds", "1"]) == 1
    out = capsys.readouterr().out
    assert "why it failed: 4 items failed on Runtime.OutOfMemory" in out and "pass --memory 5,952 or more" in out
    assert main(["simulate", "--data-size", "100MB", "--workers", "4", "--seeds", "1", "--memory", "5952"]) == 0
    assert "why it failed" not in capsys.readouterr().out
    assert main(["plan", "--data-size", "5GB", "--deadline", "10min", "--memories", "8192,10240",
                 "--partition-sizes", "25MB,50MB", "--seeds", "1", "--out", str(tmp_path / "plan")]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "cost:" in out and (tmp_path / "plan" / "sweep_cost_makespan.svg").exists()
    assert "parameters:" in out
    assert main(["calibrate", "--reference", "-o", str(tmp_path / "cal.json"), "--plot", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "not identified" in out and "leave-one-out" in out and "B/sample" in out
    assert "ONE cold invocation" in out and "held-out check: time outside the Map" in out and ": inside;" in out
    assert "child start rate: only bounded above" in out
    rebuilt = ModelParams.load(tmp_path / "cal.json")
    assert rebuilt.source.startswith("CosmicAI on AWS")
    assert rebuilt.child_start_rate_per_s == pytest.approx(reference_params().child_start_rate_per_s)
    assert main(["simulate", "--data-size", "1500MB", "--partition-size", "1MB", "--memory", "10240", "--seeds", "1",
                 "--summarize-reads", "list-page", "--control-memory", "1769", "--max-concurrency", "500"]) == 0
    assert "results Summarize never reads" in capsys.readouterr().out  # 1,500 ranks, one page of 1,000
    assert main(["simulate", "--data-size", "100MB", "--workers", "41", "--memory", "10240", "--seeds", "1",
                 "--control-timeout", "1"]) == 1
    assert "why it failed: Summarize timed out (Sandbox.Timedout) after 1 s" in capsys.readouterr().out
    assert main(["simulate", "--data-size", "100MB", "--control-timeout", "901"]) == 2
    assert main(["simulate", "--data-size", "banana"]) == 2
    assert "not understood" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "nothing")]) == 2
    assert main(["simulate", "--definition", str(tmp_path / "none.json")]) == 2
    (tmp_path / "summarize.txt").write_text(SEED_REPORT + "\n")
    assert main(["calibrate", "--logs", str(tmp_path / "summarize.txt"), "--log-role", "summarize", "--log-world", "41",
                 "-o", str(tmp_path / "s.json")]) == 0
    assert ModelParams.load(tmp_path / "s.json").sources["control_init_median_s"].startswith("fitted")


def test_timeline_is_readable_at_10000_workers(tmp_path):
    import time

    from sim.plots import plot_gantt, plot_sweep

    result = simulate(JobSpec(data_size_bytes=10_000 * 25_000_000, memory_mb=10240, timeout_s=900, max_concurrency=1000),
                      ModelParams(source="test parameters"), seed=0)
    start = time.perf_counter()
    paths = plot_gantt(result, tmp_path)
    assert time.perf_counter() - start < 30 and all(p.stat().st_size > 0 for p in paths)
    svg = (tmp_path / "gantt.svg").read_text()
    assert "parameters: test parameters" in svg and "concurrency limit 1,000" in svg and "workers in phase" in svg
    base = JobSpec(data_size_bytes=2_000_000_000, max_concurrency=1000, timeout_s=900)
    candidates = sweep(base, [1024, 4096], [25_000_000, 100_000_000], [1000], ModelParams(), PriceTable(), seeds=1)
    picks = recommend(candidates, None)
    plot_sweep(candidates, tmp_path, None, picks, "sweep parameters")
    svg = (tmp_path / "sweep_cost_makespan.svg").read_text()
    assert "Pareto front" in svg and "speed:" in svg and "partition size" in svg and "parameters: sweep parameters" in svg
