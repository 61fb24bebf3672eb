"""What a finished run prints: the invocation table, the summary and its bill.

The bill is computed once, by the command, with the price table the user chose
(``--prices``), and handed to :func:`print_run`; nothing here prices on its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from emulator.contracts import flags
from emulator.contracts.errors import ConfigError
from emulator.contracts.runrecord import RunRecord
from sim.prices import Bill, bill_for_record, load_prices

Pricer = Callable[[RunRecord], Bill]


def add_price_arguments(p: argparse.ArgumentParser) -> None:
    """``--prices`` and ``--free-tier``: how the run's bill is computed."""
    p.add_argument("--prices", type=flags.existing_file, default=None,
                   help="JSON file overriding price table fields (see sim/prices.py)")
    p.add_argument("--free-tier", action="store_true", help="subtract the monthly free tier from the bill")


def pricer_from_args(args: argparse.Namespace) -> Pricer:
    """The bill of a run record under the chosen price table (raises ConfigError for a bad table)."""
    path: Path | None = getattr(args, "prices", None)
    try:
        table = load_prices(path)
    except ValueError as exc:
        raise ConfigError(f"--prices {path}: {exc}") from None
    free_tier = bool(getattr(args, "free_tier", False))
    return lambda record: bill_for_record(record, table, free_tier=free_tier)


def invocation_table(record: RunRecord) -> Table:
    """One row per invocation, the REPORT fields as CloudWatch has them."""
    table = Table(title=f"Invocations ({len(record.invocations)})", header_style="bold")
    for col in ("function", "request id", "duration ms", "billed ms", "memory MB", "max used MB", "init ms", "status"):
        table.add_column(col, justify="right" if "ms" in col or "MB" in col else "left")
    for inv in record.invocations:
        status = inv.status if inv.status == "success" else f"[red]{inv.status} {inv.error_type or ''}[/red]"
        table.add_row(
            inv.function.split("-", 1)[-1], inv.request_id[:8], f"{inv.duration_ms:.2f}", str(inv.billed_duration_ms),
            str(inv.memory_size_mb), str(inv.max_memory_used_mb),
            f"{inv.init_duration_ms:.2f}" if inv.init_duration_ms is not None else "-", status,
        )
    return table


def summary_table(record: RunRecord, bill: Bill) -> Table:
    """The job's outcome: ranks, accuracy, throughput and timing."""
    s: dict[str, Any] = record.summary
    ex = record.execution
    table = Table(title=f"Run {record.run_id} ({record.backend})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    status = ex.get("status", "?")
    table.add_row("execution", status if status == "SUCCEEDED" else f"[red]{status}[/red] {ex.get('error') or ''}")
    if ex.get("cause"):
        table.add_row("cause", str(ex["cause"])[:500])
    if ex.get("start") and ex.get("stop"):
        table.add_row("makespan", f"{ex['stop'] - ex['start']:.2f} s")
    if s:
        table.add_row("ranks ok", f"{len(s.get('ranks_ok', []))} / {s.get('world_size', '?')}")
        if s.get("missing_ranks"):
            table.add_row("missing ranks", ", ".join(map(str, s["missing_ranks"])))
        if s.get("failed_ranks"):
            table.add_row("failed ranks", "; ".join(f"{f['rank']}: {f.get('error')}" for f in s["failed_ranks"]))
        for key, label, fmt in (("rows", "rows", "{:,}"), ("mae", "MAE (z)", "{:.4f}"), ("rmse", "RMSE (z)", "{:.4f}"),
                                ("samples_per_second", "samples/s (sum over ranks)", "{:,.0f}")):
            if s.get(key) is not None:
                table.add_row(label, fmt.format(s[key]))
        collectives = collectives_line(s)
        if collectives:
            table.add_row("collectives", collectives)
    table.add_row("AWS cost estimate", f"${bill.total:.6f} (from REPORT billed durations, prices {bill.prices_as_of})")
    workers = record.invocations_of("worker")
    if workers:
        peak = max(inv.max_memory_used_mb for inv in workers)
        cold = sum(1 for inv in workers if inv.init_duration_ms is not None)
        table.add_row("worker invocations", f"{len(workers)} ({cold} cold), peak memory {peak} MB")
    return table


def collectives_line(summary: dict[str, Any]) -> str | None:
    """Which channel the worker pairs used (each pair once) and the slowest pairing, or None without comm."""
    channels: dict[tuple[int, int], str] = {}
    pairing = []
    for rank in summary.get("ranks") or []:
        comm = rank.get("comm")
        if not comm:
            continue
        pairing.append(comm.get("pairing_seconds") or 0.0)
        for peer, channel in (comm.get("pairs") or {}).items():
            channels[tuple(sorted((int(rank["rank"]), int(peer))))] = channel
    if not pairing:
        return None
    counts = {c: list(channels.values()).count(c) for c in sorted(set(channels.values()))}
    used = ", ".join(f"{n} {c}" for c, n in counts.items()) or "no pairs (one rank)"
    return f"{used} pair(s); slowest rank spent {max(pairing):.2f} s pairing"


def print_run(record: RunRecord, run_dir: str, bill: Bill, console: Console | None = None) -> None:
    """Print the invocation table, the summary with ``bill`` and where the record is."""
    console = console or Console(width=None if Console().is_terminal else 140)
    console.print(invocation_table(record))
    console.print(summary_table(record, bill))
    for what, note in sorted((record.config.get("lambda_platform_not_enforced") or {}).items()):
        console.print(f"[yellow]not as on AWS ({what}):[/yellow] {note}")
    console.print(f"run record: {run_dir}/record.json  logs: {run_dir}/logs/aws/lambda/")
