"""Run network commands (``ip``, ``tc``, ``iptables``) inside a container's network namespace.

Workers get no NET_ADMIN — a Lambda function cannot change its own routes —
so the platform sets their default route from outside: with ``nsenter`` from
the host when the daemon is local and we are root (milliseconds), else with a
short-lived helper container that joins the worker's network namespace
(``network_mode=container:<id>``) and holds NET_ADMIN only for that command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Sequence
from emulator.contracts.errors import EnvironmentSetupError


class NetnsError(EnvironmentSetupError, RuntimeError):
    """A command in a container's network namespace failed."""


def _local_pid(container: Any) -> int | None:
    """The container's init PID when it is visible on this host (local daemon, root)."""
    if os.geteuid() != 0 or shutil.which("nsenter") is None:
        return None
    container.reload()
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if pid <= 0 or not os.path.exists(f"/proc/{pid}/ns/net"):
        return None
    return pid


def run_in_netns(container: Any, argv: Sequence[str], image: str | None = None, check: bool = True) -> str:
    """Run ``argv`` in ``container``'s network namespace with NET_ADMIN; returns its output.

    Args:
        image: image for the helper container when nsenter cannot be used
            (it must contain ``argv[0]``); defaults to the container's own image.

    Raises:
        NetnsError: the command failed (when ``check``).
    """
    pid = _local_pid(container)
    if pid is not None:
        proc = subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True)
        code, output = proc.returncode, proc.stdout + proc.stderr
    else:
        client = container.client
        helper_image = image or container.attrs["Config"]["Image"]
        helper = client.containers.run(helper_image, entrypoint=list(argv[:1]), command=list(argv[1:]),
                                       network_mode=f"container:{container.id}", cap_add=["NET_ADMIN"],
                                       detach=True)
        try:
            code = helper.wait(timeout=30)["StatusCode"]
            output = helper.logs().decode(errors="replace")
        finally:
            helper.remove(force=True)
    if check and code != 0:
        raise NetnsError(f"`{' '.join(argv)}` in {container.name} failed (exit {code}): {output.strip()[-500:]}")
    return output


def set_default_route(container: Any, gateway: str) -> None:
    """Point ``container``'s default route at ``gateway`` (its NAT router)."""
    run_in_netns(container, ["ip", "route", "replace", "default", "via", gateway])
