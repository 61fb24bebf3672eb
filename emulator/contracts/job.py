"""The job contract: what one run of the data-parallel pipeline is, on every backend.

``lambdatwin run`` (processes), ``emulate`` (Docker), ``simulate`` (SimPy) and
``aws run`` all build a :class:`JobConfig` from the same flags and derive the
execution input, function names and ARN substitutions from it here, so the
four cannot drift apart. The execution input's shape is documented in
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emulator.contracts import aws
from emulator.contracts.errors import ConfigError
from emulator.contracts.lambdas import FunctionConfig

# Roles of the three functions, the handler each runs, and the ASL placeholder of its ARN.
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
COMM_MODES = ("none", "direct", "relay")

DEFAULT_DATA_SIZE = "100MB"
DEFAULT_PARTITION_SIZE_BYTES = 25_000_000  # the CosmicAI runs' smallest partition
DEFAULT_BATCH_SIZE = 512
DEFAULT_WORKER_MEMORY_MB = 2048
DEFAULT_WORKER_TIMEOUT_S = 300.0
DEFAULT_CONTROL_MEMORY_MB = 256
DEFAULT_CONTROL_TIMEOUT_S = 60.0
DEFAULT_PUNCH_TIMEOUT_S = 10.0
DEFAULT_BUCKET = "lambdatwin-data"
DEFAULT_FUNCTION_PREFIX = "lambdatwin"
# The state machine every backend runs unless given another (and the one `simulate` reads).
DEFAULT_DEFINITION_PATH = Path(__file__).resolve().parents[2] / "statemachines" / "data_parallel.asl.json"
MAX_WORKERS = aws.MAX_MAP_CONCURRENCY * 10  # a Distributed Map may run 100,000 items; beyond that no one plans


def new_run_id() -> str:
    """Sortable, unique, and a valid execution name: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def resolve_partition_size(data_size_bytes: int, partition_size_bytes: int | None, workers: int | None) -> int:
    """The partition size a job uses: as given, else data / workers, else the default (at most the data)."""
    if partition_size_bytes:
        return partition_size_bytes
    if workers:
        return -(-data_size_bytes // workers)
    return min(DEFAULT_PARTITION_SIZE_BYTES, data_size_bytes)


def check_range(flag: str, value: float, low: float, high: float, unit: str = "", what: str = "") -> None:
    """Raise ConfigError naming ``flag`` unless ``low <= value <= high``."""
    if isinstance(value, bool) or not (low <= value <= high):
        suffix = f" {unit}" if unit else ""
        raise ConfigError(f"{flag} {value:g}{suffix} is outside {what or 'the allowed range'} "
                          f"{low:,g}-{high:,g}{suffix}; pick a value inside it")


@dataclass
class JobConfig:
    """What one run does; stored verbatim in the run record's ``config``.

    Raises:
        ConfigError: a value outside AWS's limits (MemorySize 128-10,240 MB, Timeout
            1-900 s, EphemeralStorage 512-10,240 MB, MaxConcurrency 0-10,000).
    """

    data_size_bytes: int
    partition_size_bytes: int
    workers: int | None = None  # world size; None = one rank per partition
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    worker_memory_mb: int = DEFAULT_WORKER_MEMORY_MB
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S
    worker_ephemeral_storage_mb: int = aws.DEFAULT_EPHEMERAL_STORAGE_MB
    control_memory_mb: int = DEFAULT_CONTROL_MEMORY_MB  # Initialize and Summarize
    control_timeout_s: float = DEFAULT_CONTROL_TIMEOUT_S
    max_concurrency: int | None = None  # Map MaxConcurrency; None = world size
    account_concurrency: int = aws.DEFAULT_ACCOUNT_CONCURRENCY
    comm: str = "none"  # none | direct | relay
    punch_timeout_s: float = DEFAULT_PUNCH_TIMEOUT_S  # hole punching window per pair before the relay fallback
    model_key: str | None = None
    bucket: str = DEFAULT_BUCKET
    data_prefix: str = ""  # default: data/<dataset id>/
    function_prefix: str = DEFAULT_FUNCTION_PREFIX

    def __post_init__(self) -> None:
        if self.data_size_bytes <= 0 or self.partition_size_bytes <= 0:
            raise ConfigError("data and partition sizes must be positive")
        if self.partition_size_bytes > self.data_size_bytes:
            raise ConfigError("partition size is larger than the data size; lower --partition-size")
        if self.workers is not None:
            check_range("--workers", self.workers, 1, MAX_WORKERS)
            if self.workers > self.partitions:
                raise ConfigError(f"--workers {self.workers} is more than the {self.partitions} partitions; "
                                  "lower --workers or --partition-size")
        check_range("--batch-size", self.batch_size, 1, 1_000_000)
        check_range("--memory", self.worker_memory_mb, aws.MIN_MEMORY_MB, aws.MAX_MEMORY_MB, "MB", "Lambda's MemorySize")
        check_range("--timeout", self.worker_timeout_s, aws.MIN_TIMEOUT_S, aws.MAX_TIMEOUT_S, "s", "Lambda's Timeout")
        check_range("--ephemeral-storage", self.worker_ephemeral_storage_mb, aws.MIN_EPHEMERAL_STORAGE_MB,
                    aws.MAX_EPHEMERAL_STORAGE_MB, "MB", "Lambda's EphemeralStorage")
        check_range("control memory", self.control_memory_mb, aws.MIN_MEMORY_MB, aws.MAX_MEMORY_MB, "MB")
        check_range("control timeout", self.control_timeout_s, aws.MIN_TIMEOUT_S, aws.MAX_TIMEOUT_S, "s")
        if self.max_concurrency is not None:
            check_range("--max-concurrency", self.max_concurrency, 0, aws.MAX_MAP_CONCURRENCY, "",
                        "the Distributed Map's MaxConcurrency")
        if self.comm not in COMM_MODES:
            raise ConfigError(f"--comm {self.comm!r} must be one of {', '.join(COMM_MODES)}")
        check_range("--punch-timeout", self.punch_timeout_s, 0.001, aws.MAX_TIMEOUT_S, "s")

    @property
    def partitions(self) -> int:
        """How many partitions the data is cut into (the last may be shorter)."""
        return -(-self.data_size_bytes // self.partition_size_bytes)

    @property
    def world_size(self) -> int:
        """Ranks that run: ``workers``, or one per partition."""
        return self.workers or self.partitions

    @property
    def dataset_id(self) -> str:
        """Names a dataset by what determines its bytes, so it is generated once."""
        return f"seed{self.seed}-{self.data_size_bytes}b-{self.partition_size_bytes}b"

    @property
    def prefix(self) -> str:
        """Where the partitions sit in the bucket."""
        return self.data_prefix or f"data/{self.dataset_id}/"

    def function_names(self) -> dict[str, str]:
        """Function name per role."""
        return {role: f"{self.function_prefix}-{role}" for role in FUNCTION_ROLES}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def function_configs(config: JobConfig, environment: dict[str, str]) -> dict[str, FunctionConfig]:
    """The three functions by role, each with ``environment`` (S3 endpoint etc.) set."""
    names = config.function_names()
    sizes = {"initialize": (config.control_memory_mb, config.control_timeout_s),
             "worker": (config.worker_memory_mb, config.worker_timeout_s),
             "summarize": (config.control_memory_mb, config.control_timeout_s)}
    return {role: FunctionConfig(name=names[role], handler=HANDLERS[role], memory_mb=sizes[role][0],
                                 timeout_s=sizes[role][1], environment=dict(environment),
                                 ephemeral_storage_mb=config.worker_ephemeral_storage_mb if role == "worker"
                                 else aws.DEFAULT_EPHEMERAL_STORAGE_MB)
            for role in FUNCTION_ROLES}


def substitutions_for(names: dict[str, str], region: str = aws.REGION, account: str = aws.ACCOUNT_ID) -> dict[str, str]:
    """Definition substitutions (``${WorkerFunctionArn}`` ...) for these function names per role."""
    return {SUBSTITUTION_KEYS[role]: aws.function_arn(name, region, account) for role, name in names.items()}


def placeholder_substitutions() -> dict[str, str]:
    """Substitutions good enough to validate a definition before a run."""
    return substitutions_for({role: f"{DEFAULT_FUNCTION_PREFIX}-{role}" for role in FUNCTION_ROLES})


def execution_input(config: JobConfig, run_id: str, rendezvous: str | None = None) -> dict[str, Any]:
    """The StartExecution input of docs/ARCHITECTURE.md, the same on every backend."""
    return {
        "bucket": config.bucket,
        "prefix": config.prefix,
        "world_size": config.workers,
        "batch_size": config.batch_size,
        "max_concurrency": config.max_concurrency if config.max_concurrency is not None else (config.workers or 0),
        "result_prefix": f"runs/{run_id}/results",
        "model_key": config.model_key,
        "comm": config.comm,
        "punch_timeout_s": config.punch_timeout_s,
        "rendezvous": rendezvous,
        "job_id": run_id,
    }
