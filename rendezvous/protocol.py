"""Wire formats of the rendezvous server (see docs/rendezvous-protocol.md).

Protocol v1 (TCPunch): the client sends the raw pairing name (no framing); the
server takes what its first read returns, keeps the first 100 bytes and cuts
them at the first NUL byte (as tcpunchd's ``recv`` into a 100-byte buffer and
``std::string(buffer)`` do). It answers at once with 8 bytes, the client's
address as the server sees it (IPv4 4 bytes, port 2 bytes, network order, 2
bytes padding), and when the second peer arrives, 8 more bytes with the
other's address; then it closes both connections.

Protocol v2 (lambdatwin): every client frame is ``MAGIC`` + 4-byte big-endian
length + a UTF-8 JSON object; server frames are 4-byte length + JSON. A v1 name
starting with the 0xFF byte of ``MAGIC`` is not valid text, so the first byte
tells the two apart.

Authentication (v2, when the server has a secret): each request carries a
timestamp ``ts`` (Unix seconds), a random ``nonce`` and ``token`` =
HMAC-SHA256(secret, "lt2", op, job, name, ts, nonce). The server accepts a
token only within ``TOKEN_WINDOW_S`` of its clock and only once (it remembers
the nonces of the window), so a captured request cannot be replayed, used for
another operation, name or job, or kept for later.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import struct
import time
from typing import Any

MAGIC = b"\xffLT2"
SECRET_ENV = "LAMBDATWIN_RENDEZVOUS_SECRET"  # where the server and the workers find the shared secret
MAX_NAME_BYTES = 100  # TCPunch's limit
MAX_FRAME_BYTES = 4096
TOKEN_WINDOW_S = 60  # a token is valid this long either side of the server's clock
_DECODE = json.JSONDecoder().decode
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_DOTTED_QUAD = re.compile(r"(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})")
V1_ADDRESS = struct.Struct("!4sHxx")
LENGTH = struct.Struct("!I")
OPS = ("pair", "cancel", "relay")
STATUSES = ("waiting", "paired", "timeout", "cancelled", "error")


class ProtocolError(ValueError):
    """A peer sent something that is not the protocol."""


def pack_v1_address(host: str, port: int) -> bytes:
    """8 bytes: IPv4 address, port (network order), 2 bytes padding."""
    return V1_ADDRESS.pack(socket.inet_aton(host), port)  # host: a dotted quad from getpeername()


def unpack_v1_address(data: bytes) -> tuple[str, int]:
    raw, port = V1_ADDRESS.unpack(data)
    return str(ipaddress.IPv4Address(raw)), port


def client_frame(message: dict[str, Any]) -> bytes:
    """A v2 client frame."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return MAGIC + LENGTH.pack(len(body)) + body


def server_frame(message: dict[str, Any]) -> bytes:
    """A v2 server frame."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return LENGTH.pack(len(body)) + body


def parse_request(body: bytes) -> dict[str, Any]:
    """Validate a v2 request body; raises ProtocolError with the reason."""
    try:
        message = _DECODE(body.decode())  # UTF-8 by the protocol: no encoding detection
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"request is not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("v") != 2:
        raise ProtocolError("request must be a JSON object with \"v\": 2")
    if message.get("op") not in OPS:
        raise ProtocolError(f"\"op\" must be one of {', '.join(OPS)}")
    name, job = message.get("name"), message.get("job", "")
    if not isinstance(name, str) or not 0 < _utf8_length(name) <= MAX_NAME_BYTES:
        raise ProtocolError(f"\"name\" must be a string of 1-{MAX_NAME_BYTES} bytes")
    if not isinstance(job, str) or _utf8_length(job) > 200:
        raise ProtocolError("\"job\" must be a string of at most 200 bytes")
    private = message.get("private")
    if private is not None:
        message["private"] = list(parse_endpoint(private, "\"private\""))  # peers get only a valid address
    return message


def _utf8_length(text: str) -> int:
    """UTF-8 length; a lone surrogate (valid JSON, not valid text) counts as too long."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return 1 << 30


def v1_name(first_read: bytes) -> bytes:
    """The pairing name tcpunchd takes from a first read: 100 bytes at most, cut at the first NUL."""
    return first_read[:MAX_NAME_BYTES].split(b"\0", 1)[0]


def auth_token(secret: bytes, op: str, job: str, name: str, ts: int, nonce: str) -> str:
    """The HMAC-SHA256 token that lets a client do ``op`` on ``name`` of ``job``, once, around time ``ts``."""
    return hmac.new(secret, f"lt2\n{op}\n{job}\n{name}\n{ts}\n{nonce}".encode(), hashlib.sha256).hexdigest()


def sign(message: dict[str, Any], secret: bytes, now: float | None = None) -> dict[str, Any]:
    """``message`` with a fresh ``ts``, ``nonce`` and ``token`` (a new nonce on every call: one use each)."""
    ts = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    token = auth_token(secret, message["op"], message.get("job", ""), message["name"], ts, nonce)
    return {**message, "ts": ts, "nonce": nonce, "token": token}


def check_token(secret: bytes, request: dict[str, Any], now: float) -> str | None:
    """None when the request's token is genuine and fresh; else why not (replays are the caller's check)."""
    ts, nonce, token = request.get("ts"), request.get("nonce"), request.get("token")
    if not (isinstance(token, str) and isinstance(nonce, str) and _NONCE.fullmatch(nonce)
            and isinstance(ts, int) and not isinstance(ts, bool)):
        return "bad or missing token (needs ts, nonce and token)"
    expected = auth_token(secret, request["op"], request.get("job", ""), request["name"], ts, nonce)
    if not hmac.compare_digest(expected, token):
        return "bad token for this operation, job and name"
    if abs(now - ts) > TOKEN_WINDOW_S:
        return f"token expired: its time is {now - ts:+.0f} s from the server's clock (limit {TOKEN_WINDOW_S} s)"
    return None


def parse_endpoint(value: Any, what: str) -> tuple[str, int]:
    """An ``[IPv4, port]`` pair from the network, validated: a dotted-quad unicast address and a port 1-65535.

    Returns the address in canonical form. (A regular expression rather than
    ``ipaddress``: this runs for every pairing request, and is 5x cheaper.)

    Raises:
        ProtocolError: anything else (an attacker-controlled peer must not crash the client or the server).
    """
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ProtocolError(f"{what} must be [IPv4 address, port], got {value!r:.80}")
    host, port = value
    match = _DOTTED_QUAD.fullmatch(host) if isinstance(host, str) else None
    octets = [int(o) for o in match.groups()] if match else []
    if not octets or max(octets) > 255 or 224 <= octets[0] <= 239 or octets == [0, 0, 0, 0] \
            or octets == [255, 255, 255, 255]:
        raise ProtocolError(f"{what} has no usable IPv4 unicast address: {host!r:.60}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ProtocolError(f"{what} has no valid TCP port: {port!r:.30}")
    return ".".join(map(str, octets)), port


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a blocking socket; ConnectionError on EOF."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_server_frame(sock: socket.socket) -> dict[str, Any]:
    """Read one v2 server frame from a blocking socket."""
    (length,) = LENGTH.unpack(recv_exact(sock, LENGTH.size))
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"server frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        message = json.loads(recv_exact(sock, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"server frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("server frame is not a JSON object")
    return message
