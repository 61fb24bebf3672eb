"""Wire formats of the rendezvous server (see docs/rendezvous-protocol.md).

Protocol v1 (TCPunch): the client sends the raw pairing name (1-100 bytes, no
framing); the server answers at once with 8 bytes, the client's address as the
server sees it (IPv4 4 bytes, port 2 bytes, network order, 2 bytes padding),
and when the second peer arrives, 8 more bytes with the other's address; then
it closes both connections.

Protocol v2 (lambdatwin): every client frame is ``MAGIC`` + 4-byte big-endian
length + a UTF-8 JSON object; server frames are 4-byte length + JSON. A v1 name
starting with the 0xFF byte of ``MAGIC`` is not valid text, so the first byte
tells the two apart.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import struct
from typing import Any

MAGIC = b"\xffLT2"
MAX_NAME_BYTES = 100  # TCPunch's limit
MAX_FRAME_BYTES = 4096
V1_ADDRESS = struct.Struct("!4sHxx")
LENGTH = struct.Struct("!I")
OPS = ("pair", "cancel", "relay")
STATUSES = ("waiting", "paired", "timeout", "cancelled", "error")


class ProtocolError(ValueError):
    """A peer sent something that is not the protocol."""


def pack_v1_address(host: str, port: int) -> bytes:
    """8 bytes: IPv4 address, port (network order), 2 bytes padding."""
    return V1_ADDRESS.pack(ipaddress.IPv4Address(host).packed, port)


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
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"request is not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("v") != 2:
        raise ProtocolError("request must be a JSON object with \"v\": 2")
    if message.get("op") not in OPS:
        raise ProtocolError(f"\"op\" must be one of {', '.join(OPS)}")
    name, job = message.get("name"), message.get("job", "")
    if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_NAME_BYTES:
        raise ProtocolError(f"\"name\" must be a string of 1-{MAX_NAME_BYTES} bytes")
    if not isinstance(job, str) or len(job.encode()) > 200:
        raise ProtocolError("\"job\" must be a string of at most 200 bytes")
    private = message.get("private")
    if private is not None and not (isinstance(private, list) and len(private) == 2
                                    and isinstance(private[0], str) and isinstance(private[1], int)):
        raise ProtocolError("\"private\" must be [host, port]")
    return message


def auth_token(secret: bytes, job: str, name: str) -> str:
    """The HMAC-SHA256 token that lets a client join ``name`` of ``job``."""
    return hmac.new(secret, f"{job}\n{name}".encode(), hashlib.sha256).hexdigest()


def token_valid(secret: bytes, job: str, name: str, token: Any) -> bool:
    return isinstance(token, str) and hmac.compare_digest(auth_token(secret, job, name), token)


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
    return json.loads(recv_exact(sock, length))
