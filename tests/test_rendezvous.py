"""The rendezvous server and pairing client on loopback: real sockets, bounded, self-stopping."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from rendezvous import protocol as P
from rendezvous.client import PairingError, PairingTimeout, cancel, pair
from tests.rendezvous_helpers import address, running_server

pytestmark = pytest.mark.timeout(120)


def v1_client(port: int, name: bytes) -> tuple[socket.socket, bytes]:
    """A TCPunch v1 client written from the protocol description: raw name, then 8-byte replies."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(name)
    return sock, P.recv_exact(sock, 8)


def test_v1_pairing_byte_for_byte():
    with running_server(allow_v1=True) as server:
        port = server.ports[0]
        a, a_self = v1_client(port, b"job-7:0-1")
        b, b_self = v1_client(port, b"job-7:0-1")
        assert a_self == socket.inet_aton("127.0.0.1") + struct.pack("!H", a.getsockname()[1]) + b"\0\0"
        assert b_self[:4] == socket.inet_aton("127.0.0.1")
        a_peer, b_peer = P.recv_exact(a, 8), P.recv_exact(b, 8)
        assert a_peer == b_self and b_peer == a_self
        assert a.recv(1) == b"" and b.recv(1) == b""  # the server closes both
        assert server.counters["pairs_made"] == 1


def test_v2_pair_gives_a_working_direct_connection():
    with running_server() as server:
        with ThreadPoolExecutor(2) as pool:
            fa, fb = (pool.submit(pair, "x", address(server), 10, job="j") for _ in range(2))
            a, b = fa.result(), fb.result()
        assert a.channel == b.channel == "direct"
        a.sock.sendall(b"hello")
        assert P.recv_exact(b.sock, 5) == b"hello"
        b.sock.sendall(b"back")
        assert P.recv_exact(a.sock, 4) == b"back"
        assert a.peer_public == b.public
        a.sock.close(), b.sock.close()


def test_v2_auth_accepts_the_right_token_and_rejects_others():
    secret = b"s3cret"
    with running_server(secret=secret) as server:
        with ThreadPoolExecutor(2) as pool:
            fa, fb = (pool.submit(pair, "n", address(server), 10, job="j", secret=secret) for _ in range(2))
            fa.result().sock.close(), fb.result().sock.close()
        with pytest.raises(PairingError, match="authentication failed"):
            pair("n", address(server), 5, job="j", secret=b"wrong")
        with pytest.raises(PairingError, match="authentication failed"):
            pair("n", address(server), 5, job="j")
        # v1 has no auth, so it is off unless asked for.
        sock = socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5)
        sock.sendall(b"name")
        assert sock.recv(8) == b""
        assert server.counters["auth_failed"] >= 2 and server.counters["rejected"] >= 1


def test_waiting_entries_expire_and_can_be_cancelled():
    with running_server(wait_timeout_s=0.5) as server:
        start = time.monotonic()
        with pytest.raises(PairingTimeout, match="no peer joined"):
            pair("lonely", address(server), 10)
        assert time.monotonic() - start < 5 and server.counters["expired"] == 1
    with running_server() as server:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(pair, "c", address(server), 10, job="j")
            deadline = time.monotonic() + 5
            while not server.waiting and time.monotonic() < deadline:
                time.sleep(0.01)
            assert cancel("c", address(server), job="j")
            with pytest.raises(PairingError, match="cancelled"):
                waiting.result()
        assert not cancel("c", address(server), job="j")


def test_relay_mode_splices_two_clients():
    with running_server() as server:
        with ThreadPoolExecutor(2) as pool:
            fa, fb = (pool.submit(pair, "r", address(server), 10, job="j", relay=True) for _ in range(2))
            a, b = fa.result(), fb.result()
        assert a.channel == b.channel == "relay"
        payload = os.urandom(3 * 1024 * 1024)
        sender = threading.Thread(target=a.sock.sendall, args=(payload,))
        sender.start()
        assert P.recv_exact(b.sock, len(payload)) == payload
        sender.join()
        a.sock.close()
        assert b.sock.recv(1) == b""  # the close propagates
        b.sock.close()
        assert server.counters["relays_made"] == 1


def health(server, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ports[1]}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_bad_input_never_hurts_the_server():
    with running_server(auth_timeout_s=0.5) as server:
        port = server.ports[0]
        junk = [os.urandom(64), P.MAGIC + struct.pack("!I", 10) + b"not json!!",
                P.MAGIC + struct.pack("!I", 10**6), P.client_frame({"v": 2, "op": "explode", "name": "x"}),
                P.client_frame({"v": 2, "op": "pair", "name": "x" * 500})]
        for data in junk:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                s.settimeout(5)
                try:
                    reply = s.recv(4096)
                except ConnectionResetError:
                    reply = b""
                if data.startswith(P.MAGIC) and reply:
                    assert b'"status":"error"' in reply
        # Half-sent frame and a slowloris client: cut off by the read deadline.
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        half.sendall(P.MAGIC + struct.pack("!I", 100) + b"{")
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(P.MAGIC[:1])
        assert half.recv(1024) in (b"",) and slow.recv(1024) == b""
        # 1000 idle connections: the server still pairs and answers health checks.
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(1000)]
        assert health(server, "/livez") == (200, b"ok\n")
        with ThreadPoolExecutor(2) as pool:
            fa, fb = (pool.submit(pair, "after", address(server), 10) for _ in range(2))
            fa.result().sock.close(), fb.result().sock.close()
        for s in idle:
            s.close()
        status, body = health(server, "/metrics")
        assert status == 200 and b'"bad_input"' in body
        assert server.counters["bad_input"] >= 4 and server.counters["auth_timeout"] >= 2
        assert health(server, "/nope")[0] == 404


def test_connection_cap_rejects_extra_clients():
    with running_server(max_connections=5) as server:
        held = []
        for i in range(5):  # five authenticated clients waiting for peers hold the five slots
            sock = socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5)
            sock.sendall(P.client_frame({"v": 2, "op": "pair", "name": f"held-{i}", "job": "j"}))
            assert P.recv_server_frame(sock)["status"] == "waiting"
            held.append(sock)
        with pytest.raises(PairingError, match="server busy"):
            pair("extra", address(server), 5, job="j")
        assert server.counters["rejected"] >= 1
        for s in held:
            s.close()


def test_unreachable_server_is_a_clear_timeout():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PairingTimeout, match="not reachable"):
        pair("x", f"127.0.0.1:{port}", 1.0)
    with pytest.raises(PairingError, match="cannot resolve"):
        pair("x", "no-such-host.invalid:10000", 1.0)
