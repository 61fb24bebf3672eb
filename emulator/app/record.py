"""The run record of one execution of an app (``emulator/contracts/runrecord.py``).

``lambdatwin run --template`` and an execution started through ``lambdatwin serve``
write the same document: ``runs/<execution name>/record.json`` plus its log streams.
A function's ``role`` is its name in lower case (the CosmicAI app's functions
Initialize/Worker/Summarize thus keep the roles the simulator calibrates from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from emulator.contracts import runrecord
from emulator.contracts.lambdas import FunctionConfig, InvocationRecord
from emulator.stepfunctions import ExecutionResult


def execution_record(run_id: str, backend: str, config: dict[str, Any], functions: Iterable[FunctionConfig],
                     result: ExecutionResult, invocations: Iterable[InvocationRecord]) -> runrecord.RunRecord:
    """A RunRecord of a finished execution; ``summary`` is its output when that is an object."""
    return runrecord.RunRecord(
        run_id=run_id,
        backend=backend,
        config=config,
        functions={fn.name: {"handler": fn.handler, "memory_mb": fn.memory_mb, "timeout_s": fn.timeout_s,
                             "role": fn.name.lower()} for fn in functions},
        execution={"name": result.name, "arn": result.execution_arn, "status": result.status,
                   "start": result.start, "stop": result.stop, "error": result.error, "cause": result.cause,
                   "output": result.output},
        history=result.history,
        invocations=sorted(invocations, key=lambda r: r.start),
        summary=result.output if isinstance(result.output, dict) else {},
        map_runs=result.map_runs,
    )


def write_run(record: runrecord.RunRecord, runs_dir: Path,
              log_streams: dict[tuple[str, str], list[str]]) -> Path:
    """Save ``record.json`` and the log streams under ``runs_dir/<run_id>/``; returns that directory."""
    run_dir = Path(runs_dir) / record.run_id
    runrecord.save(record, run_dir)
    runrecord.write_log_streams(run_dir, log_streams)
    return run_dir


class RecordingInvoker:
    """A LambdaInvoker over a shared LambdaService that keeps the records of its own invocations.

    One per execution, so an execution's run record holds its invocations only,
    even when the service is long-running (``serve``).
    """

    def __init__(self, service: Any) -> None:
        self.service = service
        self.records: list[InvocationRecord] = []

    def invoke(self, function_name: str, payload: Any) -> Any:
        done = self.service.invoke_with_record(function_name, payload)
        self.records.append(done.record)
        if done.error is not None:
            raise done.error
        return done.payload


def lines_of(streams: dict[tuple[str, str], list[str]], records: Iterable[InvocationRecord]) -> dict[tuple[str, str], list[str]]:
    """The log lines of ``records``' invocations only: from each START to its REPORT."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for rec in records:
        wanted.setdefault((rec.log_group, rec.log_stream), set()).add(rec.request_id)
    out: dict[tuple[str, str], list[str]] = {}
    for key, ids in wanted.items():
        keep: list[str] = []
        init: list[str] | None = []  # output before the first START: the INIT of the stream's first invocation
        inside = False
        for line in streams.get(key, []):
            if line.startswith("START RequestId: "):
                inside = line.split()[2] in ids
                if init is not None and inside:
                    keep.extend(init)
                init = None
            if init is not None:
                init.append(line)
            elif inside:
                keep.append(line)
            if line.startswith("REPORT RequestId: "):
                inside = False
        out[key] = keep
    return out
