"""Model parameters: what calibration fits and what the simulation reads.

Defaults are rough figures for this workload on Lambda until a calibration
file replaces them (``lambdatwin calibrate``); every field is documented.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

MB_PER_VCPU = 1769.0  # Lambda: 1 vCPU at 1,769 MB, linear up to 6 vCPUs
MAX_VCPUS = 6.0


@dataclass
class ModelParams:
    # Handler time = overhead + model load + bytes / s3 bandwidth + samples * compute / speedup + comm + write
    compute_s_per_sample_vcpu: float = 0.004  # compute seconds per sample on one full vCPU
    parallel_efficiency: float = 0.7  # how much each vCPU beyond the first adds (threads scale sub-linearly)
    s3_bandwidth_bytes_s: float = 80e6  # one function's S3 read bandwidth
    s3_first_byte_s: float = 0.02  # per GET latency
    model_load_s: float = 0.3  # building/loading the model on a cold environment
    overhead_s: float = 0.05  # per invocation: runtime, client setup, result write
    # INIT (cold start): lognormal seconds, runs with burst CPU so it does not scale with memory.
    init_median_s: float = 1.5
    init_sigma: float = 0.25
    init_cap_s: float = 10.0
    memory_need_mb: float = 600.0  # peak memory of a worker (for OOM)
    # Collectives: rendezvous pairing latency and alpha-beta per channel.
    pairing_latency_s: float = 0.05
    alpha_s: dict[str, float] = field(default_factory=lambda: {"direct": 0.0005, "relay": 0.002, "s3": 0.05})
    beta_s_per_byte: dict[str, float] = field(default_factory=lambda: {"direct": 1 / 100e6, "relay": 1 / 40e6, "s3": 1 / 50e6})
    # Step Functions.
    child_start_rate_per_s: float = 500.0  # Distributed Map child executions started per second
    transition_latency_s: float = 0.02
    # Where the numbers came from (calibration fills it in).
    source: str = "defaults"
    residuals: dict[str, Any] = field(default_factory=dict)

    def speedup(self, memory_mb: float) -> float:
        """Compute speedup at this MemorySize relative to one full vCPU."""
        vcpus = min(MAX_VCPUS, memory_mb / MB_PER_VCPU)
        return vcpus if vcpus <= 1.0 else 1.0 + (vcpus - 1.0) * self.parallel_efficiency

    def handler_seconds(self, samples: float, bytes_read: float, memory_mb: float, cold: bool, gets: int = 1) -> float:
        """Expected handler duration (no comm) for one invocation."""
        load = self.model_load_s if cold else 0.0
        read = bytes_read / self.s3_bandwidth_bytes_s + gets * self.s3_first_byte_s
        return self.overhead_s + load + read + samples * self.compute_s_per_sample_vcpu / self.speedup(memory_mb)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

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
            raise ValueError(f"calibration file {path}: unknown field(s) {', '.join(unknown)}")
        return cls(**data)
