"""Fixtures and probes for the Docker emulator's tests (tests/test_docker_*.py).

Tests marked ``docker`` are skipped, with the reason, when no daemon answers.
Every probe talks only to containers the test's own run created, with
bounded timeouts.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

# No registry is reachable: testcontainers must not start its reaper (an image pull).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from emulator.docker.engine import daemon_available, docker_client  # noqa: E402
from emulator.docker.labels import LABEL_RUN  # noqa: E402


def skip_without_docker() -> None:
    reason = daemon_available()
    if reason is not None:
        pytest.skip(f"no Docker daemon: {reason}")


@pytest.fixture(scope="session")
def docker():
    """A client to a live daemon (skips the test when there is none)."""
    skip_without_docker()
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def worker_image(docker) -> str:
    """The worker image, built once (about 1.5 min cold, instant when cached)."""
    from emulator.docker.images import ensure_worker_image

    return ensure_worker_image(client=docker)


def leftovers(client: Any, run_id: str) -> list[str]:
    """Names of containers and networks of ``run_id`` that still exist."""
    selector = {"label": f"{LABEL_RUN}={run_id}"}
    return ([c.name for c in client.containers.list(all=True, filters=selector)]
            + [n.name for n in client.networks.list(filters=selector)])


def exec_python(container: Any, code: str) -> tuple[int, str]:
    """Run ``python3 -c code`` in ``container``; (exit code, output)."""
    result = container.exec_run(["python3", "-c", code])
    return result.exit_code, result.output.decode(errors="replace")


def run_parallel(*calls: tuple[Any, str]) -> list[tuple[int, str]]:
    """Run several ``exec_python`` calls at once (both ends of a hole punch must start together)."""
    results: list[Any] = [None] * len(calls)

    def run(i: int, container: Any, code: str) -> None:
        results[i] = exec_python(container, code)

    threads = [threading.Thread(target=run, args=(i, c, code)) for i, (c, code) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def pair_code(server: str, name: str, timeout: float, relay: bool = False) -> str:
    """Python that pairs through the real rendezvous client and exchanges one message.

    Prints ``channel public peer_public received`` on success, ``TIMEOUT`` on a
    pairing timeout.
    """
    return (
        "import socket\n"
        "from rendezvous.client import pair, PairingTimeout\n"
        "try:\n"
        f"    p = pair({name!r}, {server!r}, timeout={timeout}, relay={relay})\n"
        "except PairingTimeout as exc:\n"
        "    print('TIMEOUT', exc); raise SystemExit(0)\n"
        "p.sock.sendall(socket.gethostname().encode().ljust(12))\n"
        "got = b''\n"
        "while len(got) < 12:\n"
        "    chunk = p.sock.recv(12 - len(got))\n"
        "    if not chunk: break\n"
        "    got += chunk\n"
        "print(p.channel, p.public[0], p.peer_public[0], got.decode().strip())\n"
    )


def connect_code(host: str, port: int, timeout: float = 2.0) -> str:
    """Python that tries one TCP connect and prints CONNECTED, REFUSED (a RST came back) or TIMEOUT."""
    return (
        "import socket\n"
        f"s = socket.socket(); s.settimeout({timeout})\n"
        "try:\n"
        f"    s.connect(({host!r}, {port})); print('CONNECTED')\n"
        "except ConnectionRefusedError: print('REFUSED')\n"
        "except (socket.timeout, TimeoutError): print('TIMEOUT')\n"
        "except OSError as exc: print('ERROR', exc)\n"
    )


@contextmanager
def topology(image: str, client: Any, **config: Any) -> Iterator[Any]:
    """A Topology with the given NetworkConfig fields; asserts nothing is left after it."""
    from emulator.docker.network import NetworkConfig, Topology

    topo = Topology(image, NetworkConfig(**config), client=client)
    try:
        with topo:
            yield topo
    finally:
        assert leftovers(client, topo.run_id) == []
