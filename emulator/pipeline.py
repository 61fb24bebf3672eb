"""Run the data-parallel job end to end on a local cloud and write its run record.

The same orchestration serves every local backend: the caller supplies where
S3 is, how execution environments are made (host processes or containers) and,
for collectives, where the rendezvous server is. The state machine is the
repository's ASL file, run by ``emulator.stepfunctions``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from emulator.contracts import job, runrecord
from emulator.contracts.job import JobConfig
from emulator.contracts.lambdas import InvocationRecord
from emulator.lambda_runtime.service import EnvironmentFactory, LambdaService
from emulator.stepfunctions import StateMachine
from worker.datagen import generate_partitions

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFINITION_PATH = REPO_ROOT / "statemachines" / "data_parallel.asl.json"
DEFAULT_DATA_CACHE = Path.home() / ".cache" / "lambdatwin" / "datasets"


@dataclass
class JobResult:
    """What a finished run returns to its caller (the record is on disk too)."""

    record: runrecord.RunRecord
    run_dir: Path
    status: str
    error: str | None = None
    cause: str | None = None
    warnings: list[str] = field(default_factory=list)


def load_definition(path: Path = DEFINITION_PATH) -> dict[str, Any]:
    """A state machine definition file, as JSON.

    Raises:
        ValueError: the file is not JSON (the message says where).
    """
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc


def dataset_is_cached(config: JobConfig, cache_dir: Path = DEFAULT_DATA_CACHE) -> bool:
    """Whether this job's dataset was generated completely before."""
    return (Path(cache_dir) / config.dataset_id / ".complete").exists()


def ensure_dataset(config: JobConfig, cache_dir: Path = DEFAULT_DATA_CACHE,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Generate the synthetic dataset once per (seed, sizes) and reuse it after."""
    out = Path(cache_dir) / config.dataset_id
    done = out / ".complete"
    if not dataset_is_cached(config, cache_dir):
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("*.pt"):
            stale.unlink()
        generate_partitions(config.data_size_bytes, config.partition_size_bytes, config.seed, out, progress)
        done.write_text(json.dumps(asdict(config), default=str))
    return sorted(out.glob("*.pt"))


def upload_dataset(s3_client: Any, bucket: str, prefix: str, files: list[Path],
                   progress: Callable[[int, int], None] | None = None) -> int:
    """Create the bucket if needed and upload ``files`` under ``prefix``; returns bytes sent."""
    try:
        s3_client.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any miss means create; a real failure shows on create
        s3_client.create_bucket(Bucket=bucket)
    total = 0
    for i, path in enumerate(files, 1):
        s3_client.upload_file(str(path), bucket, f"{prefix}{path.name}")
        total += path.stat().st_size
        if progress:
            progress(i, len(files))
    return total


def run_job(
    config: JobConfig,
    *,
    backend: str,
    s3_client: Any,
    function_environment: dict[str, str],
    environment_factory: EnvironmentFactory,
    runs_dir: Path,
    run_id: str | None = None,
    rendezvous: str | None = None,
    on_history_event: Callable[[dict[str, Any]], None] | None = None,
    on_invocation: Callable[[InvocationRecord], None] | None = None,
    extra_config: dict[str, Any] | None = None,
    definition: dict[str, Any] | None = None,
) -> JobResult:
    """Run the state machine over data already in S3 and write ``runs/<id>/``.

    Args:
        backend: ``"local"`` or ``"docker"`` (goes into the run record).
        s3_client: boto3 S3 client of the orchestrator (ItemReader/ResultWriter, summary).
        function_environment: environment variables every function gets
            (S3 endpoint, credentials, region).
        environment_factory: how execution environments are created.
        rendezvous: ``host:port`` the workers dial when ``config.comm`` != none.
    """
    run_id = run_id or job.new_run_id()
    run_dir = Path(runs_dir) / run_id
    functions = job.function_configs(config, function_environment)
    machine = StateMachine(definition or load_definition(),
                           substitutions=job.substitutions_for({role: fn.name for role, fn in functions.items()}))
    execution_input = job.execution_input(config, run_id, rendezvous)
    result_prefix = execution_input["result_prefix"]
    service = LambdaService(
        functions.values(), environment_factory=environment_factory,
        account_concurrency=config.account_concurrency, on_record=on_invocation,
    )
    try:
        result = machine.execute(execution_input, invoker=service, s3_client=s3_client, name=run_id,
                                 on_event=on_history_event)
    finally:
        service.shutdown()
    summary = _read_summary(s3_client, config.bucket, f"{result_prefix}/summary.json")
    record = runrecord.RunRecord(
        run_id=run_id,
        backend=backend,
        config={**asdict(config), "execution_input": execution_input, **(extra_config or {}),
                "peak_concurrency": service.peak_concurrency,
                # limits this host could not enforce (no writable cgroup, no capped /tmp): say so, as the report does
                "lambda_platform_not_enforced": dict(service.platform_notes)},
        functions={fn.name: {"handler": fn.handler, "memory_mb": fn.memory_mb, "timeout_s": fn.timeout_s, "role": role}
                   for role, fn in functions.items()},
        execution={"name": result.name, "arn": result.execution_arn, "status": result.status,
                   "start": result.start, "stop": result.stop, "error": result.error, "cause": result.cause,
                   "output": result.output},
        history=result.history,
        invocations=sorted(service.records, key=lambda r: r.start),
        summary=summary,
        map_runs=result.map_runs,
    )
    run_dir, warnings = save_record(record, run_dir, service.log_streams)
    return JobResult(record, run_dir, result.status, result.error, result.cause, warnings)


def save_record(record: runrecord.RunRecord, run_dir: Path, log_streams: Any) -> tuple[Path, list[str]]:
    """Write the record and log streams to ``run_dir``; if that fails, to a temp folder, and say where.

    A finished run is never lost to a full or read-only disk: the fallback is
    ``$TMPDIR/lambdatwin-runs/<run id>``.
    """
    try:
        runrecord.save(record, run_dir)
        runrecord.write_log_streams(run_dir, log_streams)
        return run_dir, []
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / "lambdatwin-runs" / record.run_id
        runrecord.save(record, fallback)
        runrecord.write_log_streams(fallback, log_streams)
        return fallback, [f"could not write the run record to {run_dir} ({exc.strerror or exc}); "
                          f"it was saved to {fallback} instead"]


def _read_summary(s3_client: Any, bucket: str, key: str) -> dict[str, Any]:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)
    except Exception:  # noqa: BLE001 - no summary is a normal outcome of a failed run
        return {}
