"""NAT presets: the iptables rules a router container applies between its LAN and the public network.

``cone``
    MASQUERADE keeps the source port when it can, so one internal endpoint
    maps to one public endpoint whatever the destination (endpoint-independent
    mapping, RFC 4787/5382); inbound packets pass only when conntrack has seen
    the flow from inside (address-and-port-dependent filtering). Two workers
    behind two cone NATs can hole-punch with a TCP simultaneous open.
``symmetric``
    MASQUERADE ``--random-fully``: every new flow gets a random public port,
    so the port the rendezvous server saw is useless to the peer; punching
    fails and the job needs the relay.
``none``
    No router: the worker sits on the public network with its own address.

Unsolicited inbound SYNs are dropped silently, never answered with a RST
(RFC 5382 REQ-4: a RST would kill the peer's simultaneous-open attempt).
The router forwards only towards the public subnet, so a worker reaches
nothing but the public services and other NATs' public addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NatPreset(str, Enum):
    """The NAT behaviour of a worker LAN: the one table of NAT types (CLI choices derive from it).

    Adding a type means one member here and its row in ``_MASQUERADE_OPTIONS``.
    """

    CONE = "cone"
    SYMMETRIC = "symmetric"
    NONE = "none"

    @property
    def masquerade_options(self) -> str | None:
        """Extra iptables MASQUERADE options of the router, or None when there is no router."""
        return _MASQUERADE_OPTIONS[self]

    @classmethod
    def parse(cls, value: "str | NatPreset") -> "NatPreset":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"NAT preset {value!r} must be one of {', '.join(p.value for p in cls)}") from None


_MASQUERADE_OPTIONS: dict[NatPreset, str | None] = {
    NatPreset.CONE: "",  # keep the source port: endpoint-independent mapping
    NatPreset.SYMMETRIC: " --random-fully",  # a random public port per flow
    NatPreset.NONE: None,
}
NAT_CHOICES = tuple(p.value for p in NatPreset)


@dataclass(frozen=True)
class Impairment:
    """Optional link impairment on a router's public side (tc netem).

    ``latency_ms`` is added once to every packet leaving a LAN, so a round
    trip between two NATed workers gains ``2 * latency_ms``.
    """

    latency_ms: float = 0.0
    loss_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or not (0 <= self.loss_pct < 100):
            raise ValueError("latency must be >= 0 ms and loss in [0, 100) %")

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.loss_pct > 0


def _iface_of(subnet: str) -> str:
    # The interface whose connected route covers the subnet: Docker does not
    # promise eth0/eth1 order when a container joins two networks.
    return f"$(ip -o -4 route show to {subnet} | awk '{{print $3; exit}}')"


def router_script(preset: NatPreset, lan_subnet: str, public_subnet: str) -> str:
    """A shell script that turns a container with NET_ADMIN into the NAT router of ``lan_subnet``."""
    randomize = preset.masquerade_options
    if randomize is None:
        raise ValueError(f"the `{preset.value}` preset has no router")
    return "\n".join([
        "set -eu",
        f"PUB={_iface_of(public_subnet)}",
        f"LAN={_iface_of(lan_subnet)}",
        'test -n "$PUB" && test -n "$LAN"',
        # Drop, never reject: no RST or ICMP goes back to an unsolicited sender.
        "iptables -P INPUT DROP",
        "iptables -P FORWARD DROP",
        "iptables -A INPUT -i lo -j ACCEPT",
        "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
        "iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "iptables -A INPUT -i $LAN -p icmp -j ACCEPT",
        "iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        f"iptables -A FORWARD -i $LAN -o $PUB -s {lan_subnet} -d {public_subnet} -j ACCEPT",
        f"iptables -t nat -A POSTROUTING -o $PUB -s {lan_subnet} -j MASQUERADE{randomize}",
        'echo "$PUB $LAN"',
    ])


def netem_script(impairment: Impairment, subnet: str) -> str:
    """Apply ``impairment`` on egress of the interface facing ``subnet``.

    Falls back to iptables' statistic match for loss when the kernel has no
    netem qdisc; latency without netem fails with a message saying so.
    """
    iface = _iface_of(subnet)
    netem = []
    if impairment.latency_ms > 0:
        netem.append(f"delay {impairment.latency_ms:g}ms")
    if impairment.loss_pct > 0:
        netem.append(f"loss {impairment.loss_pct:g}%")
    lines = ["set -u", f"IF={iface}", f"if tc qdisc replace dev $IF root netem {' '.join(netem)} 2>/tmp/netem.err; then exit 0; fi"]
    if impairment.latency_ms > 0:
        lines.append("echo \"this kernel has no tc netem qdisc (CONFIG_NET_SCH_NETEM): latency cannot be emulated: "
                     "$(cat /tmp/netem.err)\" >&2; exit 3")
    else:
        lines.append(f"iptables -I OUTPUT -o $IF -m statistic --mode random --probability {impairment.loss_pct / 100:.6f} -j DROP")
        lines.append(f"iptables -I FORWARD -o $IF -m statistic --mode random --probability {impairment.loss_pct / 100:.6f} -j DROP")
    return "\n".join(lines)
