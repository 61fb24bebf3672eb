"""What the sandbox gives this process: CPUs, peak memory, CPU time."""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MB_PER_VCPU = 1769.0  # Lambda: one vCPU's worth of CPU time at 1,769 MB, linear up to 6 vCPUs
MAX_LAMBDA_VCPUS = 6.0


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """Controller -> cgroup path of this process (``""`` is the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                out[name] = path
    except (OSError, ValueError):
        pass
    return out


def _ancestors(root: Path, path: str) -> list[Path]:
    """``root/path`` and each parent up to ``root``: a quota anywhere above also applies."""
    parts = [p for p in path.split("/") if p]
    return [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs allowed by cgroup CPU quotas (v2 ``cpu.max``, v1 CFS), or None when unlimited.

    Inside a container the process's cgroup is usually the namespace root, so
    both the process's own path and its ancestors are checked; the tightest wins.
    """
    groups = _own_cgroups(proc_cgroup)
    quotas: list[float] = []
    for directory in _ancestors(root, groups.get("", "/")):  # v2
        try:
            quota, period = (directory / "cpu.max").read_text().split()[:2]
            if quota != "max":
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError):
            continue
    v1 = next((root / name for name in ("cpu,cpuacct", "cpu") if (root / name).is_dir()), None)
    if v1 is not None:
        for directory in _ancestors(v1, groups.get("cpu", "/")):
            try:
                quota_us = int((directory / "cpu.cfs_quota_us").read_text())
                period_us = int((directory / "cpu.cfs_period_us").read_text())
                if quota_us > 0:
                    quotas.append(quota_us / period_us)
            except (OSError, ValueError):
                continue
    return min(quotas) if quotas else None


def available_cpus() -> float:
    """CPUs this process may use: its CPU affinity, capped by any cgroup quota."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return float(affinity) if quota is None else max(0.01, min(float(affinity), quota))


def lambda_vcpus(environ: dict[str, str] | None = None) -> float | None:
    """The CPU share Lambda gives the function's MemorySize, or None outside Lambda.

    Lambda shows the VM's vCPUs to every function but throttles its CPU time in
    proportion to memory, so the visible CPU count overstates what it may use.
    """
    memory = (os.environ if environ is None else environ).get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    try:
        return min(MAX_LAMBDA_VCPUS, int(memory) / MB_PER_VCPU) if memory else None
    except ValueError:
        return None


def torch_threads_for(cpus: float) -> int:
    """Intra-op threads for a CPU share: one per whole CPU (1.75 rounds up), at least one.

    More threads than the quota allows get throttled mid-operator, which is
    slower than fewer threads that run uninterrupted.
    """
    return max(1, math.floor(cpus + 0.25))


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """CPU time of this process (user + system, all threads) in seconds."""
    return time.process_time()
