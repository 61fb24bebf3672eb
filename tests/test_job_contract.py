"""`run`, `emulate`, `simulate` and `aws run` build the same job from the same flags.

Same ranks, same partition bytes, same execution input: the one JobConfig of
emulator/contracts/job.py, built by emulator/cli/job_args.py for every command.
"""

from __future__ import annotations

import pytest

from emulator.cli.job_args import job_config_from_args
from emulator.cli.main import build_parser
from emulator.cli.simulate import spec_from_args
from emulator.contracts.job import execution_input
from sim.model import simulate

FLAG_SETS = [
    ["--workers", "8", "--data-size", "100MB"],
    ["--data-size", "1GB"],
    ["--data-size", "60MB", "--partition-size", "25MB", "--batch-size", "64"],
    ["--workers", "3", "--data-size", "10MB", "--max-concurrency", "2", "--comm", "relay", "--punch-timeout", "4",
     "--seed", "7"],
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=[" ".join(f) for f in FLAG_SETS])
def test_every_command_builds_the_same_job(flags):
    parser = build_parser()
    run = job_config_from_args(parser.parse_args(["run", *flags]))
    emulate = job_config_from_args(parser.parse_args(["emulate", *flags]))
    simulated = spec_from_args(parser.parse_args(["simulate", *flags])).job_config()
    aws_run = job_config_from_args(parser.parse_args(["aws", "run", "--name", "demo", *flags]))
    for other in (emulate, simulated, aws_run):
        assert (other.world_size, other.partitions, other.partition_size_bytes, other.data_size_bytes) == \
            (run.world_size, run.partitions, run.partition_size_bytes, run.data_size_bytes)
        assert execution_input(other, "r1", "rdv:1") == execution_input(run, "r1", "rdv:1")


def test_simulate_models_the_ranks_run_starts():
    parser = build_parser()
    spec = spec_from_args(parser.parse_args(["simulate", "--workers", "8", "--data-size", "100MB"]))
    result = simulate(spec, seed=0)
    assert result.spec.world == 8 and len(result.worker_invocations) == 8
    assert {w["bytes_read"] for w in result.worker_invocations} == {12_500_000}


def test_the_execution_input_carries_every_job_field():
    parser = build_parser()
    config = job_config_from_args(parser.parse_args(["run", "--workers", "2", "--data-size", "4MB", "--comm", "direct",
                                                     "--punch-timeout", "3"]))
    payload = execution_input(config, "r1", "rendezvous.local:10000")
    assert payload["punch_timeout_s"] == 3 and payload["comm"] == "direct" and payload["world_size"] == 2
    assert payload["rendezvous"] == "rendezvous.local:10000" and payload["result_prefix"] == "runs/r1/results"
