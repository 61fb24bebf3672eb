"""A container's memory cgroup, read from the host: peak usage for the REPORT line's Max Memory Used.

cgroup v2 keeps the peak in ``memory.peak``; v1 in ``memory.max_usage_in_bytes``.
The directory is found through the container's init process
(``/proc/<pid>/cgroup``), which works for the cgroupfs and systemd drivers
alike. Both counters are the kernel's own high-water mark of everything
charged to the container — the same number ``docker stats`` starts from and
the limit that triggers the OOM killer is compared with.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024


class MemoryCgroup:
    """The memory cgroup of one container (None-safe: reads return None once it is gone)."""

    def __init__(self, directory: Path, version: int) -> None:
        self.directory = directory
        self.version = version

    @classmethod
    def of_pid(cls, pid: int, root: Path = CGROUP_ROOT) -> "MemoryCgroup | None":
        """The memory cgroup of host process ``pid``; None when it cannot be seen from here."""
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
        try:
            return int((self.directory / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def peak_bytes(self) -> int | None:
        """The high-water mark of memory charged to the container."""
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
