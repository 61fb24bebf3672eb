"""``lambdatwin simulate``, ``plan`` and ``calibrate``: the CLI over ``sim/``.

The job flags mean what they mean for ``lambdatwin run``: the job is built as
a :class:`~emulator.contracts.job.JobConfig` (same defaults, same partition
size resolution), so ``simulate --workers 8 --data-size 100MB`` models the 8
ranks of 12.5 MB that ``run`` would start.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from emulator.cli.app import add_template_source_arguments, template_fan_out
from emulator.cli.job_args import add_job_arguments, job_config_from_args
from emulator.contracts import aws, flags
from emulator.contracts.errors import ConfigError
from emulator.contracts.job import COMM_MODES, DEFAULT_BATCH_SIZE, DEFAULT_CONTROL_MEMORY_MB, DEFAULT_CONTROL_TIMEOUT_S
from emulator.contracts.runrecord import RunRecordError
from emulator.contracts.units import format_size
from sim import reference
from sim.asl import Workflow, read_workflow
from sim.calibrate import fit, leave_one_out, predict_duration
from sim.diagnose import diagnose
from sim.evidence import load_observations, observations_from_cloudwatch
from sim.model import READ_MODES, SIM_COMM_MODES, JobSpec, simulate
from sim.params import SUMMARIZE_READS, ModelParams, reference_params
from sim.plan import pareto_front, percentile, recommend, run_seeds, sweep
from sim.plots import plot_calibration, plot_gantt, plot_sweep
from sim.prices import PriceTable, bill_for_usage, load_prices


def _list_of(convert: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """A comma-separated list flag whose items are each checked by ``convert``."""
    def parse(text: str) -> list[Any]:
        items = [convert(t.strip()) for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("needs at least one value")
        return items

    return parse


def _simulation_arguments(p: argparse.ArgumentParser) -> None:
    """The job flags of ``lambdatwin run`` (same names, defaults and checks), and what only a simulation needs."""
    add_job_arguments(p, comm_modes=SIM_COMM_MODES)
    p.add_argument("--definition", type=flags.existing_file, default=None,
                   help="state machine ASL file whose Retry, MaxConcurrency and child type are simulated "
                        "(default statemachines/data_parallel.asl.json)")
    p.add_argument("--account-concurrency", type=flags.int_in(1, 10_000_000, "", "the concurrency range"),
                   default=aws.DEFAULT_ACCOUNT_CONCURRENCY,
                   help=f"account concurrency limit (default {aws.DEFAULT_ACCOUNT_CONCURRENCY})")
    p.add_argument("--control-memory", type=flags.memory_mb, default=DEFAULT_CONTROL_MEMORY_MB,
                   help=f"Initialize/Summarize MemorySize in MB (default {DEFAULT_CONTROL_MEMORY_MB})")
    p.add_argument("--control-timeout", type=flags.timeout_s, default=DEFAULT_CONTROL_TIMEOUT_S,
                   help=f"Initialize/Summarize Timeout in seconds (default {DEFAULT_CONTROL_TIMEOUT_S:g})")
    p.add_argument("--express", action=argparse.BooleanOptionalAction, default=None,
                   help="Map children as Express (--express) or Standard (--no-express); default: as the ASL says")
    p.add_argument("--read-mode", choices=READ_MODES, default="rank",
                   help="rank: each worker reads its partitions; whole: each reads the whole object and slices its rank")
    p.add_argument("--summarize-reads", choices=SUMMARIZE_READS, default="keys",
                   help="how Summarize reads the results: keys (worker/summarize.py: every rank's key, threaded), "
                        "list-page (one ListObjectsV2 page, at most 1,000, one by one), list-all (every page, one by one)")
    p.add_argument("--package-mb", type=flags.float_in(0.001, 10_240, "MB", "the package size range"), default=None,
                   help="deployment package or image size in MB (INIT scaling)")
    p.add_argument("--failure-rate", type=flags.float_in(0, 0.999, "", "the probability range"), default=0.0,
                   help="probability an invocation crashes (default 0)")
    p.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    p.add_argument("--calibration", type=flags.existing_file, default=None,
                   help="calibration file from `lambdatwin calibrate` (default: the shipped CosmicAI AWS calibration)")
    p.add_argument("--prices", type=flags.existing_file, default=None,
                   help="JSON file overriding price table fields (see sim/prices.py)")
    p.add_argument("--free-tier", action="store_true", help="subtract the monthly free tier")
    add_template_source_arguments(p, "size the fan-out from this AWS SAM template's Distributed Map and worker "
                                     "function (MemorySize, Timeout, Architectures, MaxConcurrency, Express children)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate``, ``plan`` and ``calibrate``."""
    sim = sub.add_parser("simulate", help="predict makespan, concurrency and the bill of a job at any scale (SimPy)",
                         description="Simulate the Step Functions + Lambda job and print makespan p50/p95 over seeds, "
                                     "phases, cold starts, peak concurrency, throttles, Max Memory Used and an itemised bill.")
    _simulation_arguments(sim)
    sim.add_argument("--seeds", type=flags.int_in(1, 1000, "", "the seeds range"), default=5,
                     help="simulations with seeds 0..N-1 (default 5)")
    sim.add_argument("--gantt", type=flags.writable_dir, default=None, help="write a timeline (PNG+SVG) into this folder")
    sim.set_defaults(func=cmd_simulate)

    plan = sub.add_parser("plan", help="sweep memory x partition size x concurrency; Pareto front and a recommendation",
                          description="Sweep configurations, print the Pareto front of cost vs p95 makespan and the "
                                      "cost/speed/balanced picks with reasons, and save plots.")
    _simulation_arguments(plan)  # --memory, --partition-size, --max-concurrency: the base the sweep varies
    plan.add_argument("--deadline", type=flags.duration, default=None, help="p95 makespan to meet, e.g. 5min")
    plan.add_argument("--memories", type=_list_of(flags.memory_mb), default=[1024, 2048, 4096, 10240],
                      help="MemorySize values in MB (default 1024,2048,4096,10240)")
    plan.add_argument("--partition-sizes", type=_list_of(flags.size), default=[25 * 10**6, 50 * 10**6, 100 * 10**6],
                      help="partition sizes (default 25MB,50MB,100MB)")
    plan.add_argument("--max-concurrencies", type=_list_of(flags.max_concurrency), default=[1000],
                      help="Map MaxConcurrency values (default 1000)")
    plan.add_argument("--seeds", type=flags.int_in(1, 1000, "", "the seeds range"), default=3,
                      help="seeds per configuration (default 3)")
    plan.add_argument("--out", type=flags.writable_dir, default=Path("plan"), help="folder for plots (default ./plan)")
    plan.set_defaults(func=cmd_plan)

    cal = sub.add_parser("calibrate", help="fit the model to run records and CloudWatch REPORT lines",
                         description="Fit each phase (compute, read, deserialise, download, cold starts, memory, "
                                     "orchestration) with its spread from run records and REPORT lines; print what "
                                     "the data could not identify, residuals and leave-one-out errors; save a calibration.")
    cal.add_argument("runs", nargs="*", type=Path, help="runs/<id> folders or record.json files")
    cal.add_argument("--reference", action="store_true", help="include the shipped CosmicAI AWS measurements")
    cal.add_argument("--logs", type=flags.existing_file, action="append", default=[],
                     help="a worker log export with REPORT lines")
    cal.add_argument("--bytes-read", type=flags.size, default=None,
                     help="bytes each --logs invocation read, e.g. 75MB (unknown if omitted)")
    cal.add_argument("--batch-size", type=flags.int_in(1, 1_000_000, "", "the batch size range"),
                     default=DEFAULT_BATCH_SIZE, help="batch size of the --logs invocations")
    cal.add_argument("--log-role", choices=("worker", "initialize", "summarize"), default="worker",
                     help="which function the --logs are from (default worker)")
    cal.add_argument("--package-mb", type=flags.float_in(0.001, 10_240, "MB", "the package size range"), default=None,
                     help="deployment package (zip + layers) or image size of the --logs function in MB "
                          "(INIT by package size)")
    cal.add_argument("--log-world", type=flags.int_in(1, 10_000_000, "", "the world size range"), default=None,
                     help="world size of the job the --logs come from")
    cal.add_argument("--log-summarize-reads", choices=SUMMARIZE_READS, default="keys",
                     help="how the Summarize of --log-role summarize reads the results (as simulate --summarize-reads)")
    cal.add_argument("-o", "--output", type=Path, default=Path("calibration.json"),
                     help="where to save (default calibration.json)")
    cal.add_argument("--plot", type=flags.writable_dir, default=None,
                     help="write predicted-vs-measured plot into this folder")
    cal.set_defaults(func=cmd_calibrate)


def _console() -> Console:
    return Console(width=None if Console().is_terminal else 140)


def spec_from_args(args: argparse.Namespace) -> JobSpec:
    """The JobSpec of parsed ``simulate``/``plan`` flags: ``run``'s JobConfig plus what only a simulation needs.

    Raises:
        ConfigError: a value outside AWS's limits or an impossible layout.
    """
    overrides: dict[str, Any] = {}
    simulation: dict[str, Any] = dict(express_children=args.express, arch=args.arch)
    if args.template:  # the app's own worker and Map, instead of the flags' defaults
        app = template_fan_out(args)
        overrides = dict(worker_memory_mb=app.memory_mb, worker_timeout_s=app.timeout_s)
        if app.max_concurrency is not None:
            overrides["max_concurrency"] = app.max_concurrency
        simulation = dict(express_children=app.express, arch=app.arch)
    config = job_config_from_args(args, comm=args.comm if args.comm in COMM_MODES else "none",
                                  control_memory_mb=args.control_memory, control_timeout_s=args.control_timeout,
                                  account_concurrency=args.account_concurrency, **overrides)
    spec = JobSpec.from_job(config, comm=args.comm, definition=str(args.definition) if args.definition else None,
                            read_mode=args.read_mode, summarize_reads=args.summarize_reads, package_mb=args.package_mb, failure_rate=args.failure_rate,
                            **simulation)
    spec.validate()
    return spec


def _load(args: argparse.Namespace) -> tuple[ModelParams, PriceTable, Workflow]:
    """Parameters, prices and the workflow the flags name (raises ConfigError for a bad file)."""
    try:
        params = ModelParams.load(args.calibration) if args.calibration else reference_params()
        prices = load_prices(args.prices)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return params, prices, read_workflow(args.definition)


def _source_lines(params, prices, workflow) -> str:
    lines = [f"parameters: {params.source}", f"state machine: {workflow.source}",
             f"prices: {prices.as_of} ({prices.source})"]
    if params.unidentified:
        lines.append(f"not identified by the calibration data ({len(params.unidentified)}): kept at priors, see `calibrate`")
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate one job over ``--seeds`` seeds and print what it takes and costs."""
    spec = spec_from_args(args)
    params, prices, workflow = _load(args)
    results = run_seeds(spec, params, prices, args.seeds, workflow)
    for r in results:
        r.bill = bill_for_usage(r.usage, prices, free_tier=args.free_tier)
    spans = [r.makespan_s for r in results]
    median = sorted(results, key=lambda r: r.makespan_s)[len(results) // 2]
    console = _console()
    table = Table(title=f"{format_size(spec.data_size_bytes)} in {spec.partitions} partitions of "
                        f"{format_size(spec.partition_bytes)}, {spec.world} workers at {spec.memory_mb} MB, batch "
                        f"{spec.batch_size} ({args.seeds} seeds)", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    table.add_row("makespan p50 / p95", f"{percentile(spans, 50):.1f} s / {percentile(spans, 95):.1f} s")
    table.add_row("status (median run)", median.status)
    for step, (a, b) in median.steps.items():
        table.add_row(f"  {step}", f"{b - a:.2f} s")
    workers = median.worker_invocations
    if workers:
        durations = sorted(w["duration_s"] for w in workers)
        table.add_row("worker Duration p50 / p95 / max",
                      f"{percentile(durations, 50):.2f} s / {percentile(durations, 95):.2f} s / {durations[-1]:.2f} s")
        phases = {k: sum(w.get(k, 0.0) for w in workers) / len(workers)
                  for k in ("download_s", "load_s", "read_s", "deserialize_s", "compute_s", "comm_s", "write_s")}
        table.add_row("worker phases (mean)", ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in phases.items() if v > 0))
        table.add_row("Max Memory Used (worker)", f"{max(w['max_memory_used_mb'] for w in workers):,.0f} MB of {spec.memory_mb:,} MB")
    table.add_row("cold starts", str(median.cold_starts))
    table.add_row("peak concurrency", str(median.peak_concurrency))
    table.add_row("throttles", str(median.throttles))
    table.add_row("failed items", str(median.items_failed))
    summaries = [i for i in median.invocations if i["function"] == "summarize" and "results_read" in i]
    if summaries and summaries[-1]["results_read"] < spec.world:
        table.add_row("results Summarize never reads", f"{spec.world - summaries[-1]['results_read']:,} "
                      f"(--summarize-reads {spec.summarize_reads} reads the first {summaries[-1]['results_read']:,})")
    errors: dict[str, int] = {}
    for inv in median.invocations:
        if inv["error"]:
            name = f"{inv['function']} {inv['error']}"
            errors[name] = errors.get(name, 0) + 1
    if errors:
        table.add_row("errors (attempts)", ", ".join(f"{name} x{n}" for name, n in sorted(errors.items())))
    table.add_row("state transitions", f"{median.usage.sfn_transitions:,}")
    table.add_row("cost p50", f"${sorted(r.bill.total for r in results)[len(results) // 2]:.4f}")
    console.print(table)
    bill = Table(title=f"Itemised bill (median run, prices {prices.as_of}{', free tier' if args.free_tier else ''})")
    for col in ("item", "quantity", "unit", "unit price", "cost USD"):
        bill.add_column(col, justify="left" if col in ("item", "unit") else "right")
    for line in median.bill.lines:
        bill.add_row(line.item, f"{line.quantity:,.4f}", line.unit, f"{line.unit_price:.10g}", f"{line.cost:.6f}")
    bill.add_row("total", "", "", "", f"{median.bill.total:.6f}")
    console.print(bill)
    for line in diagnose(median, params):
        console.print(f"[red]why it failed:[/red] {line}", highlight=False, soft_wrap=True)
    console.print(_source_lines(params, prices, workflow))
    if args.gantt:
        console.print("gantt: " + ", ".join(map(str, plot_gantt(median, args.gantt))))
    return 0 if median.status == "SUCCEEDED" else 1


def cmd_plan(args: argparse.Namespace) -> int:
    """Sweep memory x partition size x MaxConcurrency; print the Pareto front and the picks, save plots."""
    base = spec_from_args(args)
    params, prices, workflow = _load(args)
    deadline = args.deadline
    memories, parts, concs = args.memories, args.partition_sizes, args.max_concurrencies
    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("simulating configurations", total=len(memories) * len(parts) * len(concs))
        candidates = sweep(base, memories, parts, concs, params, prices, args.seeds,
                           lambda done, total: bar.update(task, completed=done), workflow)
    console = _console()
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
    console.print(_source_lines(params, prices, workflow))
    paths = plot_sweep(candidates, args.out, deadline, picks, params.source)
    best = picks.get("balanced", picks.get("speed"))
    if best:
        c = best[0]
        paths += plot_gantt(simulate(replace(base, memory_mb=c.memory_mb, partition_size_bytes=c.partition_size_bytes,
                                             max_concurrency=c.max_concurrency), params, 0, prices, workflow), args.out)
    console.print("plots: " + ", ".join(map(str, paths)))
    return 0 if "cost" in picks else 1


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the model to run records and REPORT lines, print what was and was not identified, save it."""
    try:
        observations, orchestration = load_observations(args.runs)
        if args.reference:
            observations += reference.observations()
        for log in args.logs:
            observations += observations_from_cloudwatch(log.read_text().splitlines(),
                                                         args.bytes_read,
                                                         run=str(log), role=args.log_role, batch_size=args.batch_size,
                                                         world=args.log_world,
                                                         summarize_reads=args.log_summarize_reads,
                                                         package_mb=args.package_mb)
        source = (reference.SOURCE if args.reference and not args.runs and not args.logs
                  else f"calibration of {', '.join(map(str, args.runs + args.logs)) or 'no files'}"
                       f"{' + CosmicAI reference' if args.reference else ''}")
        params = fit(observations, orchestration=orchestration, source=source,
                     outside=reference.outside_map() if args.reference else None,
                     completed=reference.completed_runs() if args.reference else None)
        if args.reference:
            reference.annotate(params)
    except (RunRecordError, ValueError, OSError) as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    params.save(args.output)
    console = _console()
    table = Table(title=f"Calibration from {len(observations)} invocations ({params.source})")
    for col in ("parameter", "value", "source"):
        table.add_column(col)
    for name in ("bytes_per_sample", "compute_s_per_sample_vcpu", "batch_overhead_samples", "parallel_efficiency",
                 "download_s", "model_load_s", "setup_s", "s3_bandwidth_bytes_s", "deserialize_s_per_byte_vcpu",
                 "cpu_sigma", "straggler_prob", "straggler_factor", "init_median_s", "init_sigma",
                 "init_s_per_package_mb", "memory_base_mb",
                 "memory_per_input_mb", "control_init_median_s", "control_cpu_s", "summarize_cpu_s", "request_cpu_s",
                 "request_latency_s", "plan_cpu_s_per_item", "child_start_rate_per_s",
                 "transition_latency_s", "result_writer_s",
                 "result_writer_s_per_item"):
        table.add_row(name, f"{getattr(params, name):.6g}", params.source_of(name))
    console.print(table)
    for line in params.warnings:
        console.print(f"[yellow]warning:[/yellow] {line}")
    for line in params.unidentified:
        console.print(f"[yellow]not identified:[/yellow] {line}")
    console.print(f"residuals (worker Duration): {json.dumps({k: round(v, 2) for k, v in params.residuals.items()})}")
    if args.reference:
        console.print(reference.plateau_check(params))
    loo = leave_one_out(observations)
    if loo:
        within = sum(1 for r in loo if abs(r["error_pct"]) <= 10)
        console.print(f"leave-one-out worker Duration: {within}/{len(loo)} within 10%, worst "
                      f"{max(abs(r['error_pct']) for r in loo):.1f}%")
        for r in loo:
            if abs(r["error_pct"]) > 10:
                console.print(f"  {r['run']} ({'cold' if r['cold'] else 'warm'}): measured {r['measured_s']:.2f} s, "
                              f"predicted {r['predicted_s']:.2f} s ({r['error_pct']:+.1f}%)"
                              + ("; the only cold invocation: see 'cold handler extra' above" if r["cold"] else ""))
    if args.plot:
        timed = [o for o in observations if o.role == "worker" and o.duration_s and o.bytes_read]
        paths = plot_calibration([o.duration_s for o in timed], [predict_duration(params, o) for o in timed],
                                 args.plot, params.source)
        console.print("plot: " + ", ".join(map(str, paths)))
    console.print(f"saved {args.output}")
    return 0
