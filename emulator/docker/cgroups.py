"""A container's memory cgroup, read from the host: peak usage for the REPORT line's Max Memory Used.

The reader lives with the process backend's cgroups (``emulator.lambda_runtime.cgroups``),
which the Docker backend builds on; it is re-exported here for the Docker modules.
The directory is found through the container's init process (``/proc/<pid>/cgroup``),
which works for the cgroupfs and systemd drivers alike.
"""

from __future__ import annotations

from emulator.lambda_runtime.cgroups import CGROUP_ROOT, MIB, MemoryCgroup

__all__ = ["CGROUP_ROOT", "MIB", "MemoryCgroup"]
