"""Why a simulated execution failed, one line per cause, each saying what to change.

A plan is only useful if a failure says what to do about it: the simulation
knows the final error of every failed item (``SimResult.failures``) and of a
failed Initialize or Summarize (``SimResult.control_failure``); this module
turns those into the flag or state-machine change that removes the cause.
"""

from __future__ import annotations

import math

from emulator.contracts import aws
from sim.model import SimResult
from sim.params import ModelParams

MEMORY_STEP_MB = 64  # round suggested MemorySize up to a tidy value


def _throttled(result: SimResult, items: int, params: ModelParams) -> str:
    spec = result.spec
    limit = spec.reserved_concurrency or spec.account_concurrency
    if result.peak_concurrency >= limit:
        what = "the worker's reserved concurrency" if spec.reserved_concurrency else "the account's concurrency"
        return (f"{items:,} items failed on {aws.LAMBDA_THROTTLED}: the Map runs more workers at once than {what} "
                f"({limit:,}); pass --max-concurrency {max(1, limit - 2):,} (children then wait instead of being "
                "throttled) or raise the limit (--account-concurrency, a quota increase on AWS)")
    return (f"{items:,} items failed on {aws.LAMBDA_THROTTLED}: the Map starts children "
            f"({params.child_start_rate_per_s:.0f}/s) faster than Lambda adds environments "
            f"({aws.SCALING_ENVIRONMENTS_PER_PERIOD:,} per {aws.SCALING_PERIOD_S:g} s per function) and the worker "
            "Task's Retry gives up first; give that Retry more attempts or a longer MaxDelaySeconds in the state "
            "machine, or pass a lower --max-concurrency")


def _out_of_memory(result: SimResult, items: int, params: ModelParams) -> str:
    need = result.worker_memory_needed_mb
    source = params.source_of("memory_base_mb")
    if need > aws.MAX_MEMORY_MB:
        fix = f"that is over Lambda's {aws.MAX_MEMORY_MB:,} MB: use smaller partitions (--partition-size)"
        if result.spec.read_mode == "whole":
            fix = "each worker holds the whole object: read by rank instead, or use less data per job"
    else:
        suggested = min(aws.MAX_MEMORY_MB, math.ceil(need / MEMORY_STEP_MB) * MEMORY_STEP_MB)
        fix = f"pass --memory {suggested:,} or more, or use smaller partitions"
    return (f"{items:,} items failed on {aws.LAMBDA_OUT_OF_MEMORY}: a worker needs about {need:,.0f} MB "
            f"({source}), over --memory {result.spec.memory_mb:,}; {fix}")


def _timed_out(result: SimResult, items: int) -> str:
    spec = result.spec
    fix = ("raise --timeout (at most 900 s) or use smaller partitions" if spec.timeout_s < aws.MAX_TIMEOUT_S
           else "use smaller partitions or more memory (more vCPUs)")
    return (f"{items:,} items failed on {aws.LAMBDA_TIMEOUT}: workers need more than --timeout "
            f"{spec.timeout_s:g} s; {fix}")


def _control(result: SimResult) -> str:
    role, error = result.control_failure or ("", "")
    spec = result.spec
    if error == aws.LAMBDA_TIMEOUT:
        return (f"{role.capitalize()} timed out ({aws.LAMBDA_TIMEOUT}) after {spec.control_timeout_s:g} s at "
                f"{spec.control_memory_mb:,} MB with {spec.world:,} workers: raise --control-memory (CPU grows "
                f"with memory up to {aws.MB_PER_VCPU:,} MB) or --control-timeout")
    return f"{role.capitalize()} failed with {error}"


def diagnose(result: SimResult, params: ModelParams) -> list[str]:
    """One line per cause of failure in ``result`` (empty when it succeeded), each naming the change that fixes it."""
    lines = []
    for error, items in sorted(result.failures.items(), key=lambda kv: -kv[1]):
        if error == aws.LAMBDA_THROTTLED:
            lines.append(_throttled(result, items, params))
        elif error == aws.LAMBDA_OUT_OF_MEMORY:
            lines.append(_out_of_memory(result, items, params))
        elif error == aws.LAMBDA_TIMEOUT:
            lines.append(_timed_out(result, items))
        elif error == aws.LAMBDA_EXIT_ERROR:
            lines.append(f"{items:,} items failed on {error}: workers crashed (--failure-rate "
                         f"{result.spec.failure_rate:g}) more often than the worker Task's Retry allows")
        else:
            lines.append(f"{items:,} items failed on {error}")
    if result.control_failure:
        lines.append(_control(result))
    return lines
