"""Finding the Docker engine, or saying exactly how to get one.

The emulator must not assume a running daemon: ``.ci/run`` and the README
install ``docker.io`` and start ``dockerd`` when none answers. Everything in
``emulator.docker`` gets its client from :func:`docker_client`, so a missing
daemon is one clear message, not a ``requests`` traceback.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from emulator.contracts.errors import EnvironmentSetupError

START_HINT = (
    "install and start it: `apt-get install -y docker.io` then `nohup dockerd >/tmp/dockerd.log 2>&1 &` "
    "(or `bash .ci/run`, which does both)"
)


class DockerUnavailable(EnvironmentSetupError, RuntimeError):
    """No Docker daemon answers, or a host tool the emulator needs is missing."""


def docker_client(timeout_s: float = 120.0):  # -> docker.DockerClient
    """A client to a daemon that answered a ping.

    Honours ``DOCKER_HOST`` like the ``docker`` CLI.

    Raises:
        DockerUnavailable: the SDK is missing or no daemon answers.
    """
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # the SDK is a project dependency; say so if it is gone
        raise DockerUnavailable(f"the Docker SDK is not installed ({exc}); run `pip install -e .`") from exc
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
        raise DockerUnavailable(f"no Docker daemon answers at {where} ({reason}); {START_HINT}") from exc
    return client


@lru_cache(maxsize=1)
def daemon_available() -> str | None:
    """None when a daemon answers, else the reason (for ``pytest.skip``)."""
    try:
        docker_client(timeout_s=10).close()
    except DockerUnavailable as exc:
        return str(exc)
    return None


def require_host_tool(name: str, package: str) -> str:
    """The path of a host program the emulator runs (debootstrap, nsenter, ...).

    Raises:
        DockerUnavailable: it is not installed; the message names the package.
    """
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise DockerUnavailable(f"`{name}` is not installed on this host; run `apt-get install -y {package}`")
    return path
