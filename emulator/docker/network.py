"""The emulator's network: a public network with the cloud services, NATed LANs for the workers.

::

    public bridge  ── s3.lambdatwin.internal (moto server)
       │           ── rendezvous.lambdatwin.internal (python -m rendezvous serve)
       │           ── nat-0 (router) ── lan-0 ── worker containers
       │           ── nat-1 (router) ── lan-1 ── worker containers
       host (orchestrator, Runtime API servers on each LAN's gateway address)

Each LAN holds up to ``workers_per_nat`` execution environments (1: one NAT
per environment, as Lambda's per-environment NAT; more: shared). With the
``none`` preset workers join the public network directly. Workers resolve the
service names through ``/etc/hosts`` entries (the Route 53 record's twin): a
LAN has no Docker DNS view of the public network. Their default route is set
from outside (they have no NET_ADMIN); the LAN gateway — the host — stays
on-link, which is where their Runtime API lives, as 127.0.0.1:9001 is on-link
in a Lambda sandbox.

Everything carries ``lambdatwin.run=<run id>``; :meth:`Topology.down` (also on
errors and Ctrl-C via the context manager) removes it all.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from emulator.docker.engine import docker_client
from emulator.docker.labels import TeardownReport, new_topology_id, run_labels, teardown
from emulator.docker.nat import Impairment, NatPreset, netem_script, router_script
from emulator.docker.netns import run_in_netns, set_default_route
from emulator.docker.subnets import SubnetAllocator, create_network
from emulator.contracts.errors import EnvironmentSetupError

RENDEZVOUS_HOST = "rendezvous.lambdatwin.internal"
S3_HOST = "s3.lambdatwin.internal"
RENDEZVOUS_PORT = 10000
RENDEZVOUS_HEALTH_PORT = 8080
S3_PORT = 5000
PUBLIC_PREFIX = 22  # room for ~1,000 routers and services
_STARTUP_TIMEOUT_S = 60.0


class TopologyError(EnvironmentSetupError, RuntimeError):
    """A part of the network could not be set up; the message says which and why."""


@dataclass(frozen=True)
class NetworkConfig:
    """How workers are networked.

    Args:
        nat: NAT preset of every worker LAN.
        workers_per_nat: environments sharing one LAN and router (1 = one NAT each).
        impairment: optional latency/loss on each router's public side
            (on each worker's interface with ``none``).
    """

    nat: NatPreset = NatPreset.CONE
    workers_per_nat: int = 1
    impairment: Impairment = field(default_factory=Impairment)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nat", NatPreset.parse(self.nat))
        if self.workers_per_nat < 1:
            raise ValueError("workers_per_nat must be at least 1")


@dataclass
class Service:
    """A container on the public network."""

    role: str
    container: Any
    ip: str
    port: int
    hostname: str

    @property
    def address(self) -> str:
        """``host:port`` as workers dial it (by name)."""
        return f"{self.hostname}:{self.port}"

    @property
    def url(self) -> str:
        """``http://ip:port`` as the host reaches it."""
        return f"http://{self.ip}:{self.port}"


@dataclass
class Lan:
    """One worker LAN: its bridge network, its gateway (the host) and its NAT router."""

    index: int
    network: Any
    subnet: ipaddress.IPv4Network
    gateway: str  # the host's address on this LAN (Runtime API servers bind here)
    router: Any | None = None
    router_ip: str | None = None  # the router's LAN-side address: the workers' default route
    public_ip: str | None = None  # the router's public address: what peers and servers see
    members: int = 0

    @property
    def name(self) -> str:
        return self.network.name


def _container_ip(container: Any, network_name: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network_name]["IPAddress"]


def _lan_prefix(members: int) -> int:
    # network, broadcast, gateway (host) and router, plus the members
    return min(29, 32 - math.ceil(math.log2(members + 4)))


class Topology:
    """Build and tear down one run's networks and service containers.

    Args:
        image: the image for services and routers (``ensure_worker_image()``).
        config: NAT preset, sharing, impairment.
        run_id: label value of everything created; a new one when None.
        client: Docker client; ``docker_client()`` when None.
    """

    def __init__(self, image: str, config: NetworkConfig | None = None, run_id: str | None = None, client: Any = None) -> None:
        self.image = image
        self.config = config or NetworkConfig()
        self.run_id = run_id or new_topology_id()
        self.client = client or docker_client()
        self.public: Any = None
        self.public_subnet: ipaddress.IPv4Network | None = None
        self.public_gateway: str | None = None
        self.services: dict[str, Service] = {}
        self._lans: list[Lan] = []
        self._lock = threading.Lock()
        self._next_index = 0
        self._allocator: SubnetAllocator | None = None

    # -- naming --------------------------------------------------------------
    def name(self, suffix: str) -> str:
        """A container/network name of this run."""
        return f"lt-{self.run_id}-{suffix}"

    def labels(self, role: str, **extra: str) -> dict[str, str]:
        return run_labels(self.run_id, role, **extra)

    # -- lifecycle -----------------------------------------------------------
    def up(self) -> "Topology":
        """Create the public network (idempotent)."""
        if self.public is None:
            self._allocator = SubnetAllocator(self.client)
            self.public, self.public_subnet = create_network(
                self.client, self.name("public"), PUBLIC_PREFIX, self.labels("public-network"), self._allocator)
            self.public_gateway = str(next(self.public_subnet.hosts()))
        return self

    def down(self) -> TeardownReport:
        """Remove every container and network of this run."""
        report = teardown(self.client, self.run_id)
        self.public = None
        self._lans.clear()
        self.services.clear()
        return report

    def __enter__(self) -> "Topology":
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- services on the public network ---------------------------------------
    def start_service(self, role: str, hostname: str, command: Sequence[str], port: int,
                      environment: dict[str, str] | None = None, health_url_port: int | None = None) -> Service:
        """Run ``command`` (with the image's ENTRYPOINT replaced) on the public network as ``hostname``.

        Waits until ``port`` accepts TCP connections (or ``GET /livez`` answers on
        ``health_url_port``) from the host.

        Raises:
            TopologyError: the container exited or did not become ready in time.
        """
        self.up()
        # The high-level containers.create cannot set per-network aliases: use the API.
        networking = self.client.api.create_networking_config(
            {self.public.name: self.client.api.create_endpoint_config(aliases=[hostname])})
        container_id = self.client.api.create_container(
            self.image, entrypoint=list(command[:1]), command=list(command[1:]), name=self.name(role),
            hostname=hostname.split(".")[0], labels=self.labels(role), environment=environment or {},
            networking_config=networking, host_config=self.client.api.create_host_config(network_mode=self.public.name),
        )["Id"]
        container = self.client.containers.get(container_id)
        container.start()
        ip = _container_ip(container, self.public.name)
        self._wait_ready(container, ip, port, health_url_port)
        service = Service(role, container, ip, port, hostname)
        self.services[role] = service
        return service

    def _wait_ready(self, container: Any, ip: str, port: int, health_port: int | None) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=30).decode(errors="replace")
                raise TopologyError(f"{container.name} exited at start:\n{logs}")
            try:
                if health_port is not None:
                    urllib.request.urlopen(f"http://{ip}:{health_port}/livez", timeout=1).close()
                else:
                    socket.create_connection((ip, port), timeout=1).close()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        logs = container.logs(tail=30).decode(errors="replace")
        raise TopologyError(f"{container.name} did not accept connections on {ip}:{port} within "
                            f"{_STARTUP_TIMEOUT_S:.0f} s (is the daemon on this host? the emulator needs a local engine):\n{logs}")

    def start_s3(self) -> Service:
        """The S3 endpoint: moto's server, as ``s3.lambdatwin.internal:5000``."""
        # Clients reach it by name; without this moto takes the host name's first label for a bucket.
        return self.start_service("s3", S3_HOST, ["python3", "-m", "moto.server", "-H", "0.0.0.0", "-p", str(S3_PORT)],
                                  S3_PORT, environment={"S3_IGNORE_SUBDOMAIN_BUCKETNAME": "true"})

    def start_rendezvous(self, command: Sequence[str] | None = None, environment: dict[str, str] | None = None) -> Service:
        """The rendezvous server as ``rendezvous.lambdatwin.internal:10000``.

        Args:
            command: replaces ``python3 -m rendezvous serve`` (tests use other servers).
        """
        if command is None:
            command = ["python3", "-m", "rendezvous", "serve", "--host", "0.0.0.0", "--port", str(RENDEZVOUS_PORT),
                       "--health-port", str(RENDEZVOUS_HEALTH_PORT)]
            return self.start_service("rendezvous", RENDEZVOUS_HOST, command, RENDEZVOUS_PORT, environment,
                                      health_url_port=RENDEZVOUS_HEALTH_PORT)
        return self.start_service("rendezvous", RENDEZVOUS_HOST, command, RENDEZVOUS_PORT, environment)

    def extra_hosts(self) -> dict[str, str]:
        """``/etc/hosts`` entries a worker needs: the public services by name."""
        return {svc.hostname: svc.ip for svc in self.services.values()}

    # -- worker LANs ---------------------------------------------------------
    def _new_lan(self, index: int) -> Lan:
        assert self._allocator is not None
        network, subnet = create_network(self.client, self.name(f"lan-{index}"), _lan_prefix(self.config.workers_per_nat),
                                         self.labels("lan-network", lan=str(index)), self._allocator)
        lan = Lan(index, network, subnet, gateway=str(next(subnet.hosts())))
        router = self.client.containers.create(
            self.image, entrypoint=["sleep"], command=["infinity"], name=self.name(f"nat-{index}"),
            hostname=f"nat-{index}", labels=self.labels("nat-router", lan=str(index), preset=self.config.nat.value),
            network=self.public.name, cap_add=["NET_ADMIN"], sysctls={"net.ipv4.ip_forward": "1"}, detach=True)
        network.connect(router)
        router.start()
        lan.router = router
        lan.router_ip = _container_ip(router, network.name)
        lan.public_ip = _container_ip(router, self.public.name)
        self._exec(router, router_script(self.config.nat, str(subnet), str(self.public_subnet)))
        if self.config.impairment.active:
            self._exec(router, netem_script(self.config.impairment, str(self.public_subnet)))
        return lan

    def _exec(self, container: Any, script: str) -> str:
        code, output = container.exec_run(["sh", "-c", script])
        text = output.decode(errors="replace") if output else ""
        if code != 0:
            raise TopologyError(f"setting up {container.name} failed (exit {code}): {text.strip()[-800:]}")
        return text

    def prepare_lans(self, count: int, parallelism: int = 4) -> None:
        """Create LANs (and routers) ahead of time so environments do not wait for them.

        NAT setup is the platform's, not the function's: a cold start on Lambda
        does not include building its network path.
        """
        self.up()
        if self.config.nat is NatPreset.NONE:
            return
        with self._lock:
            missing = max(0, count - len(self._lans))
            start = self._next_index
            self._next_index += missing
        if missing == 0:
            return
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            lans = list(pool.map(self._new_lan, range(start, start + missing)))
        with self._lock:
            self._lans.extend(lans)
            self._lans.sort(key=lambda lan: lan.index)

    def lease(self) -> Lan:
        """A LAN with room for one more environment (a new LAN and router when all are full).

        With the ``none`` preset the public network itself is the "LAN".
        """
        self.up()
        if self.config.nat is NatPreset.NONE:
            return Lan(-1, self.public, self.public_subnet, gateway=self.public_gateway)
        with self._lock:
            for lan in self._lans:
                if lan.members < self.config.workers_per_nat:
                    lan.members += 1
                    return lan
            index = self._next_index
            self._next_index += 1
        lan = self._new_lan(index)  # outside the lock: other threads create theirs meanwhile
        with self._lock:
            lan.members = 1
            self._lans.append(lan)
        return lan

    def release(self, lan: Lan) -> None:
        """Give a LAN slot back (the environment on it is gone)."""
        if lan.index < 0:
            return
        with self._lock:
            lan.members = max(0, lan.members - 1)

    def worker_create_kwargs(self, lan: Lan) -> dict[str, Any]:
        """``containers.create`` arguments that put a worker on ``lan`` (no NET_ADMIN)."""
        return {"network": lan.name, "extra_hosts": self.extra_hosts(), "cap_drop": ["NET_ADMIN", "NET_RAW"]}

    def attach(self, container: Any, lan: Lan) -> None:
        """After a worker started: route it through its NAT (or impair its link with ``none``)."""
        if lan.router_ip is not None:
            set_default_route(container, lan.router_ip)
        elif self.config.impairment.active:
            script = netem_script(self.config.impairment, str(lan.subnet))
            run_in_netns(container, ["sh", "-c", script], image=self.image)

    @property
    def lans(self) -> list[Lan]:
        with self._lock:
            return list(self._lans)

    def start_worker_container(self, suffix: str, command: Sequence[str] = ("sleep", "infinity"),
                               lan: Lan | None = None, **create_kwargs: Any) -> tuple[Any, Lan]:
        """Start a plain container as a worker on a (leased) LAN, routed through its NAT.

        For tests and probes; execution environments create their own
        containers with :meth:`worker_create_kwargs` and :meth:`attach`.
        """
        lan = lan or self.lease()
        kwargs = {**self.worker_create_kwargs(lan), **create_kwargs}
        container = self.client.containers.create(
            self.image, entrypoint=list(command[:1]), command=list(command[1:]), name=self.name(suffix),
            labels=self.labels("worker"), detach=True, **kwargs)
        container.start()
        self.attach(container, lan)
        return container, lan
