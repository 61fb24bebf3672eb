"""The rendezvous server: pairs clients by name (TCPunch v1 and lambdatwin v2) and relays.

One :class:`_Connection` protocol object per client, driven by event-loop
callbacks (no task, stream or future per connection: profiling showed the
stream machinery and per-pair log lines as most of the CPU per pair), on
uvloop when it is installed. Every state change happens in one callback, so a
client that disconnects is removed from the waiting table before anyone can
be paired with it (the relay slot leak of issue 14 cannot happen).

Budgets:
- a connection is *unauthenticated* until its request is read and, with a
  secret, its token checked; it must get there within ``auth_timeout_s``;
  unauthenticated connections have their own cap, globally and per source
  address: past a cap, the oldest one past a short grace period is dropped to
  make room (a silent client cannot hold the slots), else the newcomer is
  admitted up to a hard cap of 4x (the requests of a burst of honest clients
  are still in flight when they are accepted) and refused beyond it;
- authenticated connections (waiting, relaying) count against
  ``max_connections``, and each source address against
  ``max_connections_per_source``;
- both caps are kept below the open-file limit (see ``rendezvous.guard``).

Bad input is answered with an error frame (v2) or a close (v1), counted and
logged (rate-limited); it never stops the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from rendezvous import protocol as P
from rendezvous.guard import NonceCache, RateLimitedLog, descriptor_budget

log = logging.getLogger("rendezvous")

_NEW, _WAITING, _RELAY, _DONE = range(4)
# An unauthenticated connection younger than this is never evicted: an honest client's request arrives
# with its connection, but a busy server may take a while to read it (a 2,000-client burst on a loaded
# 2-core machine kept requests unread for over 0.25 s).
_AUTH_GRACE_S = 1.0
_HIGH_WATER = 256 * 1024  # relay: per-direction buffered bytes before the source is paused


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 10000
    health_port: int | None = 8080
    health_host: str | None = None  # default: ``host``
    secret: bytes | None = None  # when set, v2 requests need a valid, fresh, unused token
    allow_v1: bool = False  # TCPunch clients (no authentication at all): only when asked for
    wait_timeout_s: float = 60.0  # how long a waiting entry lives
    auth_timeout_s: float = 5.0  # deadline for a client's request (slowloris, silent clients)
    max_connections: int = 10_000  # authenticated (waiting or relaying)
    max_unauthenticated: int = 2_000
    max_unauthenticated_per_source: int = 512
    max_connections_per_source: int = 4_096
    max_waiting: int = 10_000
    relay_idle_timeout_s: float = 300.0


class _Connection(asyncio.Protocol):
    """One client connection's state machine: NEW -> WAITING -> (paired: closed | RELAY) -> DONE."""

    __slots__ = ("srv", "transport", "peer", "source", "state", "buf", "key", "v2", "private",
                 "partner", "deadline", "last", "eof", "authenticated")

    def __init__(self, srv: "RendezvousServer") -> None:
        self.srv = srv
        self.transport: asyncio.Transport | None = None
        self.state = _NEW
        self.buf = b""
        self.key: tuple[str, str, str] | None = None
        self.partner: _Connection | None = None
        self.private: list[Any] | None = None
        self.eof = False
        self.authenticated = False
        self.v2 = False

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if peer else ("0.0.0.0", 0)
        self.source = self.peer[0]
        self.srv._admit(self)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _RELAY:
            self.last = self.srv.now
            out = self.partner.transport  # type: ignore[union-attr]
            if not out.is_closing():  # writes to a closing transport only produce warnings
                out.write(data)
        elif state == _NEW:
            self.srv._request_data(self, data)
        # WAITING (v1 clients may send more name bytes; tcpunchd ignores them too) and DONE: drop.

    def eof_received(self) -> bool:
        partner = self.partner
        if self.state != _RELAY or partner is None or partner.transport.is_closing():  # type: ignore[union-attr]
            return False  # close: a waiting client that hangs up is gone, and so is a relay without a partner
        self.eof = True
        if partner.eof:  # both directions ended
            partner.transport.close()  # type: ignore[union-attr]
            return False
        partner.transport.write_eof()  # type: ignore[union-attr]
        return True  # keep the other direction open until the partner ends too

    def connection_lost(self, exc: Exception | None) -> None:
        self.srv._release(self)

    def pause_writing(self) -> None:  # our write buffer is full: stop reading the partner
        if self.partner is not None and self.state == _RELAY:
            self.partner.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        if self.partner is not None and self.state == _RELAY and not self.partner.transport.is_closing():  # type: ignore[union-attr]
            self.partner.transport.resume_reading()  # type: ignore[union-attr]

    # -- helpers ---------------------------------------------------------------------------
    def endpoint_json(self) -> str:
        """This client's public address as JSON (an IPv4 literal and an int: nothing to escape)."""
        return f'["{self.peer[0]}",{self.peer[1]}]'

    def info_json(self) -> str:
        private = self.private  # validated by parse_endpoint: an IPv4 literal and an int
        return (f'{{"public":{self.endpoint_json()},"private":'
                + (f'["{private[0]}",{private[1]}]' if private else "null") + "}")

    def send_json(self, body: str, close: bool = False) -> None:
        """A server frame from pre-rendered JSON (the per-pair replies: no json.dumps on the hot path)."""
        data = body.encode()
        self.transport.write(P.LENGTH.pack(len(data)) + data)  # type: ignore[union-attr]
        if close:
            self.close()

    def reply(self, message: dict[str, Any], close: bool = False) -> None:
        self.transport.write(P.server_frame(message))  # type: ignore[union-attr]
        if close:
            self.close()

    def close(self) -> None:
        if self.state != _RELAY:
            self.state = _DONE
        self.transport.close()  # type: ignore[union-attr]


class RendezvousServer:
    """Serve pairing (and relaying) on ``config.port`` and health on ``config.health_port``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.waiting: dict[tuple[str, str, str], _Connection] = {}
        self.counters = {"connections": 0, "open_connections": 0, "pairs_made": 0,
                         "relays_made": 0, "relays_open": 0, "expired": 0, "cancelled": 0, "rejected": 0,
                         "evicted": 0, "auth_timeout": 0, "auth_failed": 0, "replayed": 0, "bad_input": 0}
        self.started = time.time()
        self.now = time.monotonic()
        self.logger = RateLimitedLog(log)
        self.nonces = NonceCache()
        self.max_connections, self.max_unauthenticated, self.hard_unauthenticated = descriptor_budget(
            config.max_connections, config.max_unauthenticated)
        self._unauth: dict[_Connection, float] = {}  # -> deadline, oldest first
        self._unauth_by_source: dict[str, dict[_Connection, float]] = {}
        self._open_by_source: dict[str, int] = {}
        self._relays: set[_Connection] = set()
        self._servers: list[asyncio.base_events.Server] = []
        self._sweeper: asyncio.Task | None = None
        self._debug = log.isEnabledFor(logging.DEBUG)

    @property
    def ports(self) -> tuple[int, int | None]:
        """(pairing port, health port) actually bound (useful with port 0)."""
        main = self._servers[0].sockets[0].getsockname()[1]
        health = self._servers[1].sockets[0].getsockname()[1] if len(self._servers) > 1 else None
        return main, health

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        # Bursts of thousands of clients queue in the kernel; the descriptor budget keeps accept() from EMFILE.
        self._servers.append(await loop.create_server(lambda: _Connection(self), cfg.host, cfg.port, backlog=4096))
        if cfg.health_port is not None:
            self._servers.append(await asyncio.start_server(self._health, cfg.health_host or cfg.host, cfg.health_port))
        self._sweeper = loop.create_task(self._sweep())
        self.logger.event("started", host=cfg.host, port=self.ports[0], health_port=self.ports[1],
                          auth=cfg.secret is not None, v1=cfg.allow_v1, loop=type(loop).__module__,
                          max_connections=self.max_connections, max_unauthenticated=self.max_unauthenticated)
        if cfg.allow_v1:
            self.logger.event("warning", level=logging.WARNING,
                              reason="protocol v1 is on: TCPunch clients pair without any authentication")
        if cfg.secret is None:
            self.logger.event("warning", level=logging.WARNING,
                              reason="no shared secret: anyone who reaches this port can pair and relay")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def serve_forever(self) -> None:
        await self.start()
        await asyncio.gather(*(s.serve_forever() for s in self._servers))

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's own errors (e.g. accept() out of descriptors), one line each and rate-limited."""
        exc = context.get("exception")
        self.logger.event("loop_error", level=logging.ERROR, message=context.get("message"),
                          error=f"{type(exc).__name__}: {exc}" if exc else None)

    # -- budgets -------------------------------------------------------------------------------
    def _admit(self, conn: _Connection) -> None:
        cfg, source = self.config, conn.source
        self.counters["connections"] += 1
        self.now = now = time.monotonic()
        mine = self._unauth_by_source.get(source)
        if self._open_by_source.get(source, 0) + (len(mine) if mine else 0) >= cfg.max_connections_per_source:
            return self._reject(conn, "too many connections from this source")
        cap = cfg.max_unauthenticated_per_source
        if mine is not None and not self._room(mine, cap, 4 * cap, now):
            return self._reject(conn, "too many unauthenticated connections from this source")
        if not self._room(self._unauth, self.max_unauthenticated, self.hard_unauthenticated, now):
            return self._reject(conn, "too many unauthenticated connections")
        deadline = now + cfg.auth_timeout_s
        self._unauth[conn] = deadline
        if mine is None:
            mine = self._unauth_by_source[source] = {}
        mine[conn] = deadline

    def _room(self, table: dict[_Connection, float], cap: int, hard: int, now: float) -> bool:
        """Whether one more unauthenticated connection fits ``table`` (evicting an old one if need be)."""
        return len(table) < cap or self._evict(table, now) or len(table) < hard

    def _evict(self, table: dict[_Connection, float], now: float) -> bool:
        """Drop the oldest unauthenticated connection of ``table`` if it is past the grace period."""
        oldest, deadline = next(iter(table.items()))
        if deadline - self.config.auth_timeout_s > now - min(_AUTH_GRACE_S, self.config.auth_timeout_s / 2):
            return False
        self.counters["evicted"] += 1
        self.logger.event("evicted", peer=oldest.peer, reason="unauthenticated too long while the budget was full")
        self._forget_unauth(oldest)
        oldest.close()
        return True

    def _reject(self, conn: _Connection, reason: str) -> None:
        self.counters["rejected"] += 1
        self.logger.event("rejected", peer=conn.peer, reason=reason)
        conn.state = _DONE
        conn.transport.close()  # type: ignore[union-attr]

    def _forget_unauth(self, conn: _Connection) -> None:
        if self._unauth.pop(conn, None) is not None:
            mine = self._unauth_by_source[conn.source]
            del mine[conn]
            if not mine:
                del self._unauth_by_source[conn.source]

    def _authenticated(self, conn: _Connection) -> bool:
        """Move ``conn`` to the authenticated budget; False (and an answer) when that is full."""
        self._forget_unauth(conn)
        if self.counters["open_connections"] >= self.max_connections:
            self.counters["rejected"] += 1
            self.logger.event("rejected", peer=conn.peer, reason="too many connections")
            if conn.v2:
                conn.reply({"status": "error", "reason": "server busy: too many connections; retry later"}, close=True)
            else:
                conn.close()
            return False
        conn.authenticated = True
        self.counters["open_connections"] += 1
        self._open_by_source[conn.source] = self._open_by_source.get(conn.source, 0) + 1
        return True

    def _release(self, conn: _Connection) -> None:
        """Connection gone: give back its slots and take it out of every table."""
        self._forget_unauth(conn)
        if conn.authenticated:
            conn.authenticated = False
            self.counters["open_connections"] -= 1
            left = self._open_by_source[conn.source] - 1
            if left:
                self._open_by_source[conn.source] = left
            else:
                del self._open_by_source[conn.source]
        if conn.state == _WAITING and conn.key is not None and self.waiting.get(conn.key) is conn:
            del self.waiting[conn.key]
            if self._debug:
                self.logger.event("gone", level=logging.DEBUG, peer=conn.peer, key=conn.key)
        elif conn.state == _RELAY:
            self._relays.discard(conn)
            partner = conn.partner
            if partner is not None and partner.state == _RELAY:
                partner.state = _DONE
                self._relays.discard(partner)
                partner.transport.close()  # type: ignore[union-attr]
                self.counters["relays_open"] -= 1
        conn.state = _DONE
        conn.partner = None

    # -- requests ------------------------------------------------------------------------------
    def _request_data(self, conn: _Connection, data: bytes) -> None:
        buf = conn.buf + data if conn.buf else data
        if buf[0] != 0xFF:
            return self._handle_v1(conn, P.v1_name(buf))
        conn.v2 = True
        head = len(P.MAGIC) + P.LENGTH.size
        if len(buf) < head:
            if not P.MAGIC.startswith(buf):
                return self._bad(conn, "bad magic")
            conn.buf = buf
            return
        if buf[:len(P.MAGIC)] != P.MAGIC:
            return self._bad(conn, "bad magic")
        (length,) = P.LENGTH.unpack_from(buf, len(P.MAGIC))
        if length > P.MAX_FRAME_BYTES:
            return self._bad(conn, f"frame of {length} bytes exceeds {P.MAX_FRAME_BYTES}")
        if len(buf) < head + length:
            conn.buf = buf
            return
        conn.buf = b""
        try:
            request = P.parse_request(buf[head:head + length])
        except P.ProtocolError as exc:
            return self._bad(conn, str(exc))
        self._handle_v2(conn, request)

    def _bad(self, conn: _Connection, reason: str) -> None:
        self.counters["bad_input"] += 1
        self.logger.event("bad_request", peer=conn.peer, reason=reason)
        self._forget_unauth(conn)
        conn.reply({"status": "error", "reason": reason}, close=True)

    def _handle_v1(self, conn: _Connection, name: bytes) -> None:
        if not self.config.allow_v1:
            self.counters["rejected"] += 1
            self.logger.event("rejected", peer=conn.peer, reason="protocol v1 is off (start with --allow-v1)")
            self._forget_unauth(conn)
            return conn.close()
        if not self._authenticated(conn):
            return
        self._pair(conn, ("v1", "", name.hex()), "pair", name.decode(errors="replace"), "")

    def _handle_v2(self, conn: _Connection, request: dict[str, Any]) -> None:
        op, name, job = request["op"], request["name"], request.get("job", "")
        secret = self.config.secret
        if secret is not None:
            wall = time.time()
            why = P.check_token(secret, request, wall)
            if why is None and not self.nonces.add(request["nonce"], request["ts"] + P.TOKEN_WINDOW_S + 1, wall):
                if len(self.nonces) >= self.nonces.capacity:
                    why = "server busy: too many recent requests to check for replays; retry later"
                else:
                    why = "token replayed (each token is good for one request)"
                    self.counters["replayed"] += 1
            if why is not None:
                self.counters["auth_failed"] += 1
                self.logger.event("rejected", peer=conn.peer, job=job, name=name, reason=why)
                self._forget_unauth(conn)
                return conn.reply({"status": "error", "reason": f"authentication failed: {why}"}, close=True)
        if not self._authenticated(conn):
            return
        if op == "cancel":
            waiter = self.waiting.pop(("v2", job, name), None) or self.waiting.pop(("relay", job, name), None)
            if waiter is None:
                return conn.reply({"status": "error", "reason": f"no client is waiting on {name!r} in job {job!r}"},
                                  close=True)
            self.counters["cancelled"] += 1
            waiter.reply({"status": "cancelled"}, close=True)
            return conn.reply({"status": "cancelled"}, close=True)
        conn.private = request.get("private")
        self._pair(conn, ("relay" if op == "relay" else "v2", job, name), op, name, job)

    def _pair(self, conn: _Connection, key: tuple[str, str, str], op: str, name: str, job: str) -> None:
        other = self.waiting.pop(key, None)
        if other is not None and (other.state != _WAITING or other.transport.is_closing()):  # type: ignore[union-attr]
            other = None  # cannot happen (a closed waiter leaves the table at once); never pair with one anyway
        if other is None:
            if len(self.waiting) >= self.config.max_waiting:
                self.counters["rejected"] += 1
                if conn.v2:
                    return conn.reply({"status": "error", "reason": "server busy: too many waiting clients; retry later"},
                                      close=True)
                return conn.close()
            conn.key, conn.state, conn.deadline = key, _WAITING, self.now + self.config.wait_timeout_s
            self.waiting[key] = conn
            if conn.v2:
                conn.send_json(f'{{"status":"waiting","public":{conn.endpoint_json()}}}')
            else:  # v1: the client's own address at once
                conn.transport.write(P.pack_v1_address(*conn.peer))  # type: ignore[union-attr]
            return
        if self._debug:
            self.logger.event("paired", level=logging.DEBUG, op=op, job=job, name=name, a=other.peer, b=conn.peer)
        if not conn.v2:  # v1: each gets the other's address, then both close
            self.counters["pairs_made"] += 1
            other.transport.write(P.pack_v1_address(*conn.peer))  # type: ignore[union-attr]
            # The second client's own address and its peer's in one write (one segment, one system call).
            conn.transport.write(P.pack_v1_address(*conn.peer) + P.pack_v1_address(*other.peer))  # type: ignore[union-attr]
            other.close()
            return conn.close()
        if op != "relay":
            self.counters["pairs_made"] += 1
            other.send_json(f'{{"status":"paired","public":{other.endpoint_json()},"peer":{conn.info_json()}}}', close=True)
            return conn.send_json(f'{{"status":"paired","public":{conn.endpoint_json()},"peer":{other.info_json()}}}',
                                  close=True)
        # Relay: both "paired" frames go out before any relayed byte can.
        self.counters["relays_made"] += 1
        self.counters["relays_open"] += 1
        other.send_json(f'{{"status":"paired","relay":true,"public":{other.endpoint_json()},"peer":{conn.info_json()}}}')
        conn.send_json(f'{{"status":"paired","relay":true,"public":{conn.endpoint_json()},"peer":{other.info_json()}}}')
        for a, b in ((conn, other), (other, conn)):
            a.state, a.partner, a.last = _RELAY, b, self.now
            a.transport.set_write_buffer_limits(high=_HIGH_WATER)  # type: ignore[union-attr]
            self._relays.add(a)

    # -- deadlines -----------------------------------------------------------------------------
    async def _sweep(self) -> None:
        cfg = self.config
        interval = max(0.02, min(0.5, cfg.auth_timeout_s / 5, cfg.wait_timeout_s / 5))
        relay_every = max(1, int(1.0 / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            try:
                tick += 1
                self._expire(time.monotonic(), relay=tick % relay_every == 0)
            except Exception as exc:  # noqa: BLE001 - the sweeper must outlive any one bad entry
                self.logger.event("sweep_error", level=logging.ERROR, error=repr(exc))

    def _expire(self, now: float, relay: bool) -> None:
        self.now = now
        late = []
        for conn, deadline in self._unauth.items():
            if deadline > now:
                break
            late.append(conn)
        for conn in late:
            self.counters["auth_timeout"] += 1
            self.logger.event("auth_timeout", peer=conn.peer)
            self._forget_unauth(conn)
            conn.close()
        expired = []
        for key, conn in self.waiting.items():
            if conn.deadline > now:
                break
            expired.append(key)
        for key in expired:
            conn = self.waiting.pop(key)
            self.counters["expired"] += 1
            if conn.v2:
                conn.reply({"status": "timeout", "reason": f"no peer joined {key[2]!r} within "
                                                           f"{self.config.wait_timeout_s:g} s"}, close=True)
            else:
                conn.close()
        if relay:
            idle = [c for c in self._relays if now - c.last > self.config.relay_idle_timeout_s
                    and c.partner is not None and now - c.partner.last > self.config.relay_idle_timeout_s]
            for conn in idle:
                if conn.state == _RELAY:
                    self.logger.event("relay_idle", peer=conn.peer)
                    conn.transport.close()  # type: ignore[union-attr]
            self.nonces.prune(time.time())
            self.logger.flush()

    # -- health --------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return {**self.counters, "unauthenticated": len(self._unauth), "waiting": len(self.waiting), "max_connections": self.max_connections,
                "max_unauthenticated": self.max_unauthenticated,
                "hard_unauthenticated": self.hard_unauthenticated, "uptime_s": time.time() - self.started}

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), self.config.auth_timeout_s)
            parts = line.decode(errors="replace").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path == "/livez":
                status, body = "200 OK", b"ok\n"
            elif path == "/metrics":
                status, body = "200 OK", json.dumps(self.metrics()).encode()
            else:
                status, body = "404 Not Found", b"try /livez or /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
