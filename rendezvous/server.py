"""The rendezvous server: pairs clients by name (TCPunch v1 and lambdatwin v2) and relays.

One asyncio task per connection; a slow or silent client only costs its own
task (every read has a deadline) and memory is bounded by the connection and
waiting-entry caps. Bad input is answered with an error frame (v2) or a close
(v1), counted and logged; it never stops the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from rendezvous import protocol as P

log = logging.getLogger("rendezvous")


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 10000
    health_port: int | None = 8080
    secret: bytes | None = None  # when set, v2 requests need a valid token
    allow_v1: bool = True  # TCPunch clients (no auth); refused when a secret is set unless forced
    wait_timeout_s: float = 60.0  # how long a waiting entry lives
    read_timeout_s: float = 5.0  # deadline for a client's request (slowloris)
    max_connections: int = 10_000
    max_waiting: int = 10_000
    relay_idle_timeout_s: float = 300.0


@dataclass
class _Waiter:
    public: tuple[str, int]
    private: list[Any] | None
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None  # for relays
    peer: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    relay_done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def info(self) -> dict[str, Any]:
        return {"public": list(self.public), "private": self.private}


class RendezvousServer:
    """Serve pairing (and relaying) on ``config.port`` and health on ``config.health_port``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.waiting: dict[tuple[str, str, str], _Waiter] = {}
        self.counters = {"connections": 0, "open_connections": 0, "pairs_made": 0, "relays_made": 0,
                         "expired": 0, "cancelled": 0, "rejected": 0, "bad_input": 0}
        self.started = time.time()
        self._servers: list[asyncio.base_events.Server] = []

    @property
    def ports(self) -> tuple[int, int | None]:
        """(pairing port, health port) actually bound (useful with port 0)."""
        main = self._servers[0].sockets[0].getsockname()[1]
        health = self._servers[1].sockets[0].getsockname()[1] if len(self._servers) > 1 else None
        return main, health

    async def start(self) -> None:
        cfg = self.config
        self._servers.append(await asyncio.start_server(self._handle, cfg.host, cfg.port, backlog=4096))
        if cfg.health_port is not None:
            self._servers.append(await asyncio.start_server(self._health, cfg.host, cfg.health_port))
        self._event("started", host=cfg.host, port=self.ports[0], health_port=self.ports[1],
                    auth=cfg.secret is not None, v1=self._v1_allowed())

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def serve_forever(self) -> None:
        await self.start()
        await asyncio.gather(*(s.serve_forever() for s in self._servers))

    def _v1_allowed(self) -> bool:
        return self.config.allow_v1 and self.config.secret is None

    def _event(self, event: str, **fields: Any) -> None:
        log.info(json.dumps({"event": event, **fields}, default=str))

    # -- connections -----------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        self.counters["connections"] += 1
        if self.counters["open_connections"] >= self.config.max_connections:
            self.counters["rejected"] += 1
            self._event("rejected", peer=peer, reason="too many connections")
            writer.close()
            return
        self.counters["open_connections"] += 1
        try:
            first = await asyncio.wait_for(reader.read(P.MAX_NAME_BYTES), self.config.read_timeout_s)
            if not first:
                return
            if first[:1] == P.MAGIC[:1]:
                await self._handle_v2(first, reader, writer, peer)
            else:
                await self._handle_v1(first, reader, writer, peer)
        except asyncio.TimeoutError:
            self.counters["bad_input"] += 1
            self._event("read_timeout", peer=peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # noqa: BLE001 - one client's failure must never stop the server
            log.exception("unexpected error with %s: %s", peer, exc)
        finally:
            self.counters["open_connections"] -= 1
            writer.close()

    async def _wait_for_peer(self, key: tuple[str, str, str], waiter: _Waiter,
                             reader: asyncio.StreamReader) -> dict[str, Any] | str:
        """The peer's info, or "timeout" / "cancelled" / "gone" (client closed)."""
        eof = asyncio.ensure_future(reader.read(1))
        try:
            done, _ = await asyncio.wait({waiter.peer, eof}, timeout=self.config.wait_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            eof.cancel()
            # Let the cancellation land before anyone else reads this stream (relays do).
            await asyncio.gather(eof, return_exceptions=True)
        if waiter.peer in done:
            peer = waiter.peer.result()
            return peer.info() if isinstance(peer, _Waiter) else peer
        if self.waiting.get(key) is waiter:
            del self.waiting[key]
        if not done:
            self.counters["expired"] += 1
            return "timeout"
        return "gone"

    def _register(self, key: tuple[str, str, str], me: _Waiter) -> _Waiter | None:
        """The waiting peer, now paired with ``me``; or None when ``me`` waits instead."""
        other = self.waiting.pop(key, None)
        if other is not None and not other.peer.done():
            other.peer.set_result(me)
            return other
        if len(self.waiting) >= self.config.max_waiting:
            raise OverflowError("too many waiting clients")
        self.waiting[key] = me
        return None

    async def _handle_v1(self, name: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         peer: tuple[str, int]) -> None:
        if not self._v1_allowed():
            self.counters["rejected"] += 1
            self._event("rejected", peer=peer, reason="protocol v1 is disabled (auth required)")
            return
        key = ("v1", "", name.hex())
        writer.write(P.pack_v1_address(*peer))
        await writer.drain()
        me = _Waiter(peer, None)
        try:
            other = self._register(key, me)
        except OverflowError:
            self.counters["rejected"] += 1
            return
        if other is None:
            result = await self._wait_for_peer(key, me, reader)
            if isinstance(result, str):
                self._event("v1_" + result, peer=peer, name=name[:100].decode(errors="replace"))
                return
        else:
            result = other.info()
            self.counters["pairs_made"] += 1
            self._event("paired", protocol=1, name=name.decode(errors="replace"), a=peer, b=result["public"])
        writer.write(P.pack_v1_address(*result["public"]))
        await writer.drain()

    async def _read_v2(self, first: bytes, reader: asyncio.StreamReader) -> dict[str, Any]:
        buf = first
        deadline = self.config.read_timeout_s
        if len(buf) < len(P.MAGIC) + P.LENGTH.size:
            buf += await asyncio.wait_for(reader.readexactly(len(P.MAGIC) + P.LENGTH.size - len(buf)), deadline)
        if buf[:len(P.MAGIC)] != P.MAGIC:
            raise P.ProtocolError("bad magic")
        (length,) = P.LENGTH.unpack(buf[len(P.MAGIC):len(P.MAGIC) + P.LENGTH.size])
        if length > P.MAX_FRAME_BYTES:
            raise P.ProtocolError(f"frame of {length} bytes exceeds {P.MAX_FRAME_BYTES}")
        body = buf[len(P.MAGIC) + P.LENGTH.size:]
        if len(body) < length:
            body += await asyncio.wait_for(reader.readexactly(length - len(body)), deadline)
        return P.parse_request(body[:length])

    async def _reply(self, writer: asyncio.StreamWriter, **message: Any) -> None:
        writer.write(P.server_frame(message))
        await writer.drain()

    async def _handle_v2(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         peer: tuple[str, int]) -> None:
        try:
            request = await self._read_v2(first, reader)
        except P.ProtocolError as exc:
            self.counters["bad_input"] += 1
            self._event("bad_request", peer=peer, reason=str(exc))
            await self._reply(writer, status="error", reason=str(exc))
            return
        op, name, job = request["op"], request["name"], request.get("job", "")
        if self.config.secret is not None and not P.token_valid(self.config.secret, job, name, request.get("token")):
            self.counters["rejected"] += 1
            self._event("rejected", peer=peer, job=job, name=name, reason="bad or missing token")
            await self._reply(writer, status="error", reason="authentication failed: bad or missing token for this job and name")
            return
        key = ("relay" if op == "relay" else "v2", job, name)
        if op == "cancel":
            waiter = self.waiting.pop(("v2", job, name), None) or self.waiting.pop(("relay", job, name), None)
            if waiter is None:
                await self._reply(writer, status="error", reason=f"no client is waiting on {name!r} in job {job!r}")
                return
            waiter.peer.set_result("cancelled")
            self.counters["cancelled"] += 1
            await self._reply(writer, status="cancelled")
            return
        me = _Waiter(peer, request.get("private"), streams=(reader, writer) if op == "relay" else None)
        try:
            other = self._register(key, me)
        except OverflowError:
            self.counters["rejected"] += 1
            await self._reply(writer, status="error", reason="server busy: too many waiting clients; retry later")
            return
        if other is None:
            await self._reply(writer, status="waiting", public=list(peer))
            result = await self._wait_for_peer(key, me, reader)
            if result == "timeout":
                await self._reply(writer, status="timeout", reason=f"no peer joined {name!r} within {self.config.wait_timeout_s:.0f} s")
            elif result == "cancelled":
                await self._reply(writer, status="cancelled")
            elif isinstance(result, dict) and op == "relay":
                # This (first) client's task splices: its reader is free now.
                second = me.peer.result()
                second_reader, second_writer = second.streams
                try:
                    await asyncio.gather(self._pipe(reader, second_writer), self._pipe(second_reader, writer))
                finally:
                    me.relay_done.set_result(None)
            elif isinstance(result, dict):
                await self._reply(writer, status="paired", public=list(peer), peer=result)
            return
        kind = "relays_made" if op == "relay" else "pairs_made"
        self.counters[kind] += 1
        self._event("paired", protocol=2, op=op, job=job, name=name, a=list(peer), b=list(other.public))
        if op != "relay":
            await self._reply(writer, status="paired", public=list(peer), peer=other.info())
            return
        # Both "paired" frames go out before any relayed byte can.
        _, other_writer = other.streams
        other_writer.write(P.server_frame({"status": "paired", "relay": True, "public": list(other.public), "peer": me.info()}))
        writer.write(P.server_frame({"status": "paired", "relay": True, "public": list(peer), "peer": other.info()}))
        await other_writer.drain()
        await writer.drain()
        await other.relay_done

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), self.config.relay_idle_timeout_s)
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()  # backpressure: buffered bytes stay bounded
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            try:
                writer.write_eof()
            except (OSError, RuntimeError):
                pass

    # -- health --------------------------------------------------------------------------
    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), self.config.read_timeout_s)
            parts = line.decode(errors="replace").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path == "/livez":
                status, body = "200 OK", b"ok\n"
            elif path == "/metrics":
                status = "200 OK"
                body = json.dumps({**self.counters, "waiting": len(self.waiting),
                                   "uptime_s": time.time() - self.started}).encode()
            else:
                status, body = "404 Not Found", b"try /livez or /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
