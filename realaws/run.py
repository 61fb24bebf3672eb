"""``lambdatwin aws run``: stage data, check limits, start the execution, follow it, collect the run record."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from emulator.contracts import job
from emulator.contracts.job import JobConfig
from realaws import data, dns, execution
from realaws.collect import CollectOptions, Collected, collect
from realaws.config import StackConfig
from realaws.errors import AwsError, QuotaError, error_code
from realaws.session import AwsContext

@dataclass
class RunOptions:
    """One job on a deployed stack: the same :class:`JobConfig` as ``lambdatwin run``, plus how to follow it."""

    job: JobConfig
    data_prefix: str | None = None  # use data already in the bucket instead of generating
    run_id: str | None = None
    timeout_s: float = 4000.0  # a bit over the state machine's own TimeoutSeconds
    poll_s: float = 5.0
    rendezvous_wait_s: float = 300.0
    allow_concurrent: bool = False
    data_cache: Path | None = None
    collect: CollectOptions = field(default_factory=CollectOptions)


def check_concurrency(ctx: AwsContext, worker_function: str, world: int, max_concurrency: int, comm: str,
                      warn: Callable[[str], None]) -> None:
    """Refuse runs the account cannot run at once when they must (collectives); warn about throttling.

    Raises:
        QuotaError: comm needs all ranks concurrently but the limits do not allow it.
    """
    lam = ctx.client("lambda")
    try:
        reserved = lam.get_function_concurrency(FunctionName=worker_function).get("ReservedConcurrentExecutions")
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "ResourceNotFoundException":
            raise AwsError(f"function {worker_function} does not exist; run `lambdatwin aws deploy` first") from None
        raise
    try:
        account = int(lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"])
    except Exception:  # noqa: BLE001 - advisory only
        account = None
    limit, what = (reserved, f"{worker_function}'s reserved concurrency") if reserved is not None else \
        (account, "the account's concurrency limit")
    if limit is None:
        return
    if comm != "none" and world > limit:
        raise QuotaError(f"comm={comm} needs all {world} ranks running at once, but {what} is {limit}; raise it "
                         "(functions.worker.reserved_concurrency, or Service Quotas L-B99A9384) or use fewer --workers")
    if max_concurrency > limit:
        warn(f"max concurrency {max_concurrency} exceeds {what} ({limit}): expect throttling and retries")


def run_job(ctx: AwsContext, cfg: StackConfig, opts: RunOptions, runs_dir: Path, *,
            say: Callable[[str], None] = lambda _: None,
            on_data: Callable[[str, int, int], None] = lambda s, d, t: None,
            on_progress: Callable[[execution.Progress], None] = lambda _: None) -> Collected:
    """Run one job on the deployed stack and write its run record."""
    config = opts.job
    ctx.check_credentials()
    names = ctx.names(cfg.name, cfg.bucket)
    sfn, s3 = ctx.client("stepfunctions"), ctx.client("s3")
    running = execution.running_executions(sfn, names.state_machine_arn)
    if running and not opts.allow_concurrent:
        raise AwsError(f"{len(running)} execution(s) of this stack are RUNNING (e.g. {running[0]}); their log lines "
                       "would mix into this run's record. Wait, stop them, or pass --allow-concurrent")
    if opts.data_prefix:
        prefix = opts.data_prefix if opts.data_prefix.endswith("/") else opts.data_prefix + "/"
        partitions = data.count_partitions(s3, names.bucket, prefix)
        if not partitions:
            raise AwsError(f"no .pt partitions under s3://{names.bucket}/{prefix}")
    else:
        say("data: generate (cached) and upload what is missing")
        prefix, partitions = data.stage_dataset(s3, names.bucket, config, cache_dir=opts.data_cache, progress=on_data)
    world = config.workers or partitions
    max_concurrency = config.max_concurrency or world
    check_concurrency(ctx, names.function("worker"), world, max_concurrency, config.comm, say)
    rendezvous = None
    if config.comm != "none":
        say("rendezvous: re-pointing DNS at the running task")
        rendezvous = dns.repoint(ctx.client("ecs"), ctx.client("ec2"), ctx.client("route53"), names, cfg.rendezvous,
                                 wait_task_s=opts.rendezvous_wait_s).address
    run_id = opts.run_id or job.new_run_id()
    payload = job.execution_input(replace(config, bucket=names.bucket, data_prefix=prefix), run_id, rendezvous)
    arn = execution.start(sfn, names.state_machine_arn, run_id, payload)
    say(f"execution {arn}")
    execution.follow(sfn, arn, timeout_s=opts.timeout_s, poll_s=opts.poll_s, on_progress=on_progress)
    return collect(ctx, arn, runs_dir, opts.collect, say=say)
