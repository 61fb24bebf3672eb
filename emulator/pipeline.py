"""Run the data-parallel job end to end on a local cloud and write its run record.

The same orchestration serves every local backend: the caller supplies where
S3 is, how execution environments are made (host processes or containers) and,
for collectives, where the rendezvous server is. The state machine is the
repository's ASL file, run by ``emulator.stepfunctions``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from emulator import runrecord
from emulator.lambdas import FunctionConfig, InvocationRecord
from emulator.lambda_runtime.environment import function_arn
from emulator.lambda_runtime.service import EnvironmentFactory, LambdaService
from emulator.stepfunctions import StateMachine

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFINITION_PATH = REPO_ROOT / "statemachines" / "data_parallel.asl.json"
DEFAULT_DATA_CACHE = Path.home() / ".cache" / "lambdatwin" / "datasets"

FUNCTION_ROLES = ("initialize", "worker", "summarize")
HANDLERS = {
    "initialize": "worker.initialize.handler",
    "worker": "worker.infer.handler",
    "summarize": "worker.summarize.handler",
}
SUBSTITUTION_KEYS = {
    "initialize": "InitializeFunctionArn",
    "worker": "WorkerFunctionArn",
    "summarize": "SummarizeFunctionArn",
}


@dataclass
class JobConfig:
    """What one run does; stored verbatim in the run record's ``config``."""

    data_size_bytes: int
    partition_size_bytes: int
    workers: int | None = None  # world size; None = one rank per partition
    batch_size: int = 512
    seed: int = 0
    worker_memory_mb: int = 2048
    worker_timeout_s: float = 300.0
    control_memory_mb: int = 256  # Initialize and Summarize
    control_timeout_s: float = 60.0
    max_concurrency: int | None = None  # Map MaxConcurrency; None = world size
    account_concurrency: int = 1000
    comm: str = "none"  # none | direct | relay
    punch_timeout_s: float = 10.0  # hole punching window per pair before the relay fallback
    bucket: str = "lambdatwin-data"
    data_prefix: str = ""  # default: data/<dataset id>/
    function_prefix: str = "lambdatwin"

    def __post_init__(self) -> None:
        if self.partition_size_bytes > self.data_size_bytes:
            raise ValueError("partition size is larger than the data size; lower --partition-size")
        if self.workers is not None and self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.comm not in ("none", "direct", "relay"):
            raise ValueError(f"--comm {self.comm!r} must be none, direct or relay")
        if self.punch_timeout_s <= 0:
            raise ValueError("--punch-timeout must be positive")

    @property
    def dataset_id(self) -> str:
        """Names a dataset by what determines its bytes, so it is generated once."""
        return f"seed{self.seed}-{self.data_size_bytes}b-{self.partition_size_bytes}b"

    def functions(self, environment: dict[str, str]) -> dict[str, FunctionConfig]:
        """The three functions by role, with ``environment`` (S3 endpoint etc.) set."""
        names = function_names(self)

        def make(role: str, memory: int, timeout: float) -> FunctionConfig:
            return FunctionConfig(
                name=names[role], handler=HANDLERS[role],
                memory_mb=memory, timeout_s=timeout, environment=dict(environment),
            )

        return {
            "initialize": make("initialize", self.control_memory_mb, self.control_timeout_s),
            "worker": make("worker", self.worker_memory_mb, self.worker_timeout_s),
            "summarize": make("summarize", self.control_memory_mb, self.control_timeout_s),
        }


@dataclass
class JobResult:
    """What a finished run returns to its caller (the record is on disk too)."""

    record: runrecord.RunRecord
    run_dir: Path
    status: str
    error: str | None = None
    cause: str | None = None


def load_definition(path: Path = DEFINITION_PATH) -> dict[str, Any]:
    """A state machine definition file, as JSON.

    Raises:
        ValueError: the file is not JSON (the message says where).
    """
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc


def function_names(config: "JobConfig") -> dict[str, str]:
    """Function name per role."""
    return {role: f"{config.function_prefix}-{role}" for role in FUNCTION_ROLES}


def substitutions_for(names: dict[str, str]) -> dict[str, str]:
    """Definition substitutions (``${WorkerFunctionArn}`` ...) for these function names."""
    return {SUBSTITUTION_KEYS[role]: function_arn(name) for role, name in names.items()}


def placeholder_substitutions() -> dict[str, str]:
    """Substitutions good enough to validate a definition before a run."""
    return substitutions_for({role: f"lambdatwin-{role}" for role in FUNCTION_ROLES})


def ensure_dataset(config: JobConfig, cache_dir: Path = DEFAULT_DATA_CACHE,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Generate the synthetic dataset once per (seed, sizes) and reuse it after."""
    from worker.datagen import generate_partitions

    out = cache_dir / config.dataset_id
    done = out / ".complete"
    if not done.exists():
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


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


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
    run_id = run_id or new_run_id()
    run_dir = Path(runs_dir) / run_id
    functions = config.functions(function_environment)
    machine = StateMachine(definition or load_definition(),
                           substitutions=substitutions_for({role: fn.name for role, fn in functions.items()}))
    prefix = config.data_prefix or f"data/{config.dataset_id}/"
    result_prefix = f"runs/{run_id}/results"
    execution_input = {
        "bucket": config.bucket,
        "prefix": prefix,
        "world_size": config.workers,
        "batch_size": config.batch_size,
        "max_concurrency": config.max_concurrency or config.workers or 0,
        "result_prefix": result_prefix,
        "model_key": None,
        "comm": config.comm,
        "punch_timeout_s": config.punch_timeout_s,
        "rendezvous": rendezvous,
        "job_id": run_id,
    }
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
                "peak_concurrency": service.peak_concurrency},
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
    runrecord.save(record, run_dir)
    runrecord.write_log_streams(run_dir, service.log_streams)
    return JobResult(record, run_dir, result.status, result.error, result.cause)


def _read_summary(s3_client: Any, bucket: str, key: str) -> dict[str, Any]:
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)
    except Exception:  # noqa: BLE001 - no summary is a normal outcome of a failed run
        return {}
