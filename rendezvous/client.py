"""Pairing client: ask the rendezvous server for a peer, then open a direct TCP connection.

Hole punching: the client keeps its rendezvous socket's local port, listens on
it and connects from it to the peer's public (and private) address until one
works (SO_REUSEADDR + SO_REUSEPORT), as TCPunch does. When both directions
succeed (e.g. on one host), both sides keep the connection the lower of the
two public endpoints chose and marked with one byte, so only one side
chooses (see ``_punch``).
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from dataclasses import dataclass

from rendezvous import protocol as P

DEFAULT_PORT = 10000
_CONNECT_RETRY_S = 0.05
_BACKOFF_CAP_S = 2.0
_KEEP = b"K"


class PairingError(ConnectionError):
    """The server refused the request (bad token, bad name, server busy)."""


class PairingTimeout(TimeoutError):
    """No peer, or no working path to it, before the deadline."""


@dataclass
class Pairing:
    """A connected socket to the peer and how it was made."""

    sock: socket.socket
    channel: str  # "direct" | "relay"
    public: tuple[str, int]  # this client's address as the server saw it
    peer_public: tuple[str, int]
    peer_private: tuple[str, int] | None


def resolve(server: str) -> tuple[str, int]:
    """``host[:port]`` to an IPv4 address and port (DNS names resolved, e.g. rendezvous.<domain>)."""
    host, _, port = server.rpartition(":") if ":" in server else (server, "", str(DEFAULT_PORT))
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, ValueError) as exc:
        raise PairingError(f"cannot resolve rendezvous server {server!r}: {exc}") from exc
    return infos[0][4][0], int(port)


def _reusable_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _request(server: tuple[str, int], message: dict, deadline: float,
             secret: bytes | None = None) -> tuple[socket.socket, dict]:
    """Connect (retrying with backoff until ``deadline``) and send one v2 request; returns the first reply.

    Each attempt signs the request anew (tokens are single-use).

    Raises:
        PairingTimeout: the server is not reachable before ``deadline``.
        PairingError: the server's reply is not the protocol.
    """
    delay = 0.05
    while True:
        sock = _reusable_socket()
        sock.bind(("0.0.0.0", 0))
        try:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            sock.connect(server)
            request = {**message, "private": [_local_ip(sock), sock.getsockname()[1]]} \
                if message["op"] == "pair" else message
            sock.sendall(P.client_frame(P.sign(request, secret) if secret is not None else request))
            return sock, P.recv_server_frame(sock)
        except P.ProtocolError as exc:
            sock.close()
            raise PairingError(f"rendezvous server {server[0]}:{server[1]} answered outside the protocol: {exc}") from None
        except (ConnectionRefusedError, ConnectionResetError, socket.timeout, OSError) as exc:
            sock.close()
            if time.monotonic() + delay >= deadline:
                raise PairingTimeout(f"rendezvous server {server[0]}:{server[1]} not reachable before the deadline ({exc})") from exc
            time.sleep(delay)  # backoff, no busy spin
            delay = min(delay * 2, _BACKOFF_CAP_S)


def _local_ip(sock: socket.socket) -> str:
    return sock.getsockname()[0]


def _await_peer(sock: socket.socket, reply: dict, deadline: float, name: str) -> dict:
    while reply.get("status") == "waiting":
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PairingTimeout(f"no peer joined {name!r} before the deadline")
        sock.settimeout(remaining)
        try:
            reply = P.recv_server_frame(sock)
        except socket.timeout:
            raise PairingTimeout(f"no peer joined {name!r} before the deadline") from None
        except P.ProtocolError as exc:
            raise PairingError(f"rendezvous server answered outside the protocol: {exc}") from None
        except ConnectionError as exc:
            raise PairingError(f"rendezvous server closed the connection while {name!r} waited: {exc}") from None
    if reply.get("status") == "paired":
        return reply
    if reply.get("status") == "timeout":
        raise PairingTimeout(f"rendezvous: {reply.get('reason', 'timed out')}")
    raise PairingError(f"rendezvous refused {name!r}: {reply.get('reason') or reply.get('status')}")


def pair(name: str, server: str, timeout: float = 30.0, *, job: str = "", secret: bytes | None = None,
         relay: bool = False, punch_timeout: float | None = None) -> Pairing:
    """A TCP connection to the other client that asked for ``name`` (in ``job``).

    Args:
        timeout: overall seconds for the peer to show up and a path to open.
        relay: ask for a connection relayed by the server (works behind any NAT).
        punch_timeout: seconds allowed for hole punching once the peer is known
            (both sides learn of each other at the same moment, so both give up
            together and can fall back together); None: until ``timeout``.

    Raises:
        PairingTimeout: no peer or no path within ``timeout`` seconds.
        PairingError: the server refused (bad token, bad name, busy).
    """
    deadline = time.monotonic() + timeout
    address = resolve(server)
    message = {"v": 2, "op": "relay" if relay else "pair", "name": name, "job": job}
    sock, reply = _request(address, message, deadline, secret)
    try:
        reply = _await_peer(sock, reply, deadline, name)
        public, peer_public, peer_private = _addresses(reply)
    except BaseException:
        sock.close()
        raise
    if relay:
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Pairing(sock, "relay", public, peer_public, peer_private)
    local_port = sock.getsockname()[1]
    if punch_timeout is not None:
        deadline = min(deadline, time.monotonic() + punch_timeout)
    try:
        direct = _punch(local_port, public, peer_public, peer_private, deadline, name)
    finally:
        sock.close()
    return Pairing(direct, "direct", public, peer_public, peer_private)


def _addresses(reply: dict) -> tuple[tuple[str, int], tuple[str, int], tuple[str, int] | None]:
    """(own public, peer public, peer private) of a "paired" reply, validated.

    Raises:
        PairingError: an address is malformed (a hostile or broken server must not crash the client).
    """
    try:
        public = P.parse_endpoint(reply.get("public"), "the server's view of this client")
        peer = reply.get("peer")
        if not isinstance(peer, dict):
            raise P.ProtocolError(f"\"peer\" must be an object, got {peer!r:.60}")
        peer_public = P.parse_endpoint(peer.get("public"), "the peer's public address")
        private = peer.get("private")
        peer_private = P.parse_endpoint(private, "the peer's private address") if private is not None else None
    except P.ProtocolError as exc:
        raise PairingError(f"rendezvous server sent an invalid address: {exc}") from None
    return public, peer_public, peer_private


def _punch(local_port: int, public: tuple, peer_public: tuple, peer_private: tuple | None, deadline: float,
           name: str) -> socket.socket:
    # The side with the lower public endpoint decides: it keeps the first connection
    # that opens (connect or accept) and marks it with KEEP; the other side waits
    # for that mark. One decider means both sides always agree on the socket.
    decider = tuple(public) < tuple(peer_public)
    targets = [peer_public] + ([peer_private] if peer_private and peer_private != peer_public else [])
    listener = _reusable_socket()
    listener.bind(("0.0.0.0", local_port))
    listener.listen(4)
    listener.setblocking(False)
    pending: dict[socket.socket, tuple] = {}  # connects in progress
    open_: list[socket.socket] = []  # established, waiting for KEEP (non-decider)
    next_attempt = 0.0
    chosen: socket.socket | None = None
    try:
        while chosen is None and time.monotonic() < deadline:
            now = time.monotonic()
            if not pending and now >= next_attempt:
                for target in targets:
                    s = _reusable_socket()
                    s.bind(("0.0.0.0", local_port))
                    s.setblocking(False)
                    if s.connect_ex(target) in (0, errno.EINPROGRESS, errno.EAGAIN):
                        pending[s] = target
                    else:
                        s.close()
                next_attempt = now + _CONNECT_RETRY_S
            r, w = _wait_ready([listener, *open_], list(pending), 0.05)
            established = []
            for s in w:
                pending.pop(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    established.append(s)
                else:
                    s.close()
            for s in r:
                if s is listener:
                    try:
                        established.append(listener.accept()[0])
                    except BlockingIOError:
                        pass
                    continue
                try:
                    mark = s.recv(1)
                except (BlockingIOError, ConnectionError):
                    mark = b""
                open_.remove(s)
                if mark == _KEEP:
                    chosen = s
                    break
                s.close()
            for s in established:
                if chosen is None and decider:
                    try:
                        s.setblocking(True)
                        s.sendall(_KEEP)
                        chosen = s
                        continue
                    except OSError:
                        pass
                if chosen is None and not decider:
                    s.setblocking(False)
                    open_.append(s)
                else:
                    s.close()
        if chosen is None:
            raise PairingTimeout(f"could not open a direct connection for {name!r} to {peer_public} before the deadline "
                                 "(symmetric NAT or filtering?); use the relay channel")
        chosen.setblocking(True)
        chosen.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return chosen
    finally:
        listener.close()
        for s in list(pending) + open_:
            if s is not chosen:
                s.close()


def _wait_ready(readable: list[socket.socket], writable: list[socket.socket], timeout: float) -> tuple[list, list]:
    """select() without its 1,024-descriptor limit (epoll/poll via selectors)."""
    with selectors.DefaultSelector() as sel:
        for s in readable:
            sel.register(s, selectors.EVENT_READ)
        for s in writable:
            sel.register(s, selectors.EVENT_WRITE)
        events = sel.select(timeout)
    return ([k.fileobj for k, ev in events if ev & selectors.EVENT_READ],
            [k.fileobj for k, ev in events if ev & selectors.EVENT_WRITE])


def cancel(name: str, server: str, *, job: str = "", secret: bytes | None = None, timeout: float = 5.0) -> bool:
    """Withdraw a waiting request; True when one was waiting."""
    message = {"v": 2, "op": "cancel", "name": name, "job": job}
    sock, reply = _request(resolve(server), message, time.monotonic() + timeout, secret)
    sock.close()
    return reply.get("status") == "cancelled"


def secret_from_env(variable: str = P.SECRET_ENV) -> bytes | None:
    """The shared secret from the environment, if set."""
    value = os.environ.get(variable)
    return value.encode() if value else None
