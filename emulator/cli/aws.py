"""``lambdatwin aws deploy | run | collect | repoint | teardown``."""

from __future__ import annotations

import argparse
import sys
import time
from functools import wraps
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from botocore.exceptions import BotoCoreError, ClientError

from emulator.cli.job_args import add_job_arguments, job_config_from_args
from emulator.cli.report import print_run
from emulator.contracts import flags
from realaws.collect import CollectOptions, collect
from realaws.config import ConfigError, StackConfig, merge, nest, read_config_file
from realaws.deploy import deploy
from realaws.dns import repoint
from realaws.errors import AwsError, explain
from realaws.run import RunOptions, run_job
from realaws.session import AwsContext
from realaws.stackstate import deployed_config
from realaws.teardown import teardown

_err = Console(stderr=True)


def _handle_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """AWS and botocore errors as one clear line with the exit code ``explain`` gives; no traceback.

    Configuration errors are UserErrors and reach the CLI's top level as they are.
    """

    @wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (AwsError, BotoCoreError, ClientError) as exc:
            err = explain(exc)
            print(f"error: {err.message}", file=sys.stderr)
            return err.exit_code

    return wrapper


def _stack_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="stack config file (.json or .toml)")
    p.add_argument("--name", default=None, help="stack name: prefixes every resource (a-z, 0-9, '-')")
    p.add_argument("--region", default=None, help="AWS region (default: the profile's/AWS_REGION)")
    p.add_argument("--profile", default=None, help="AWS profile (default: boto3's credential chain)")
    p.add_argument("--bucket", default=None, help="bucket name (default <name>-<account>-<region>)")


def _deploy_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("functions")
    g.add_argument("--worker-memory", type=flags.memory_mb, help="worker MemorySize MB (default 2048)")
    g.add_argument("--worker-timeout", type=flags.int_in(1, 900, "s", "Lambda's Timeout range"), help="worker Timeout s (default 300)")
    g.add_argument("--worker-ephemeral-storage", type=flags.ephemeral_storage_mb, help="worker /tmp MB, 512-10240 (default 512)")
    g.add_argument("--worker-reserved-concurrency", type=flags.int_in(0, 1_000_000, "", "the range"), help="worker reserved concurrency (default unreserved)")
    g.add_argument("--control-memory", type=flags.memory_mb, help="Initialize/Summarize MemorySize MB (default 256)")
    g.add_argument("--control-timeout", type=flags.int_in(1, 900, "s", "Lambda's Timeout range"), help="Initialize/Summarize Timeout s (default 60)")
    g = p.add_argument_group("packaging")
    g.add_argument("--package", choices=("image", "zip"), help="container image in ECR (default) or zip + layer")
    g.add_argument("--image-uri", help="worker image (default: the stack's ECR repository)")
    g.add_argument("--image-tag", help="tag in the stack's repository (default latest)")
    g.add_argument("--code-zip", help="zip with the handlers (default: built from worker/)")
    g.add_argument("--layer-zip", help="dependencies layer zip to publish")
    g.add_argument("--layer-arn", action="append", help="existing layer version ARN (repeatable)")
    g.add_argument("--architecture", choices=("x86_64", "arm64"))
    g = p.add_argument_group("rendezvous (ECS Fargate + Route 53)")
    g.add_argument("--no-rendezvous", action="store_true", help="do not deploy the rendezvous service")
    g.add_argument("--rendezvous-cpu", type=flags.int_in(256, 16384, "", "Fargate CPU units"), help="Fargate CPU units (default 256)")
    g.add_argument("--rendezvous-memory", type=flags.int_in(512, 122880, "MiB", "Fargate memory"), help="Fargate memory MiB (default 512)")
    g.add_argument("--rendezvous-image", help="image for the server (default: the worker image)")
    g.add_argument("--rendezvous-domain", help="DNS name kept pointing at the task, e.g. rdv.example.com")
    g.add_argument("--hosted-zone-id", help="Route 53 zone of the domain (default: found by name)")
    g.add_argument("--definition", help="ASL file (default statemachines/data_parallel.asl.json)")
    p.add_argument("--wait-rendezvous", type=flags.duration, default=300.0,
                   help="how long to wait for the task's public IP (default 300s)")


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    get = lambda key: getattr(args, key, None)  # noqa: E731 - not every subcommand has every flag
    overrides = {
        "name": get("name"), "region": get("region"), "bucket": get("bucket"),
        "functions.worker.memory_mb": get("worker_memory"), "functions.worker.timeout_s": get("worker_timeout"),
        "functions.worker.ephemeral_storage_mb": get("worker_ephemeral_storage"),
        "functions.worker.reserved_concurrency": get("worker_reserved_concurrency"),
        "package.type": get("package"), "package.image_uri": get("image_uri"), "package.image_tag": get("image_tag"),
        "package.code_zip": get("code_zip"), "package.layer_zip": get("layer_zip"),
        "package.layer_arns": get("layer_arn"), "package.architecture": get("architecture"),
        "rendezvous.enabled": False if get("no_rendezvous") else None, "rendezvous.cpu": get("rendezvous_cpu"),
        "rendezvous.memory_mb": get("rendezvous_memory"), "rendezvous.image_uri": get("rendezvous_image"),
        "rendezvous.domain": get("rendezvous_domain"), "rendezvous.hosted_zone_id": get("hosted_zone_id"),
        "definition_path": get("definition"),
    }
    for role in ("initialize", "summarize"):
        overrides[f"functions.{role}.memory_mb"] = get("control_memory")
        overrides[f"functions.{role}.timeout_s"] = get("control_timeout")
    return nest(overrides)


def _context_and_config(args: argparse.Namespace, use_deployed: bool) -> tuple[Any, StackConfig]:
    """The AWS context and the stack config: file, then flags; for non-deploy commands on top of what deploy saved."""
    data = merge(read_config_file(args.config) if args.config else {}, _config_overrides(args))
    ctx = AwsContext(data.get("region"), profile=args.profile)
    data["region"] = ctx.region
    if not data.get("name"):
        raise ConfigError("pass --name (or a config file with name)")
    if use_deployed:
        ctx.check_credentials()
        saved = deployed_config(ctx.client("s3"), ctx.names(data["name"], data.get("bucket")))
        if saved and saved.get("region") == ctx.region:
            data = merge(saved, data)
    return ctx, StackConfig.from_dict(data).validate()


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``aws`` and its subcommands."""
    aws = sub.add_parser("aws", help="deploy, run, collect and tear down the pipeline on real AWS (boto3)",
                         description="The same handlers, state machine and rendezvous server on a real AWS account. "
                                     "Credentials come from boto3's standard chain. See docs/realaws.md.")
    asub = aws.add_subparsers(dest="aws_command", metavar="COMMAND")

    p = asub.add_parser("deploy", help="create or update the stack (idempotent)",
                        description="S3 bucket, IAM roles (least privilege), log groups, the three Lambda functions, "
                                    "the state machine, and the rendezvous Fargate service with its DNS record.")
    _stack_arguments(p)
    _deploy_arguments(p)
    p.set_defaults(func=cmd_deploy)

    p = asub.add_parser("run", help="run one job on the deployed stack and write runs/<id>/",
                        description="Generate/upload data, start the execution, follow it, and collect the run record "
                                    "(REPORT lines, history, Map Run counts, summary, actual cost).")
    _stack_arguments(p)
    add_job_arguments(p, function_flags=False)
    p.add_argument("--data-prefix", default=None, help="use .pt partitions already under this bucket prefix")
    p.add_argument("--model-key", default=None, help="S3 key of trained weights (state dict) in the bucket")
    p.add_argument("--run-id", default=None, help="execution name / run id (default: time + random)")
    p.add_argument("--follow-timeout", type=flags.duration, default=4000.0,
                   help="stop following the execution after this (default 4000s)")
    p.add_argument("--allow-concurrent", action="store_true", help="start even if another execution is running")
    _collect_arguments(p)
    p.set_defaults(func=cmd_run)

    p = asub.add_parser("collect", help="write the run record of an existing execution",
                        description="Collect a finished execution (any stack) into runs/<execution name>/.")
    p.add_argument("--execution-arn", required=True)
    p.add_argument("--region", default=None, help="default: the ARN's region")
    p.add_argument("--profile", default=None)
    _collect_arguments(p)
    p.set_defaults(func=cmd_collect)

    p = asub.add_parser("repoint", help="point the rendezvous DNS name at the running task's public IP",
                        description="Find the service's RUNNING task, its network interface and public IP, and UPSERT "
                                    "the A record. --watch keeps doing it as tasks are replaced.")
    _stack_arguments(p)
    p.add_argument("--wait", type=flags.duration, default=300.0, help="wait this long for a running task (default 300s)")
    p.add_argument("--watch", type=flags.duration, default=None, help="re-check every interval until interrupted")
    p.set_defaults(func=cmd_repoint)

    p = asub.add_parser("teardown", help="remove everything deploy made (idempotent)",
                        description="Empties and deletes the bucket, and deletes functions, state machine, roles, log "
                                    "groups, ECR repository, ECS service/cluster/task definitions, security group and "
                                    "DNS record. Only resources tagged lambdatwin:stack=<name> are removed.")
    _stack_arguments(p)
    p.add_argument("--rendezvous-domain", default=None, help="default: as deployed")
    p.add_argument("--hosted-zone-id", default=None)
    p.add_argument("--wait", type=flags.duration, default=300.0, help="bound on each drain wait (default 300s)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_teardown)

    aws.set_defaults(func=lambda args: (aws.print_help(), 2)[1])


def _collect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", type=flags.writable_dir, default=Path("runs"),
                   help="where run records go (default ./runs)")
    p.add_argument("--log-wait", type=flags.duration, default=120.0,
                   help="wait up to this long for every REPORT line to arrive (default 120s)")
    p.add_argument("--child-histories", type=flags.int_in(0, 100_000, "", "the range"), default=200,
                   help="fetch Map children's histories when there are at most this many (0 = never; default 200)")
    p.add_argument("--prices", type=flags.existing_file, default=None,
                   help="price table override (JSON), see sim/prices.py")
    p.add_argument("--free-tier", action="store_true", help="subtract the monthly free tier from the bill")


def _collect_options(args: argparse.Namespace) -> Any:
    return CollectOptions(log_wait_s=args.log_wait, child_histories=args.child_histories, prices_path=args.prices,
                          free_tier=args.free_tier)


@_handle_errors
def cmd_deploy(args: argparse.Namespace) -> int:
    ctx, cfg = _context_and_config(args, use_deployed=False)
    result = deploy(ctx, cfg, say=lambda m: _err.print(f"[dim]·[/dim] {m}", highlight=False),
                    wait_rendezvous_s=args.wait_rendezvous)
    table = Table(title=f"stack {cfg.name} ({ctx.region})", header_style="bold")
    table.add_column("resource")
    table.add_column("id / ARN")
    table.add_column("")
    for what, ident in result.resources.items():
        table.add_row(what, ident, "created" if what in result.created else "up to date")
    Console().print(table)
    if result.rendezvous:
        print(f"rendezvous: {result.rendezvous.address} (task IP {result.rendezvous.public_ip})")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"next: lambdatwin aws run --name {cfg.name} --region {ctx.region} --workers 4 --data-size 100MB")
    return 0


@_handle_errors
def cmd_run(args: argparse.Namespace) -> int:
    ctx, cfg = _context_and_config(args, use_deployed=True)
    worker = cfg.functions["worker"]
    config = job_config_from_args(args, worker_memory_mb=worker.memory_mb, worker_timeout_s=worker.timeout_s,
                                  worker_ephemeral_storage_mb=worker.ephemeral_storage_mb,
                                  model_key=args.model_key, function_prefix=cfg.name)
    opts = RunOptions(job=config, data_prefix=args.data_prefix, run_id=args.run_id, timeout_s=args.follow_timeout,
                      allow_concurrent=args.allow_concurrent, collect=_collect_options(args))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def on_data(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"data: {stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        def on_progress(p: Any) -> None:
            if "map" not in tasks:
                tasks["map"] = bar.add_task("execution", total=None)
            bar.update(tasks["map"], completed=p.items_done, total=p.items_total,
                       description=f"execution {p.status.lower()}: Map items" + (f" ({p.failed} failed)" if p.failed else ""))

        collected = run_job(ctx, cfg, opts, args.runs_dir, say=lambda m: bar.console.print(f"· {m}", highlight=False),
                            on_data=on_data, on_progress=on_progress)
    return _report(collected)


def _report(collected: Any) -> int:
    bill = collected.bill
    print_run(collected.record, str(collected.run_dir), bill)
    table = Table(title=f"Actual cost (prices {bill.prices_as_of})", header_style="bold")
    for col in ("item", "quantity", "unit", "USD"):
        table.add_column(col, justify="left" if col in ("item", "unit") else "right")
    for line in bill.lines:
        table.add_row(line.item, f"{line.quantity:,.4f}", line.unit, f"{line.cost:.6f}")
    table.add_row("total", "", "", f"{bill.total:.6f}")
    Console().print(table)
    status = collected.record.execution.get("status")
    if status != "SUCCEEDED":
        ex = collected.record.execution
        print(f"execution {status}: {ex.get('error') or ''} {ex.get('cause') or ''}".strip(), file=sys.stderr)
        return 1
    return 0


@_handle_errors
def cmd_collect(args: argparse.Namespace) -> int:
    parts = args.execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] != "execution":
        raise ConfigError(f"--execution-arn {args.execution_arn!r} is not a Step Functions execution ARN")
    ctx = AwsContext(args.region or parts[3], profile=args.profile)
    collected = collect(ctx, args.execution_arn, args.runs_dir, _collect_options(args),
                        say=lambda m: _err.print(f"[dim]·[/dim] {m}", highlight=False))
    return _report(collected)


@_handle_errors
def cmd_repoint(args: argparse.Namespace) -> int:
    ctx, cfg = _context_and_config(args, use_deployed=True)
    names = ctx.names(cfg.name, cfg.bucket)
    while True:
        result = repoint(ctx.client("ecs"), ctx.client("ec2"), ctx.client("route53"), names, cfg.rendezvous,
                         wait_task_s=args.wait)
        state = "updated" if result.changed else "already right"
        print(f"{result.address} -> {result.public_ip} ({state}; task {result.task_arn})", flush=True)
        if not args.watch:
            return 0
        time.sleep(args.watch)


@_handle_errors
def cmd_teardown(args: argparse.Namespace) -> int:
    ctx, cfg = _context_and_config(args, use_deployed=True)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("teardown deletes the stack and its bucket's data; pass --yes to confirm")
        answer = input(f"delete stack {cfg.name} in {ctx.region} and everything in its bucket? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    result = teardown(ctx, cfg, say=lambda m: _err.print(f"[dim]·[/dim] {m}", highlight=False), wait_s=args.wait)
    for what in result.removed:
        print(f"removed      {what}")
    for what in result.absent:
        print(f"not present  {what}")
    for what, why in result.not_removed:
        print(f"NOT REMOVED  {what}: {why}", file=sys.stderr)
    return 0 if result.complete else 1
