"""``ContainerEnvironment``: a Lambda execution environment that is one container behind a NAT.

The container runs the worker image's ``python3 -m awslambdaric`` with the
function's handler, so the unmodified runtime client drives the handler through
this environment's Runtime API server, which listens on the host's address on
the container's LAN (on-link, like 127.0.0.1:9001 inside a Lambda sandbox; it
never crosses the NAT).

Per function configuration, as Lambda applies it:

- MemorySize -> the container's memory limit (cgroup; no swap). The kernel's
  OOM killer ends an invocation over it: ``Runtime.OutOfMemory`` (Docker's
  ``OOMKilled`` state, or an OOM kill of any process in the container).
- CPU -> a CFS quota proportional to memory (1,769 MB = 1 vCPU), capped by the
  host's CPUs.
- Max Memory Used -> the container cgroup's peak (``memory.peak`` /
  ``memory.max_usage_in_bytes``), read from the host; never above MemorySize.
- EphemeralStorage -> ``/tmp`` is the environment's
  :class:`~emulator.lambda_runtime.storage.EphemeralStorage`, bind-mounted, so
  it is capped and outlives the container when a timeout resets the environment.
- Variables -> exactly Lambda's (the worker image's own ENV, ``HOSTNAME`` and ``HOME``
  are unset before the runtime starts; a PackageType Image function keeps its image's ENV,
  as Lambda applies it).
- Freeze -> ``docker pause`` between invocations, ``unpause`` on the next.
- Timeout or crash -> the container is removed and the next invocation starts
  a new one in the same environment (same log stream, same ``/tmp``), re-running
  INIT inside that invocation.
- Init Duration -> from ``docker start`` until the runtime's first
  ``/invocation/next``: container start + runtime init + handler import. The
  first container is created (image unpacked, network attached) beforehand, as
  Lambda provisions a sandbox before it counts INIT.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from emulator.lambda_runtime.cgroups import MIB, MemoryCgroup
from emulator.docker.labels import run_labels
from emulator.docker.network import Lan, Topology
from emulator.contracts.aws import MB_PER_VCPU
from emulator.contracts.lambdas import FunctionConfig
from emulator.lambda_runtime.environment import ExecutionEnvironment
from emulator.lambda_runtime.loglines import LineSplitter
from emulator.lambda_runtime.storage import EphemeralStorage

LAMBDA_NOFILE = 1024  # Lambda's file descriptor limit
LAMBDA_PROCESSES = 1024  # Lambda's process/thread limit
_SAMPLE_INTERVAL_S = 0.1
_LOG_QUIET_S = 0.02  # a log stream this long silent has delivered what was written before
_LOG_DRAIN_MAX_S = 1.0
_DOCKER_SET = ("HOSTNAME", "HOME")  # variables Docker adds to every container


def deployment_archive(directory: Path) -> bytes:
    """A tar of ``directory``'s files (no bytecode) for ``task_archive``: handler code outside the image."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(directory)))
    return buffer.getvalue()


def cpu_share(memory_mb: int, host_cpus: int | None = None) -> float:
    """CPUs a function of ``memory_mb`` gets: Lambda's 1,769 MB per vCPU, capped by this host."""
    cpus = host_cpus or os.cpu_count() or 1
    return min(float(cpus), memory_mb / MB_PER_VCPU)


class ContainerEnvironment(ExecutionEnvironment):
    """One execution environment = one container (at a time) on a NATed LAN of ``topology``.

    Args:
        function: the function it runs.
        topology: the run's network (public services, NAT LANs).
        image: the worker image (``ensure_worker_image()``).
        task_archive: optional tar (see :func:`deployment_archive`) unpacked into
            ``/var/task`` before start, like a deployment package on top of the image.
    """

    lang_dir = "/usr"  # the image's Python lives in /usr, where Lambda's is in /var/lang

    def __init__(self, function: FunctionConfig, *, topology: Topology, image: str, task_archive: bytes | None = None,
                 image_is_the_function: bool = False) -> None:
        self.topology = topology
        self.lan: Lan | None = topology.lease()
        try:
            super().__init__(function, runtime_api_bind=self.lan.gateway, runtime_api_host=self.lan.gateway)
        except BaseException:
            topology.release(self.lan)
            raise
        self.image = image
        self._task_archive = task_archive
        self.storage = EphemeralStorage(function.ephemeral_storage_mb, prefix=f"lambdatwin-{function.name}-")
        if self.storage.note:
            self.notes["tmp"] = self.storage.note
        self._peak_bytes = 0
        self._stop_lock = threading.Lock()
        # A PackageType Image function's image is the function: Lambda applies its ENV (the function's
        # own variables override it). The worker image stands in for Lambda's managed runtime instead,
        # so its ENV is our build's detail and is unset.
        self._unset = sorted(_DOCKER_SET) if image_is_the_function else self._image_only_variables()
        self.container: Any = None
        self._new_container()

    def _image_only_variables(self) -> list[str]:
        try:
            image_env = self.topology.client.images.get(self.image).attrs["Config"].get("Env") or []
        except Exception:  # noqa: BLE001 - unknown image: containers.create reports it
            image_env = []
        ours = set(self.runtime_environment())
        names = {item.split("=", 1)[0] for item in image_env} | set(_DOCKER_SET)
        return sorted(names - ours)

    def _new_container(self) -> None:
        """Create (not start) the next container of this environment, with fresh per-container state."""
        from docker.types import Ulimit

        fn = self.function
        limit = f"{fn.memory_mb}m"
        self._cgroup: MemoryCgroup | None = None
        self._pid: int | None = None
        self._exit: str | None = None
        self._gone = threading.Event()
        self._log_ended = threading.Event()
        self._last_log = time.monotonic()
        self._paused = False
        name = self.topology.name(f"{fn.name}-{self.instance_id[:8]}-{self.invocations}")
        unset = [arg for key in self._unset for arg in ("-u", key)]
        self.container = self.topology.client.containers.create(
            self.image, entrypoint=["/usr/bin/env", *unset, "python3", "-m", "awslambdaric"], command=[fn.handler],
            name=name, hostname=f"sandbox-{self.instance_id[:8]}", working_dir=self.task_root,
            environment=self.runtime_environment(),
            labels=run_labels(self.topology.run_id, "function", function=fn.name, instance=self.instance_id),
            mem_limit=limit, memswap_limit=limit, nano_cpus=int(cpu_share(fn.memory_mb) * 1e9),
            pids_limit=LAMBDA_PROCESSES, ulimits=[Ulimit(name="nofile", soft=LAMBDA_NOFILE, hard=LAMBDA_NOFILE)],
            volumes={str(self.storage.path): {"bind": "/tmp", "mode": "rw"}},
            detach=True, **self.topology.worker_create_kwargs(self.lan),
        )
        if self._task_archive:
            self.container.put_archive("/var/task", self._task_archive)

    # -- ExecutionEnvironment ---------------------------------------------------
    def _launch(self, env: dict[str, str]) -> None:
        # `env` is what the container was created with (runtime_environment()).
        if self._gone.is_set():
            self._new_container()  # a reset: a new container in the same environment
        self.container.start()
        self.topology.attach(self.container, self.lan)
        self.container.reload()
        pid = int(self.container.attrs["State"].get("Pid") or 0)
        self._pid = pid or None
        self._cgroup = MemoryCgroup.of_pid(pid) if pid else None
        container, gone, ended = self.container, self._gone, self._log_ended
        threading.Thread(target=self._read_logs, args=(container, ended), name=f"logs-{container.name}", daemon=True).start()
        threading.Thread(target=self._watch, args=(gone,), name=f"watch-{container.name}", daemon=True).start()

    def _read_logs(self, container: Any, ended: threading.Event) -> None:
        lines = LineSplitter(self.log)
        try:
            for chunk in container.logs(stream=True, follow=True):
                self._last_log = time.monotonic()
                lines.feed(chunk)
        except Exception:  # noqa: BLE001 - the container was removed under the stream
            pass
        lines.close()
        ended.set()

    def _watch(self, gone: threading.Event) -> None:
        """Sample the cgroup peak (it vanishes with the container) and notice the container's death."""
        pid, cgroup = self._pid, self._cgroup
        if cgroup is not None and pid is not None:
            while os.path.exists(f"/proc/{pid}"):
                self._sample()
                if gone.wait(_SAMPLE_INTERVAL_S):
                    return
        else:
            try:
                self.container.wait()
            except Exception:  # noqa: BLE001 - removed while waiting
                pass
        if not gone.is_set():
            self._record_exit()

    def _sample(self) -> None:
        if self._cgroup is not None:
            value = self._cgroup.peak_bytes()
            if value:
                self._peak_bytes = max(self._peak_bytes, value)

    def _record_exit(self) -> None:
        try:
            state = self.container.client.api.inspect_container(self.container.id)["State"]
        except Exception:  # noqa: BLE001 - already removed by shutdown
            return
        if state.get("Running"):
            return
        if state.get("OOMKilled"):
            self._exit = "oom"
        else:
            self._exit = f"exit:{state.get('ExitCode')}"

    def peak_memory_mb(self) -> int:
        self._sample()
        peak = self._peak_bytes
        if self._cgroup is None and self._exit is None:
            peak = max(peak, self._stats_peak())
        if self._exit == "oom":
            peak = max(peak, self.function.memory_mb * MIB)  # the OOM killer fires at the limit
        return max(1, -(-peak // MIB))

    def _stats_peak(self) -> int:
        # Fallback when the host cannot see the container's cgroup (remote daemon): one stats sample.
        try:
            stats = self.container.stats(stream=False)
            return int(stats.get("memory_stats", {}).get("max_usage") or stats.get("memory_stats", {}).get("usage") or 0)
        except Exception:  # noqa: BLE001
            return 0

    def exit_reason(self) -> str | None:
        if self._exit is None and self._cgroup is not None and not self._gone.is_set() and self._cgroup.oom_kills() > 0:
            self._exit = "oom"  # a process of the sandbox was OOM-killed: Lambda ends the invocation
            self._stop_runtime()
        if self._exit is None and self._pid is not None and not os.path.exists(f"/proc/{self._pid}"):
            self._record_exit()  # the watcher may not have noticed yet
        return self._exit

    def _drain_logs(self) -> None:
        # Output written before the runtime posted its result is still in Docker's
        # log pipeline (sub-millisecond when idle, a few ms under load): wait until
        # the stream has been quiet for a moment, counted from now at the earliest.
        start = time.monotonic()
        deadline = start + _LOG_DRAIN_MAX_S
        while time.monotonic() < deadline and not self._log_ended.is_set():
            if time.monotonic() - max(self._last_log, start) >= _LOG_QUIET_S:
                return
            time.sleep(_LOG_QUIET_S / 4)

    def _freeze(self) -> None:
        try:
            self.container.pause()
            self._paused = True
        except Exception:  # noqa: BLE001 - the container died meanwhile: the next invoke notices
            pass

    def _thaw(self) -> None:
        if self._paused:
            try:
                self.container.unpause()
            except Exception:  # noqa: BLE001
                pass
            self._paused = False

    def _stop_runtime(self) -> None:
        with self._stop_lock:
            if self._gone.is_set() or self.container is None:
                return
            self._sample()
            self._gone.set()
        try:
            self.container.remove(force=True)  # SIGKILL (paused or not), then gone: nothing survives a reset
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _release(self) -> None:
        self.storage.close()
        if self.lan is not None:
            self.topology.release(self.lan)
            self.lan = None
