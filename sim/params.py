"""Model parameters: the workload's phases, their spreads, and the orchestration overheads.

A worker invocation is split into explicit phases (seconds)::

    INIT (cold only)  init_median_s x lognormal(init_sigma) + init_s_per_package_mb x package MB
    download          code and model from S3, every invocation (download_s; CosmicAI's handler does this)
    load (cold only)  first-invocation imports and model build (model_load_s)
    setup             per-invocation fixed handler work (setup_s)
    read              bytes read / S3 bandwidth(memory) + GETs x first-byte latency
    deserialise       bytes read x deserialize_s_per_byte_vcpu / speedup(memory)
    compute           samples x per-sample cost(batch) / speedup(memory)
    write             result write and runtime overhead (overhead_s)

The CPU-bound phases (deserialise, compute) carry a lognormal spread
(``cpu_sigma``) and a straggler tail: with probability ``straggler_prob`` they
take ``straggler_factor`` x lognormal(``straggler_sigma``) longer, at most
``straggler_cap`` times (0 = no cap; calibration sets it to the largest
straggler seen, so the Map's slowest of N workers is not extrapolated past the
evidence). Max Memory
Used = ``memory_base_mb`` + ``memory_per_input_mb`` x MB held at once.
Initialize and Summarize are modelled from their own fields: fixed CPU and CPU
per S3 request, both divided by the control function's CPU share (128 MB has
0.072 of a vCPU), plus the latency of the requests made one after another.
How Summarize finds and reads the N results is the job's code
(``SUMMARIZE_READS``): ``keys`` GETs every rank's key by name with
``summarize_read_threads`` threads (today's ``worker/summarize.py``: no LIST at
all, so its time grows with N without bound); ``list-page`` lists ONE
ListObjectsV2 page (at most 1,000 keys) and GETs those results one after
another (the published CosmicAI summarizer: it never reads past the first
1,000 results, so its time plateaus); ``list-all`` pages through every
1,000-key page and GETs each result one after another.

Every field has a source in ``sources`` ("prior: ..." or "fitted: ..."), and
``unidentified`` names what the calibration data could not pin down.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emulator.contracts.aws import INIT_LIMIT_S, MB_PER_VCPU, lambda_vcpus
from worker.layout import BYTES_PER_SAMPLE

PRIOR = "prior"
LIST_PAGE_KEYS = 1000  # S3 ListObjectsV2 returns at most 1,000 keys per page
SUMMARIZE_READS = ("keys", "list-page", "list-all")  # how Summarize finds the N results (module docstring)


@dataclass
class ModelParams:
    # -- data --------------------------------------------------------------------------
    bytes_per_sample: float = float(BYTES_PER_SAMPLE)  # worker/layout.py; real CosmicAI data: ~19,558
    # -- worker phases -----------------------------------------------------------------
    download_s: float = 0.0  # code + model fetched from S3 on every invocation
    model_load_s: float = 0.3  # first invocation of an environment: imports, model build
    setup_s: float = 0.0  # fixed per-invocation handler work
    overhead_s: float = 0.05  # runtime, client setup, result write
    s3_bandwidth_bytes_s: float = 80e6  # one environment's S3 read bandwidth at full network share
    s3_bandwidth_full_memory_mb: float = float(MB_PER_VCPU)  # MemorySize from which the bandwidth no longer grows
    s3_first_byte_s: float = 0.02  # per GET
    deserialize_s_per_byte_vcpu: float = 1 / 400e6  # torch.load and conversion, one vCPU
    compute_s_per_sample_vcpu: float = 0.004  # per sample on one full vCPU, as the batch grows large
    batch_overhead_samples: float = 14.0  # per-batch fixed cost in samples: batch 32 is ~40% slower than 512
    parallel_efficiency: float = 0.7  # what each vCPU beyond the first adds
    # -- spreads -----------------------------------------------------------------------
    cpu_sigma: float = 0.05  # lognormal spread of the CPU-bound phases
    straggler_prob: float = 0.0
    straggler_factor: float = 2.5
    straggler_sigma: float = 0.3
    straggler_cap: float = 0.0  # largest straggler multiplier; 0 = unbounded lognormal
    # -- INIT (cold start): lognormal, burst CPU, so independent of memory --------------
    init_median_s: float = 1.5
    init_sigma: float = 0.25
    init_s_per_package_mb: float = 0.0
    init_cap_s: float = INIT_LIMIT_S
    # -- memory (Max Memory Used) ------------------------------------------------------
    memory_base_mb: float = 400.0  # runtime + libraries + model
    memory_per_input_mb: float = 2.0  # MB of memory per MB of input held (raw bytes + tensors)
    # -- collectives -------------------------------------------------------------------
    pairing_latency_s: float = 0.05
    alpha_s: dict[str, float] = field(default_factory=lambda: {"direct": 0.0005, "relay": 0.002, "s3": 0.05})
    beta_s_per_byte: dict[str, float] = field(default_factory=lambda: {"direct": 1 / 100e6, "relay": 1 / 40e6, "s3": 1 / 50e6})
    # -- Initialize and Summarize (control functions) ----------------------------------
    control_init_median_s: float = 0.48  # Python + boto3 INIT at 128 MB
    control_init_sigma: float = 0.05
    control_cpu_s: float = 0.04  # Initialize's fixed handler CPU at one vCPU
    summarize_cpu_s: float = 0.04  # Summarize's fixed handler CPU at one vCPU (client, combining, summary body)
    request_cpu_s: float = 0.002  # CPU per S3 request (boto3 signing, HTTP, parsing) at one vCPU
    request_latency_s: float = 0.02  # per S3 request
    plan_cpu_s_per_item: float = 0.00002  # Initialize: building and serialising one assignment item, one vCPU
    summarize_read_threads: int = 32  # worker/summarize.py READ_THREADS
    control_memory_used_mb: float = 88.0
    # -- Step Functions orchestration --------------------------------------------------
    child_start_rate_per_s: float = 500.0  # Distributed Map child executions started per second
    child_start_latency_s: float = 0.05  # child execution start -> Lambda invoke
    map_item_overhead_s: float = 0.0  # Map bookkeeping per item after the last child (s/item)
    result_writer_s: float = 0.2  # ResultWriter: fixed
    result_writer_s_per_item: float = 0.0005
    transition_latency_s: float = 0.02
    # -- provenance --------------------------------------------------------------------
    source: str = "defaults"
    sources: dict[str, str] = field(default_factory=dict)
    unidentified: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    residuals: dict[str, Any] = field(default_factory=dict)

    # -- the phases --------------------------------------------------------------------
    def speedup(self, memory_mb: float) -> float:
        """CPU-bound speedup at this MemorySize relative to one full vCPU."""
        vcpus = lambda_vcpus(memory_mb)
        return vcpus if vcpus <= 1.0 else 1.0 + (vcpus - 1.0) * self.parallel_efficiency

    def bandwidth(self, memory_mb: float) -> float:
        """S3 read bandwidth of one environment of this MemorySize (bytes/s)."""
        return self.s3_bandwidth_bytes_s * min(1.0, memory_mb / self.s3_bandwidth_full_memory_mb)

    def per_sample_s(self, batch_size: int) -> float:
        """Compute seconds per sample on one vCPU at this batch size."""
        return self.compute_s_per_sample_vcpu * (1.0 + self.batch_overhead_samples / max(1, batch_size))

    def worker_phases(self, samples: float, bytes_read: float, memory_mb: float, batch_size: int,
                      cold: bool, gets: int = 1) -> dict[str, float]:
        """Expected seconds of each handler phase (no spread, no INIT, no collectives)."""
        speed = self.speedup(memory_mb)
        bw = self.bandwidth(memory_mb)
        return {
            "download_s": self.download_s,
            "load_s": self.model_load_s if cold else 0.0,
            "setup_s": self.setup_s,
            "read_s": (bytes_read / bw if math.isfinite(bw) and bw > 0 else 0.0) + gets * self.s3_first_byte_s,
            "deserialize_s": bytes_read * self.deserialize_s_per_byte_vcpu / speed,
            "compute_s": samples * self.per_sample_s(batch_size) / speed,
            "write_s": self.overhead_s,
        }

    def handler_seconds(self, samples: float, bytes_read: float, memory_mb: float, batch_size: int,
                        cold: bool, gets: int = 1) -> float:
        """Expected REPORT Duration of a worker invocation (no collectives)."""
        return sum(self.worker_phases(samples, bytes_read, memory_mb, batch_size, cold, gets).values())

    def max_memory_mb(self, bytes_held: float) -> float:
        """Predicted Max Memory Used of a worker holding ``bytes_held`` of input at once."""
        return self.memory_base_mb + self.memory_per_input_mb * bytes_held / 1e6

    def init_median(self, package_mb: float | None) -> float:
        """Median Init Duration for a deployment package (or image) of ``package_mb``."""
        return self.init_median_s + self.init_s_per_package_mb * (package_mb or 0.0)

    def control_seconds(self, memory_mb: float, requests: int, sequential_requests: int | None = None,
                        items: int = 0, fixed_cpu_s: float | None = None) -> float:
        """Expected Duration of Initialize/Summarize making ``requests`` S3 calls (``sequential`` of them in a
        row) and, for Initialize, planning ``items`` assignment items; ``fixed_cpu_s`` defaults to Initialize's."""
        share = min(1.0, lambda_vcpus(memory_mb))
        serial = requests if sequential_requests is None else sequential_requests
        fixed = self.control_cpu_s if fixed_cpu_s is None else fixed_cpu_s
        cpu = fixed + requests * self.request_cpu_s + items * self.plan_cpu_s_per_item
        return cpu / share + serial * self.request_latency_s

    def request_seconds(self, memory_mb: float) -> float:
        """One S3 request made alone at this MemorySize: latency + its CPU at the function's share."""
        return self.request_latency_s + self.request_cpu_s / min(1.0, lambda_vcpus(memory_mb))

    def initialize_requests(self, partitions: int) -> int:
        """S3 requests of Initialize: list pages, the model HEAD, the assignment PUT."""
        return max(1, math.ceil(partitions / LIST_PAGE_KEYS)) + 2

    def summarize_requests(self, world: int, reads: str = "keys") -> tuple[int, int, int]:
        """(S3 requests, of which in a row, results read) of Summarize for ``reads`` (see SUMMARIZE_READS).

        keys: the Map's manifest, every rank's result (threaded), the summary PUT.
        list-page: the payload GET, one LIST, at most 1,000 results one by one, the combined PUT.
        list-all: the payload GET, every LIST page, every result one by one, the combined PUT.
        """
        if reads == "keys":
            return world + 2, math.ceil(world / max(1, self.summarize_read_threads)) + 2, world
        if reads == "list-page":
            read = min(world, LIST_PAGE_KEYS)
            return read + 3, read + 3, read
        if reads == "list-all":
            pages = max(1, math.ceil(world / LIST_PAGE_KEYS))
            return world + pages + 2, world + pages + 2, world
        raise ValueError(f"Summarize reads {reads!r} must be one of {', '.join(SUMMARIZE_READS)}")

    def summarize_seconds(self, memory_mb: float, world: int, reads: str = "keys") -> float:
        """Expected Duration of Summarize over ``world`` results (no INIT)."""
        requests, serial, _ = self.summarize_requests(world, reads)
        return self.control_seconds(memory_mb, requests, serial, fixed_cpu_s=self.summarize_cpu_s)

    def initialize_seconds(self, memory_mb: float, partitions: int, world: int) -> float:
        """Expected Duration of Initialize listing ``partitions`` keys and planning ``world`` items (no INIT)."""
        return self.control_seconds(memory_mb, self.initialize_requests(partitions), items=world)

    def outside_map_seconds(self, world: int, partitions: int, memory_mb: float, reads: str = "keys",
                            cold_starts: int = 2) -> float:
        """Expected execution time outside the Map: Initialize and Summarize (``cold_starts`` of them cold, as in
        one execution of a fresh deployment) and the two transitions."""
        return (cold_starts * self.control_init_median_s + self.initialize_seconds(memory_mb, partitions, world)
                + self.summarize_seconds(memory_mb, world, reads) + 2 * self.transition_latency_s)

    def source_of(self, name: str) -> str:
        """Where ``name``'s value came from."""
        return self.sources.get(name, PRIOR)

    # -- files -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, default=_json_default) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelParams":
        """Read a calibration file.

        Raises:
            ValueError: not JSON, or fields this version does not know.
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"calibration file {path}: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"calibration file {path}: unknown field(s) {', '.join(unknown)}; "
                             "re-run `lambdatwin calibrate` with this version")
        return cls(**data)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return None
    raise TypeError(f"not JSON serialisable: {value!r}")


REFERENCE_CALIBRATION = Path(__file__).resolve().parent / "reference" / "cosmicai_calibration.json"


def reference_params() -> ModelParams:
    """The shipped calibration from real CosmicAI AWS runs (the default of every command)."""
    return ModelParams.load(REFERENCE_CALIBRATION)
