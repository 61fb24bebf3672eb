"""``lambdatwin simulate``, ``plan`` and ``calibrate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from emulator.contracts.units import format_size, parse_duration, parse_size


def _sizes(text: str) -> list[int]:
    return [parse_size(t) for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{text!r} must be a comma-separated list of integers") from None


def _job_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-size", required=True, help="total data, e.g. 12.6GB, 1TB")
    p.add_argument("--workers", type=int, default=None, help="world size (default: one per partition)")
    p.add_argument("--timeout", type=float, default=900.0, help="worker Timeout in s (default 900)")
    p.add_argument("--account-concurrency", type=int, default=1000, help="account concurrency limit (default 1000)")
    p.add_argument("--comm", choices=("none", "direct", "relay", "s3"), default="none", help="collectives channel (default none)")
    p.add_argument("--express", action="store_true", help="Distributed Map children as Express workflows")
    p.add_argument("--failure-rate", type=float, default=0.0, help="probability an invocation crashes (default 0)")
    p.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    p.add_argument("--calibration", type=Path, default=None, help="calibration file from `lambdatwin calibrate`")
    p.add_argument("--prices", type=Path, default=None, help="JSON file overriding price table fields")
    p.add_argument("--free-tier", action="store_true", help="subtract the monthly free tier")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate``, ``plan`` and ``calibrate``."""
    sim = sub.add_parser("simulate", help="predict makespan, concurrency and the bill of a job at any scale (SimPy)",
                         description="Simulate the Step Functions + Lambda job and print makespan p50/p95 over seeds, "
                                     "cold starts, peak concurrency, throttles and an itemised bill.")
    _job_arguments(sim)
    sim.add_argument("--partition-size", default="25MB", help="partition size (default 25MB)")
    sim.add_argument("--memory", type=int, default=2048, help="worker MemorySize in MB (default 2048)")
    sim.add_argument("--max-concurrency", type=int, default=None, help="Map MaxConcurrency (default 10000, as Distributed Map; above the account concurrency, invocations are throttled)")
    sim.add_argument("--seeds", type=int, default=5, help="simulations with seeds 0..N-1 (default 5)")
    sim.add_argument("--gantt", type=Path, default=None, help="write a Gantt timeline (PNG+SVG) into this folder")
    sim.set_defaults(func=cmd_simulate)

    plan = sub.add_parser("plan", help="sweep memory x partition size x concurrency; Pareto front and a recommendation",
                          description="Sweep configurations, print the Pareto front of cost vs p95 makespan and the "
                                      "cost/speed/balanced picks with reasons, and save plots.")
    _job_arguments(plan)
    plan.add_argument("--deadline", default=None, help="p95 makespan to meet, e.g. 5min")
    plan.add_argument("--memories", default="1024,2048,4096,10240", help="MemorySize values in MB")
    plan.add_argument("--partition-sizes", default="25MB,50MB,100MB", help="partition sizes")
    plan.add_argument("--max-concurrencies", default="1000", help="Map MaxConcurrency values")
    plan.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    plan.add_argument("--out", type=Path, default=Path("plan"), help="folder for plots (default ./plan)")
    plan.set_defaults(func=cmd_plan)

    cal = sub.add_parser("calibrate", help="fit the model to measured run records (and CloudWatch exports)",
                         description="Fit per-sample compute, S3 bandwidth, Init Duration, overhead from run records; "
                                     "print residuals and leave-one-run-out errors; save a calibration file.")
    cal.add_argument("runs", nargs="*", type=Path, help="runs/<id> folders or record.json files")
    cal.add_argument("--reference", action="store_true", help="include the shipped CosmicAI reference records")
    cal.add_argument("--logs", type=Path, action="append", default=[], help="a CloudWatch log export with REPORT lines")
    cal.add_argument("--partition-size", default="25MB", help="partition size the --logs invocations read (default 25MB)")
    cal.add_argument("-o", "--output", type=Path, default=Path("calibration.json"), help="where to save (default calibration.json)")
    cal.add_argument("--plot", type=Path, default=None, help="write predicted-vs-measured plot into this folder")
    cal.set_defaults(func=cmd_calibrate)


def _fail(message: str) -> int:
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return 2


def _base_spec(args: argparse.Namespace, **kw):
    from sim.model import JobSpec

    spec = JobSpec(data_size_bytes=parse_size(args.data_size), workers=args.workers, timeout_s=args.timeout,
                   account_concurrency=args.account_concurrency, comm=args.comm, express_children=args.express,
                   failure_rate=args.failure_rate, arch=args.arch, **kw)
    spec.validate()
    return spec


def _load(args: argparse.Namespace):
    from sim.params import ModelParams
    from sim.prices import load_prices

    params = ModelParams.load(args.calibration) if args.calibration else ModelParams()
    return params, load_prices(args.prices)


def cmd_simulate(args: argparse.Namespace) -> int:
    from sim.plan import percentile, run_seeds

    try:
        spec = _base_spec(args, partition_size_bytes=parse_size(args.partition_size), memory_mb=args.memory,
                          max_concurrency=args.max_concurrency)
        params, prices = _load(args)
        if args.seeds < 1:
            raise ValueError("--seeds must be at least 1")
    except ValueError as exc:
        return _fail(str(exc))
    results = run_seeds(spec, params, prices, args.seeds)
    spans = [r.makespan_s for r in results]
    median = sorted(results, key=lambda r: r.makespan_s)[len(results) // 2]
    console = Console(width=None if Console().is_terminal else 140)
    table = Table(title=f"{format_size(spec.data_size_bytes)} in {spec.partitions} partitions of "
                        f"{format_size(spec.partition_size_bytes)}, {spec.world} workers at {spec.memory_mb} MB "
                        f"({args.seeds} seeds; params: {params.source})", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    table.add_row("makespan p50 / p95", f"{percentile(spans, 50):.1f} s / {percentile(spans, 95):.1f} s")
    table.add_row("cold starts", str(median.cold_starts))
    table.add_row("peak concurrency", str(median.peak_concurrency))
    table.add_row("throttles", str(median.throttles))
    table.add_row("failed items", str(median.items_failed))
    table.add_row("cost p50", f"${sorted(r.bill.total for r in results)[len(results) // 2]:.4f}")
    console.print(table)
    bill = Table(title=f"Itemised bill (median run, prices {prices.as_of})")
    for col in ("item", "quantity", "unit", "unit price", "cost USD"):
        bill.add_column(col, justify="left" if col in ("item", "unit") else "right")
    for line in median.bill.lines:
        bill.add_row(line.item, f"{line.quantity:,.4f}", line.unit, f"{line.unit_price:.10g}", f"{line.cost:.6f}")
    bill.add_row("total", "", "", "", f"{median.bill.total:.6f}")
    console.print(bill)
    if args.gantt:
        from sim.plots import plot_gantt

        console.print("gantt: " + ", ".join(map(str, plot_gantt(median, args.gantt))))
    return 0 if median.items_failed == 0 else 1


def cmd_plan(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from sim.model import simulate
    from sim.plan import pareto_front, recommend, sweep
    from sim.plots import plot_gantt, plot_sweep

    try:
        base = _base_spec(args)
        params, prices = _load(args)
        deadline = parse_duration(args.deadline) if args.deadline else None
        memories, parts, concs = _ints(args.memories), _sizes(args.partition_sizes), _ints(args.max_concurrencies)
        if not (memories and parts and concs):
            raise ValueError("each sweep list needs at least one value")
    except ValueError as exc:
        return _fail(str(exc))
    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("simulating configurations", total=len(memories) * len(parts) * len(concs))
        candidates = sweep(base, memories, parts, concs, params, prices, args.seeds,
                           lambda done, total: bar.update(task, completed=done))
    console = Console(width=None if Console().is_terminal else 140)
    table = Table(title="Pareto front: cost vs p95 makespan")
    for col in ("memory MB", "partition", "max conc.", "workers", "makespan p50 s", "p95 s", "cost USD"):
        table.add_column(col, justify="right")
    for c in pareto_front(candidates):
        table.add_row(str(c.memory_mb), format_size(c.partition_size_bytes), str(c.max_concurrency), str(c.workers),
                      f"{c.makespan_p50_s:.1f}", f"{c.makespan_p95_s:.1f}", f"{c.cost_p50_usd:.4f}")
    console.print(table)
    picks = recommend(candidates, deadline)
    if "cost" not in picks:
        console.print(f"[red]no configuration meets the deadline[/red] ({args.deadline}); fastest shown below")
    for strategy, (c, why) in picks.items():
        console.print(f"[bold]{strategy}[/bold]: {c.memory_mb} MB, {format_size(c.partition_size_bytes)} partitions, "
                      f"max concurrency {c.max_concurrency} ({c.workers} workers) - {why}")
    paths = plot_sweep(candidates, args.out, deadline)
    best = picks.get("balanced", picks.get("speed"))
    if best:
        from dataclasses import replace

        c = best[0]
        paths += plot_gantt(simulate(replace(base, memory_mb=c.memory_mb, partition_size_bytes=c.partition_size_bytes,
                                             max_concurrency=c.max_concurrency), params, 0, prices), args.out)
    console.print("plots: " + ", ".join(map(str, paths)))
    return 0 if "cost" in picks else 1


def cmd_calibrate(args: argparse.Namespace) -> int:
    from emulator.contracts.runrecord import RunRecordError
    from sim.calibrate import cross_validate, fit, load_observations, observations_from_cloudwatch, predict_duration

    runs = list(args.runs)
    if args.reference:
        runs += sorted((Path(__file__).parent / "reference").glob("cosmicai_10240mb_*mb.json"))
    try:
        observations = load_observations(runs)
        for log in args.logs:
            observations += observations_from_cloudwatch(log.read_text().splitlines(), parse_size(args.partition_size), run=str(log))
        params = fit(observations)
    except (RunRecordError, ValueError, OSError) as exc:
        return _fail(str(exc))
    params.save(args.output)
    console = Console(width=None if Console().is_terminal else 140)
    table = Table(title=f"Calibration from {len(observations)} worker invocations ({params.source})", show_header=False)
    for name, value in (("compute s/sample/vCPU", f"{params.compute_s_per_sample_vcpu:.5f}"),
                        ("S3 bandwidth", f"{params.s3_bandwidth_bytes_s / 1e6:.1f} MB/s"),
                        ("model load", f"{params.model_load_s:.3f} s"), ("overhead", f"{params.overhead_s:.3f} s"),
                        ("init median / sigma", f"{params.init_median_s:.3f} s / {params.init_sigma:.3f}"),
                        ("residuals", json.dumps({k: round(v, 3) for k, v in params.residuals.items()}))):
        table.add_row(name, value)
    console.print(table)
    for run, err in cross_validate(observations).items():
        console.print(f"held out {run}: MAPE {err['mape_pct']:.1f}%, max {err['max_ape_pct']:.1f}%")
    if args.plot:
        from sim.plots import plot_calibration

        paths = plot_calibration([o.duration_s for o in observations], [predict_duration(params, o) for o in observations], args.plot)
        console.print("plot: " + ", ".join(map(str, paths)))
    console.print(f"saved {args.output}")
    return 0
