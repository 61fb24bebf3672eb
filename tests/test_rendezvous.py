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


def test_relay_half_close_keeps_the_other_direction():
    with running_server() as server:
        with ThreadPoolExecutor(2) as pool:
            fa, fb = (pool.submit(pair, "half", address(server), 10, job="j", relay=True) for _ in range(2))
            a, b = fa.result(), fb.result()
        a.sock.sendall(b"request")
        a.sock.shutdown(socket.SHUT_WR)  # a is done sending, still listening
        assert P.recv_exact(b.sock, 7) == b"request" and b.sock.recv(1) == b""
        b.sock.sendall(b"response after the half close")
        assert P.recv_exact(a.sock, 29) == b"response after the half close"
        b.sock.close()
        assert a.sock.recv(1) == b""
        a.sock.close()
        assert _wait_until(lambda: server.counters["relays_open"] == 0 and server.counters["open_connections"] == 0)


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


# -- issue 14: security --------------------------------------------------------------------------

def _relay_request(port: int, name: str, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(P.client_frame({"v": 2, "op": "relay", "name": name, "job": "leak"}))
    return sock


def _wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_relay_slots_are_released_when_the_first_client_leaves_as_its_partner_arrives():
    """The first relay client hangs up just as its partner arrives, 300 times at once: no slot may stay held."""
    rounds = 300
    with running_server() as server:
        port = server.ports[0]

        def one(i: int) -> str:
            first = _relay_request(port, f"r{i}")
            assert P.recv_server_frame(first)["status"] == "waiting"
            first.close()
            second = _relay_request(port, f"r{i}")  # races the server's view of the close
            second.settimeout(10)
            try:
                reply = P.recv_server_frame(second)
                if reply["status"] == "paired":  # paired with the leaving client: the relay must end
                    assert second.recv(1) == b""
                return reply["status"]
            except (ConnectionError, P.ProtocolError):
                return "closed"
            finally:
                second.close()

        with ThreadPoolExecutor(100) as pool:
            statuses = list(pool.map(one, range(rounds)))
        assert set(statuses) <= {"waiting", "paired", "closed"}
        assert _wait_until(lambda: server.counters["open_connections"] == 0 and not server.waiting), \
            f"{server.counters['open_connections']} slots still held, {len(server.waiting)} waiting"


def _signed(secret: bytes, name: str, now: float | None = None, **extra) -> bytes:
    return P.client_frame(P.sign({"v": 2, "op": "pair", "name": name, "job": "j", **extra}, secret, now))


def _ask(port: int, frame: bytes) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(frame)
        return P.recv_server_frame(sock)


def test_tokens_are_bound_to_a_time_window_and_a_nonce_and_replays_are_refused():
    secret = b"s3cret"
    with running_server(secret=secret) as server:
        port = server.ports[0]
        frame = _signed(secret, "once")
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(frame)
        assert P.recv_server_frame(sock)["status"] == "waiting"
        # The same bytes again (a captured request): refused, and the waiting client keeps its slot.
        replay = _ask(port, frame)
        assert replay["status"] == "error" and "replayed" in replay["reason"]
        assert list(server.waiting) == [("v2", "j", "once")]
        # A token from an hour ago, or an hour ahead, is refused even if never used.
        for skew in (-3600, 3600):
            old = _ask(port, _signed(secret, "other", time.time() + skew))
            assert old["status"] == "error" and "expired" in old["reason"]
        # A pair token cannot cancel someone's wait (the operation is signed too).
        request = P.sign({"v": 2, "op": "pair", "name": "once", "job": "j"}, secret)
        forged = _ask(port, P.client_frame({**request, "op": "cancel"}))
        assert forged["status"] == "error" and "authentication failed" in forged["reason"]
        assert ("v2", "j", "once") in server.waiting
        # The old, timeless token format is refused.
        legacy = {"v": 2, "op": "pair", "name": "once", "job": "j",
                  "token": __import__("hmac").new(secret, b"j\nonce", "sha256").hexdigest()}
        assert _ask(port, P.client_frame(legacy))["status"] == "error"
        # A fresh, correctly signed partner pairs.
        assert _ask(port, _signed(secret, "once"))["status"] == "paired"
        assert P.recv_server_frame(sock)["status"] == "paired"
        sock.close()
        assert server.counters["replayed"] == 1


def test_silent_clients_cannot_hold_the_connection_slots():
    """A source that never authenticates gets its own small budget and a deadline; others still pair."""
    with running_server(max_connections=64, max_unauthenticated=200, max_unauthenticated_per_source=40,
                        auth_timeout_s=2.0) as server:
        port = server.ports[0]
        # 300 silent connections from another address (127.0.0.2): more than every cap.
        silent = []
        for _ in range(300):
            try:
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)))
            except OSError:
                pass
        time.sleep(0.3)
        assert len(server._unauth) <= 4 * 40  # the source's hard cap
        # 39 legitimate pairings meanwhile, all made.
        with ThreadPoolExecutor(78) as pool:
            futures = [pool.submit(pair, f"legit-{i // 2}", address(server), 10, job="j") for i in range(78)]
            for f in futures:
                f.result().sock.close()
        assert server.counters["pairs_made"] == 39
        # The silent ones are cut off at the deadline.
        assert _wait_until(lambda: not server._unauth, timeout=5)
        c = server.counters
        assert c["auth_timeout"] >= 1 and c["rejected"] + c["evicted"] + c["auth_timeout"] >= 300
        for s in silent:
            s.close()


def test_silent_clients_do_not_take_the_authenticated_slots():
    """As probed in issue 14: 64 silent connections against --max-connections 64, then 39 pairings."""
    with running_server(max_connections=64) as server:
        silent = [socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) for _ in range(64)]
        time.sleep(0.3)
        with ThreadPoolExecutor(78) as pool:
            futures = [pool.submit(pair, f"ok-{i // 2}", address(server), 3, job="j") for i in range(78)]  # before the 5 s read deadline
            for f in futures:
                f.result().sock.close()
        assert server.counters["pairs_made"] == 39
        for s in silent:
            s.close()


def test_a_source_cannot_take_every_connection():
    with running_server(max_connections_per_source=10) as server:
        held = []
        for i in range(10):
            sock = _relay_request(server.ports[0], f"w{i}", source="127.0.0.3")
            assert P.recv_server_frame(sock)["status"] == "waiting"
            held.append(sock)
        extra = _relay_request(server.ports[0], "w-extra", source="127.0.0.3")
        with pytest.raises((ConnectionError, P.ProtocolError)):
            P.recv_server_frame(extra)
        # Another source is unaffected.
        with ThreadPoolExecutor(2) as pool:
            fa, fb = (pool.submit(pair, "other-source", address(server), 10) for _ in range(2))
            fa.result().sock.close(), fb.result().sock.close()
        for s in held + [extra]:
            s.close()


class _FakeServer:
    """A hostile rendezvous server: answers every request with the given raw frames."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(4096)
            for frame in self.frames:
                conn.sendall(frame)
            time.sleep(0.5)

    def close(self) -> None:
        self.listener.close()


def _frame(message) -> bytes:
    body = __import__("json").dumps(message).encode()
    return struct.pack("!I", len(body)) + body


@pytest.mark.parametrize("peer", [
    {"public": ["999.1.1.1", 80]},
    {"public": ["127.0.0.1", 70000]},
    {"public": ["::1", 80]},
    {"public": "127.0.0.1:80"},
    {"public": [["127.0.0.1"], 80]},
    {"public": ["127.0.0.1", True]},
    {"public": ["0.0.0.0", 80]},
    {"public": ["127.0.0.1", 80], "private": ["224.0.0.1", 80]},
    {"public": ["127.0.0.1", 80], "private": ["10.0.0.1", -1]},
    "not an object",
])
def test_pair_refuses_crafted_peer_addresses_with_a_clear_error(peer):
    fake = _FakeServer([_frame({"status": "paired", "public": ["127.0.0.1", 5000], "peer": peer})])
    try:
        with pytest.raises(PairingError, match="invalid address"):
            pair("x", fake.address, 5)
    finally:
        fake.close()


@pytest.mark.parametrize("frames", [
    [struct.pack("!I", 2**31)],  # a huge frame length
    [struct.pack("!I", 5) + b"{nope"],  # not JSON
    [_frame([1, 2, 3])],  # not an object
    [_frame({"status": "waiting"}), struct.pack("!I", 2**31)],  # fine first, hostile second
])
def test_pair_refuses_malformed_server_frames_with_a_clear_error(frames):
    fake = _FakeServer(frames)
    try:
        with pytest.raises(PairingError, match="outside the protocol"):
            pair("x", fake.address, 5)
    finally:
        fake.close()


# -- issue 14: TCPunch v1 compatibility -------------------------------------------------------------

def test_v1_names_longer_than_100_bytes_pair_on_their_first_100_bytes():
    with running_server(allow_v1=True) as server:
        port = server.ports[0]
        a, _ = v1_client(port, b"x" * 100 + b"-first-tail-" * 10)
        b, _ = v1_client(port, b"x" * 100 + b"-other-tail")
        assert P.recv_exact(a, 8)[:4] == socket.inet_aton("127.0.0.1")
        assert P.recv_exact(b, 8)[:4] == socket.inet_aton("127.0.0.1")
        assert server.counters["pairs_made"] == 1
        a.close(), b.close()


def test_v1_names_are_cut_at_the_first_nul_byte():
    with running_server(allow_v1=True) as server:
        port = server.ports[0]
        a, a_self = v1_client(port, b"job-9\0junk")
        b, b_self = v1_client(port, b"job-9\0other junk")
        assert P.recv_exact(a, 8) == b_self and P.recv_exact(b, 8) == a_self
        a.close(), b.close()
        assert list(server.waiting) == []


# -- issue 14: descriptors and log volume --------------------------------------------------------------

def _serve_with_nofile(soft: int, hard: int):
    """``python -m rendezvous serve`` in a child whose open-file limit is (soft, hard); stderr to a file."""
    import resource
    import subprocess
    import sys
    import tempfile

    from emulator.s3server import free_port

    port, health_port = free_port(), free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rendezvous", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--health-port", str(health_port)], stdout=subprocess.DEVNULL, stderr=log,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))

    def metrics() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as resp:
            return __import__("json").loads(resp.read())

    assert _wait_until(lambda: _healthy(metrics), timeout=20), "server did not start"
    return proc, port, log, metrics


def _healthy(metrics) -> bool:
    try:
        metrics()
        return True
    except OSError:
        return False


def test_a_connection_flood_under_a_low_open_file_limit_neither_floods_the_log_nor_stops_the_server():
    proc, port, log, metrics = _serve_with_nofile(64, 64)  # hard 64: the server cannot raise it
    try:
        flood = []
        for _ in range(1500):
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(3)
        for s in flood:
            s.close()
        with ThreadPoolExecutor(2) as pool:  # still pairs afterwards
            fa, fb = (pool.submit(pair, "after-flood", f"127.0.0.1:{port}", 10) for _ in range(2))
            fa.result().sock.close(), fb.result().sock.close()
        assert proc.poll() is None
        log.seek(0, 2)
        assert log.tell() < 64 * 1024, f"{log.tell()} bytes of log for one flood"
        assert metrics()["max_connections"] + metrics()["hard_unauthenticated"] < 64
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_the_server_raises_its_open_file_limit_and_keeps_its_caps_below_it():
    proc, _, log, metrics = _serve_with_nofile(128, 4096)
    try:
        m = metrics()
        assert 128 < m["max_connections"] + m["hard_unauthenticated"] < 4096
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()



def test_without_uvloop_the_server_runs_on_asyncios_loop():
    """uvloop is optional: the same server on the standard library's loop pairs and relays."""
    import asyncio

    with running_server(loop_factory=asyncio.new_event_loop) as server:
        with ThreadPoolExecutor(4) as pool:
            fa, fb = (pool.submit(pair, "plain", address(server), 10, job="j") for _ in range(2))
            ra, rb = (pool.submit(pair, "plain-relay", address(server), 10, job="j", relay=True) for _ in range(2))
            a, b, c, d = fa.result(), fb.result(), ra.result(), rb.result()
        c.sock.sendall(b"through the relay")
        assert P.recv_exact(d.sock, 17) == b"through the relay"
        for x in (a, b, c, d):
            x.sock.close()
        assert server.counters["pairs_made"] == 1 and server.counters["relays_made"] == 1


def test_repeated_log_lines_are_rate_limited(caplog):
    import logging

    from rendezvous.guard import RateLimitedLog

    logger = logging.getLogger("rendezvous.test")
    limited = RateLimitedLog(logger, burst=5, interval_s=0.2)
    with caplog.at_level(logging.INFO, logger="rendezvous.test"):
        for i in range(10_000):
            limited.event("rejected", peer=("10.0.0.1", i), reason="flood")
        time.sleep(0.25)
        limited.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6, lines[:8]
    assert lines[-1].startswith('{"event": "log_suppressed", "of": "rejected", "dropped": 9995')


def test_a_server_that_requires_its_secret_will_not_start_without_it():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "LAMBDATWIN_RENDEZVOUS_SECRET"}
    done = subprocess.run([sys.executable, "-m", "rendezvous", "serve", "--host", "127.0.0.1", "--port", "0",
                           "--health-port", "-1", "--require-secret"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert "--require-secret is set but LAMBDATWIN_RENDEZVOUS_SECRET is empty or unset" in done.stderr


def test_a_full_unauthenticated_budget_drops_its_oldest_silent_connection_for_a_newcomer():
    with running_server(auth_timeout_s=30, max_unauthenticated=8, max_unauthenticated_per_source=4) as server:
        port = server.ports[0]
        silent = [socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.4", 0))
                  for _ in range(4)]
        assert _wait_until(lambda: len(server._unauth) == 4)
        time.sleep(1.2)  # past the grace period: these are silent, not merely unread
        newcomer = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.4", 0))
        assert _wait_until(lambda: server.counters["evicted"] == 1)
        assert silent[0].recv(1) == b""  # the oldest went
        # The newcomer is served normally.
        newcomer.sendall(P.client_frame({"v": 2, "op": "pair", "name": "late", "job": "j"}))
        assert P.recv_server_frame(newcomer)["status"] == "waiting"
        for s in silent + [newcomer]:
            s.close()
