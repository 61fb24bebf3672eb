"""Linux cgroups for execution environments: read a container's, or make one for a host process tree.

Lambda gives a function CPU in proportion to its memory (1,769 MB = 1 vCPU, up
to 6 vCPUs at 10,240 MB) and counts everything in the sandbox, child processes
included, against MemorySize
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).

- :class:`MemoryCgroup` reads a container's memory cgroup from the host (the
  Docker backend's Max Memory Used).
- :class:`SandboxCgroup` creates one memory + CPU cgroup per process-backend
  environment, under the cgroup this process is in, when the hierarchy is
  writable (cgroup v1 or v2): ``memory.limit_in_bytes``/``memory.max`` at
  MemorySize with no swap, a CFS quota of ``aws.lambda_vcpus(memory)`` CPUs,
  and the kernel's own peak and OOM-kill counters. :func:`create_sandbox_cgroup`
  says why when it cannot, so the run record and report can state it.

Both cgroup versions keep the peak in the kernel: v1 ``memory.max_usage_in_bytes``,
v2 ``memory.peak`` (Linux 5.19+; else ``memory.current`` sampled).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
CFS_PERIOD_US = 100_000


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_key(path: Path, key: str) -> int | None:
    """``key N`` from a flat-keyed cgroup file (memory.events, memory.oom_control)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


class MemoryCgroup:
    """The memory cgroup of one container (None-safe: reads return None once it is gone)."""

    def __init__(self, directory: Path, version: int) -> None:
        self.directory = directory
        self.version = version

    @classmethod
    def of_pid(cls, pid: int | str, root: Path = CGROUP_ROOT) -> "MemoryCgroup | None":
        """The memory cgroup of host process ``pid`` (or ``"self"``); None when it cannot be seen from here."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                directory = root / "memory" / path.lstrip("/")
                if (directory / "memory.max_usage_in_bytes").exists():
                    return cls(directory, 1)
        for line in lines:
            if line.startswith("0::"):
                directory = root / line[3:].lstrip("/")
                if (directory / "memory.peak").exists() or (directory / "memory.current").exists():
                    return cls(directory, 2)
        return None

    def _read_int(self, name: str) -> int | None:
        return _read_int(self.directory / name)

    def peak_bytes(self) -> int | None:
        """The high-water mark of memory charged to the cgroup."""
        if self.version == 1:
            return self._read_int("memory.max_usage_in_bytes")
        return self._read_int("memory.peak") or self._read_int("memory.current")

    def current_bytes(self) -> int | None:
        """Memory charged now."""
        return self._read_int("memory.usage_in_bytes" if self.version == 1 else "memory.current")

    def limit_bytes(self) -> int | None:
        """The memory limit the kernel enforces (None when unlimited)."""
        if self.version == 1:
            value = self._read_int("memory.limit_in_bytes")
            return value if value is not None and value < (1 << 60) else None
        try:
            text = (self.directory / "memory.max").read_text().strip()
        except OSError:
            return None
        return None if text == "max" else int(text)

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this cgroup."""
        if self.version == 1:
            return _read_key(self.directory / "memory.oom_control", "oom_kill") or 0
        return _read_key(self.directory / "memory.events", "oom_kill") or 0


class SandboxCgroup:
    """A memory + CPU cgroup made for one process-backend execution environment.

    Start the runtime through :meth:`command` so it, and every process it
    starts, is in the cgroup (and charged) from its first byte.
    """

    def __init__(self, memory: MemoryCgroup, cpu_dir: Path | None, dirs: list[Path], description: str) -> None:
        self.memory = memory
        self.cpu_dir = cpu_dir
        self._dirs = dirs  # every directory made, deepest-last
        self.description = description

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped so it runs inside the cgroup.

        A shell writes its own pid into each ``cgroup.procs`` and then ``exec``s
        ``argv`` (same pid, environment untouched). No ``preexec_fn``: that is
        unsafe in a multi-threaded parent.
        """
        script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 121; shift; done; shift; unset PWD; exec "$@"'  # sh sets PWD
        return ["/bin/sh", "-c", script, "sh", *(str(d / "cgroup.procs") for d in self._dirs), "--", *argv]

    def peak_bytes(self) -> int:
        return self.memory.peak_bytes() or 0

    def oom_kills(self) -> int:
        return self.memory.oom_kills()

    def close(self) -> None:
        """Remove the cgroup once its processes are gone (retries briefly while they are reaped)."""
        for directory in reversed(self._dirs):
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _own_path(controller: str | None) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _v1_mount(controller: str, root: Path) -> Path | None:
    for candidate in (root / controller, root / "cpu,cpuacct", root / "cpuacct,cpu"):
        if (candidate / "cgroup.procs").exists() and (controller != "cpu" or (candidate / "cpu.cfs_quota_us").exists()):
            return candidate
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _create_v1(name: str, memory_mb: int, vcpus: float, root: Path) -> SandboxCgroup:
    made: list[Path] = []
    try:
        mem_mount, cpu_mount = _v1_mount("memory", root), _v1_mount("cpu", root)
        mem_own, cpu_own = _own_path("memory"), _own_path("cpu")
        if mem_mount is None or mem_own is None or cpu_mount is None or cpu_own is None:
            raise OSError("no cgroup v1 memory and cpu hierarchies")
        mem_dir = mem_mount / mem_own.lstrip("/") / name
        mem_dir.mkdir()
        made.append(mem_dir)
        limit = memory_mb * MIB
        _write(mem_dir / "memory.limit_in_bytes", str(limit))
        if (mem_dir / "memory.memsw.limit_in_bytes").exists():
            _write(mem_dir / "memory.memsw.limit_in_bytes", str(limit))  # Lambda has no swap
        cpu_dir = cpu_mount / cpu_own.lstrip("/") / name
        cpu_dir.mkdir()
        made.append(cpu_dir)
        _write(cpu_dir / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        _write(cpu_dir / "cpu.cfs_quota_us", str(max(1000, int(vcpus * CFS_PERIOD_US))))
        return SandboxCgroup(MemoryCgroup(mem_dir, 1), cpu_dir, made,
                             f"cgroup v1: memory.limit_in_bytes {memory_mb} MiB, cpu.cfs_quota_us {vcpus:.2f} vCPU")
    except OSError:
        SandboxCgroup(MemoryCgroup(root, 1), None, made, "").close()
        raise


def _create_v2(name: str, memory_mb: int, vcpus: float, root: Path) -> SandboxCgroup:
    own = _own_path(None)
    if own is None or not (root / "cgroup.controllers").exists():
        raise OSError("no cgroup v2 hierarchy at " + str(root))
    parent = root / own.lstrip("/")
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    for controller in ("memory", "cpu"):
        if controller not in enabled:
            _write(parent / "cgroup.subtree_control", f"+{controller}")
    directory = parent / name
    directory.mkdir()
    try:
        _write(directory / "memory.max", str(memory_mb * MIB))
        if (directory / "memory.swap.max").exists():
            _write(directory / "memory.swap.max", "0")
        _write(directory / "cpu.max", f"{max(1000, int(vcpus * CFS_PERIOD_US))} {CFS_PERIOD_US}")
    except OSError:
        directory.rmdir()
        raise
    return SandboxCgroup(MemoryCgroup(directory, 2), directory, [directory],
                         f"cgroup v2: memory.max {memory_mb} MiB, cpu.max {vcpus:.2f} vCPU")


def create_sandbox_cgroup(name: str, memory_mb: int, vcpus: float, root: Path = CGROUP_ROOT) -> tuple[SandboxCgroup | None, str]:
    """A new cgroup limiting memory to ``memory_mb`` and CPU to ``vcpus``; (None, why not) when impossible."""
    reasons = []
    for create in (_create_v1, _create_v2):
        try:
            group = create(name, memory_mb, vcpus, root)
            return group, group.description
        except OSError as exc:
            reasons.append(f"{create.__name__[8:]}: {exc}")
    return None, "no writable cgroup (" + "; ".join(reasons) + ")"
