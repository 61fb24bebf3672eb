"""``lambdatwin rendezvous serve`` and ``python -m rendezvous``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from rendezvous.server import RendezvousServer, ServerConfig


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=10000, help="pairing port, TCPunch's default 10000")
    p.add_argument("--health-port", type=int, default=8080, help="HTTP GET /livez and /metrics (default 8080; -1 disables)")
    p.add_argument("--secret-env", default="LAMBDATWIN_RENDEZVOUS_SECRET",
                   help="environment variable holding the shared secret; when set, v2 needs tokens and v1 is off")
    p.add_argument("--wait-timeout", type=float, default=60.0, help="seconds a waiting client is kept (default 60)")
    p.add_argument("--read-timeout", type=float, default=5.0, help="seconds to receive a request (default 5)")
    p.add_argument("--max-connections", type=int, default=10_000, help="open connections at most (default 10000)")
    p.set_defaults(func=cmd_serve)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rendezvous serve``."""
    rdv = sub.add_parser("rendezvous", help="the TCPunch-compatible rendezvous server",
                         description="Pair workers behind NAT for hole punching (TCPunch v1 and lambdatwin v2), relay when punching fails.")
    rsub = rdv.add_subparsers(dest="rendezvous_command", metavar="COMMAND")
    serve = rsub.add_parser("serve", help="run the server", description="Serve pairing on --port and health on --health-port.")
    add_serve_arguments(serve)


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    secret = os.environ.get(args.secret_env)
    config = ServerConfig(host=args.host, port=args.port, health_port=None if args.health_port < 0 else args.health_port,
                          secret=secret.encode() if secret else None, wait_timeout_s=args.wait_timeout,
                          read_timeout_s=args.read_timeout, max_connections=args.max_connections)
    try:
        asyncio.run(RendezvousServer(config).serve_forever())
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
