"""Address plan: explicit subnets for the run's networks, carved from one private pool.

Docker's default pools hold ~30 networks, fewer than a 41-worker run with one
NAT per worker needs, so every network gets an explicit subnet from
``LAMBDATWIN_SUBNET_POOL`` (default 10.213.0.0/16), skipping subnets that
other Docker networks or the host's own routes already use. Creating a
network can still race with another run; :func:`create_network` retries with
the next free subnet.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from typing import Any

DEFAULT_POOL = "10.213.0.0/16"
_MAX_ATTEMPTS = 64


def subnet_pool() -> ipaddress.IPv4Network:
    """The pool the run's subnets come from."""
    return ipaddress.IPv4Network(os.environ.get("LAMBDATWIN_SUBNET_POOL", DEFAULT_POOL))


def _host_routes() -> list[ipaddress.IPv4Network]:
    routes = []
    try:
        with open("/proc/net/route") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                dest, mask = fields[1], fields[7]
                if dest == "00000000":
                    continue  # the default route overlaps everything; it is not a conflict
                addr = socket.inet_ntoa(struct.pack("<L", int(dest, 16)))
                netmask = socket.inet_ntoa(struct.pack("<L", int(mask, 16)))
                routes.append(ipaddress.IPv4Network(f"{addr}/{netmask}", strict=False))
    except OSError:
        pass
    return routes


def used_subnets(client: Any) -> list[ipaddress.IPv4Network]:
    """Subnets of every Docker network and of the host's routes."""
    used = _host_routes()
    for net in client.api.networks():
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            try:
                used.append(ipaddress.IPv4Network(cfg["Subnet"], strict=False))
            except (KeyError, ValueError):
                continue  # IPv6 or no subnet
    return used


class SubnetAllocator:
    """Hands out free subnets to the threads of one run (each subnet once).

    The in-use list is read once; subnets given out are remembered, so
    concurrent network creations in this process never pick the same one.
    """

    def __init__(self, client: Any, pool: ipaddress.IPv4Network | None = None) -> None:
        self.pool = pool or subnet_pool()
        self._used = used_subnets(client)
        self._lock = threading.Lock()

    def take(self, prefix: int) -> ipaddress.IPv4Network:
        """A free subnet of length ``prefix``.

        Raises:
            RuntimeError: the pool is exhausted.
        """
        with self._lock:
            for candidate in self.pool.subnets(new_prefix=prefix):
                if not any(candidate.overlaps(u) for u in self._used):
                    self._used.append(candidate)
                    return candidate
        raise RuntimeError(f"no free /{prefix} subnet left in {self.pool}; remove old runs with "
                           "`lambdatwin emulate down` or set LAMBDATWIN_SUBNET_POOL to a larger private range")

    def refresh(self, client: Any) -> None:
        """Re-read what is in use (another process created networks meanwhile)."""
        with self._lock:
            self._used.extend(used_subnets(client))


def create_network(client: Any, name: str, prefix: int, labels: dict[str, str],
                   allocator: SubnetAllocator) -> tuple[Any, ipaddress.IPv4Network]:
    """A bridge network on a free explicit subnet; returns it and its subnet.

    The bridge does not masquerade: traffic leaves a LAN only through its NAT
    router, and nothing of the run reaches outside networks by accident.

    Raises:
        RuntimeError: the pool is exhausted.
    """
    from docker.errors import APIError
    from docker.types import IPAMConfig, IPAMPool

    for _ in range(_MAX_ATTEMPTS):
        subnet = allocator.take(prefix)
        gateway = str(next(subnet.hosts()))
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)])
        try:
            network = client.networks.create(
                name, driver="bridge", ipam=ipam, labels=labels, check_duplicate=True,
                options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
            )
            return network, subnet
        except APIError as exc:
            if "overlap" not in str(exc.explanation or exc).lower():
                raise
            allocator.refresh(client)  # another run took it; look again
    raise RuntimeError(f"could not create network {name}: every subnet tried overlapped another network")
