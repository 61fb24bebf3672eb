"""What the sandbox gives this process: CPUs, peak memory, CPU time."""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup CPU quota (v2 ``cpu.max``, v1 CFS), or None when unlimited."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.exists():
            quota_us = int(v1.read_text())
            period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def available_cpus() -> float:
    """CPUs this process may use: the CPU affinity, capped by a cgroup quota."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return float(affinity) if quota is None else max(0.01, min(float(affinity), quota))


def torch_threads_for(cpus: float) -> int:
    """Intra-op threads for a CPU share: one per whole CPU, at least one."""
    return max(1, math.floor(cpus + 0.25))


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """CPU time of this process (user + system) in seconds."""
    return time.process_time()
