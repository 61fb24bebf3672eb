"""The emulator's network: NAT presets, hole punching, filtering, names, isolation, cleanup.

Every probe targets containers this test's own topology created; timeouts are short and bounded.
"""

from __future__ import annotations

import pytest

from emulator.docker.labels import teardown
from emulator.docker.nat import Impairment, NatPreset
from emulator.docker.network import RENDEZVOUS_HOST, NetworkConfig, Topology, TopologyError
from tests.docker_helpers import connect_code, exec_python, leftovers, pair_code, run_parallel, topology

pytestmark = pytest.mark.docker
PUNCH_TIMEOUT_S = 8.0


@pytest.fixture
def cone(worker_image, docker):
    with topology(worker_image, docker, nat="cone") as topo:
        yield topo


@pytest.fixture
def symmetric(worker_image, docker):
    with topology(worker_image, docker, nat="symmetric") as topo:
        yield topo


def _pair_two(topo: Topology, name: str, relay: bool = False) -> list[list[str]]:
    """Pair two new workers through the rendezvous; each row: channel, public, peer public, peer's hostname."""
    rdv = topo.services.get("rendezvous") or topo.start_rendezvous()
    a, _ = topo.start_worker_container(f"{name}-a")
    b, _ = topo.start_worker_container(f"{name}-b")
    results = run_parallel((a, pair_code(rdv.address, name, PUNCH_TIMEOUT_S, relay)),
                           (b, pair_code(rdv.address, name, PUNCH_TIMEOUT_S, relay)))
    for code, out in results:
        assert code == 0, out
    rows = [out.split() for _, out in results]
    if rows[0][0] != "TIMEOUT":
        # Each side received the other's hostname (the container id prefix) over the connection.
        assert rows[0][3] == b.id[:12] and rows[1][3] == a.id[:12], rows
    return rows


def test_cone_nats_hole_punch_a_direct_tcp_connection(cone):
    (ch_a, pub_a, peer_a, _), (ch_b, pub_b, peer_b, _) = _pair_two(cone, "punch")
    assert ch_a == ch_b == "direct"
    routers = {lan.public_ip for lan in cone.lans}
    assert len(routers) == 2, "one NAT per worker by default"
    # The server saw the routers' public addresses, not the workers' LAN addresses.
    assert {pub_a, pub_b} == routers and peer_a == pub_b and peer_b == pub_a


def test_symmetric_nats_defeat_punching_and_the_relay_still_connects(symmetric):
    outcomes = _pair_two(symmetric, "sym")
    assert [o[0] for o in outcomes] == ["TIMEOUT", "TIMEOUT"], outcomes
    relayed = _pair_two(symmetric, "sym-relay", relay=True)
    assert [o[0] for o in relayed] == ["relay", "relay"]


def test_no_nat_workers_are_public_and_pair_directly(worker_image, docker):
    with topology(worker_image, docker, nat="none") as topo:
        (ch_a, pub_a, _, _), (ch_b, pub_b, _, _) = _pair_two(topo, "open")
        assert ch_a == ch_b == "direct"
        assert topo.lans == [] and {pub_a, pub_b} <= {c.attrs["NetworkSettings"]["Networks"][topo.public.name]["IPAddress"]
                                                      for c in _workers(topo)}


def _workers(topo: Topology):
    return topo.client.containers.list(filters={"label": [f"lambdatwin.run={topo.run_id}", "lambdatwin.role=worker"]})


def test_unsolicited_inbound_syn_is_dropped_without_rst(cone):
    rdv = cone.start_rendezvous()
    worker, lan = cone.start_worker_container("quiet")
    # A live mapping (worker -> rendezvous): the cone NAT keeps the port, and only the rendezvous may answer on it.
    worker.exec_run(["python3", "-c", "import socket, time; s = socket.create_connection((%r, %d), 3); "
                     "open('/tmp/port', 'w').write(str(s.getsockname()[1])); time.sleep(15)" % (RENDEZVOUS_HOST, rdv.port)],
                    detach=True)
    mapped = None
    for _ in range(50):
        code, out = exec_python(worker, "print(open('/tmp/port').read())")
        if code == 0 and out.strip():
            mapped = int(out.strip())
            break
    assert mapped is not None
    for port in (mapped, 4444, rdv.port):
        code, out = exec_python(rdv.container, connect_code(lan.public_ip, port))
        assert out.strip() == "TIMEOUT", f"SYN to the NAT's port {port}: {out}"
    # Control: a closed port's RST does come back through the NAT, so TIMEOUT above means "dropped".
    code, out = exec_python(worker, connect_code(rdv.ip, 1))
    assert out.strip() == "REFUSED"


def test_workers_resolve_the_rendezvous_name_and_cannot_reach_each_other(cone):
    rdv = cone.start_rendezvous()
    a, lan_a = cone.start_worker_container("iso-a")
    b, lan_b = cone.start_worker_container("iso-b", command=["python3", "-m", "http.server", "8000"])
    code, out = exec_python(a, f"import socket; print(socket.gethostbyname({RENDEZVOUS_HOST!r}))")
    assert out.strip() == rdv.ip
    code, out = exec_python(a, connect_code(RENDEZVOUS_HOST, rdv.port))
    assert out.strip() == "CONNECTED"
    b.reload()
    b_ip = b.attrs["NetworkSettings"]["Networks"][lan_b.name]["IPAddress"]
    assert lan_a.subnet != lan_b.subnet
    code, out = exec_python(a, connect_code(b_ip, 8000))
    assert out.strip() in ("TIMEOUT", "ERROR"), f"a worker reached another worker's LAN directly: {out}"
    # Nor through the other NAT's public address without a punched mapping.
    code, out = exec_python(a, connect_code(lan_b.public_ip, 8000))
    assert out.strip() == "TIMEOUT"
    # The worker's default route is its NAT; it cannot change it (no NET_ADMIN).
    code, out = a.exec_run(["ip", "route", "replace", "default", "via", lan_a.gateway])
    assert code != 0
    route = a.exec_run(["ip", "route", "show", "default"]).output.decode()
    assert f"via {lan_a.router_ip}" in route


def test_shared_nat_puts_workers_behind_one_public_address(worker_image, docker):
    with topology(worker_image, docker, nat="cone", workers_per_nat=2) as topo:
        (ch_a, pub_a, peer_a, _), (ch_b, pub_b, _, _) = _pair_two(topo, "shared")
        assert len(topo.lans) == 1 and pub_a == pub_b == peer_a == topo.lans[0].public_ip
        assert ch_a == ch_b == "direct"  # through the LAN (the private address), as behind a real home NAT


def test_impairment_applies_loss_or_says_why_latency_cannot(worker_image, docker):
    with topology(worker_image, docker, nat="cone", impairment=Impairment(loss_pct=5.0)) as topo:
        topo.start_rendezvous()
        _, lan = topo.start_worker_container("lossy")
        rules = lan.router.exec_run(["sh", "-c", "tc qdisc show; iptables -S"]).output.decode()
        assert "netem" in rules or "statistic" in rules
    try:
        with topology(worker_image, docker, nat="cone", impairment=Impairment(latency_ms=20)) as topo:
            _, lan = topo.start_worker_container("slow")
            assert "netem" in lan.router.exec_run(["tc", "qdisc", "show"]).output.decode()
    except TopologyError as exc:
        assert "netem" in str(exc)


def test_everything_is_removed_after_a_failure_and_by_teardown(worker_image, docker):
    topo = Topology(worker_image, NetworkConfig(nat=NatPreset.CONE), client=docker)
    with pytest.raises(KeyboardInterrupt):
        with topo:
            topo.start_rendezvous()
            topo.start_worker_container("doomed")
            assert len(leftovers(docker, topo.run_id)) >= 5
            raise KeyboardInterrupt  # as Ctrl-C in the middle of a run
    assert leftovers(docker, topo.run_id) == []
    # `lambdatwin emulate down` path: objects of a run that died without cleaning up.
    orphan = Topology(worker_image, NetworkConfig(), client=docker).up()
    orphan.start_worker_container("orphan")
    report = teardown(docker, orphan.run_id)
    assert report.containers and report.networks and not report.errors
    assert leftovers(docker, orphan.run_id) == []
