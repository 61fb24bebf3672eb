"""``lambdatwin rendezvous serve`` and ``python -m rendezvous``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from rendezvous.guard import raise_nofile_limit
from rendezvous.protocol import SECRET_ENV
from rendezvous.server import RendezvousServer, ServerConfig


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    defaults = ServerConfig()
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=10000, help="pairing port, TCPunch's default 10000")
    p.add_argument("--health-port", type=int, default=8080, help="HTTP GET /livez and /metrics (default 8080; -1 disables)")
    p.add_argument("--health-host", default=None, help="address for the health port (default: --host)")
    p.add_argument("--secret-env", default=SECRET_ENV,
                   help=f"environment variable holding the shared secret (default {SECRET_ENV}); when set, v2 "
                        "requests need fresh single-use tokens")
    p.add_argument("--require-secret", action="store_true",
                   help="refuse to start without the shared secret (deployments: never serve unauthenticated by mistake)")
    p.add_argument("--allow-v1", action="store_true",
                   help="also serve TCPunch v1 clients, which cannot authenticate (off by default)")
    p.add_argument("--wait-timeout", type=float, default=defaults.wait_timeout_s,
                   help="seconds a waiting client is kept (default 60)")
    p.add_argument("--auth-timeout", "--read-timeout", dest="auth_timeout", type=float, default=defaults.auth_timeout_s,
                   help="seconds a client has to send its request (default 5)")
    p.add_argument("--max-connections", type=int, default=defaults.max_connections,
                   help="authenticated connections at most (default 10000; kept below the open-file limit)")
    p.add_argument("--max-unauthenticated", type=int, default=defaults.max_unauthenticated,
                   help="connections still sending their request, at most (default 2000)")
    p.add_argument("--max-unauthenticated-per-source", type=int, default=defaults.max_unauthenticated_per_source,
                   help="of those, from one IP address (default 512)")
    p.add_argument("--max-connections-per-source", type=int, default=defaults.max_connections_per_source,
                   help="connections from one IP address at most (default 4096)")
    p.add_argument("--verbose", action="store_true", help="log every pairing (debug level)")
    p.set_defaults(func=cmd_serve)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rendezvous serve``."""
    rdv = sub.add_parser("rendezvous", help="the TCPunch-compatible rendezvous server",
                         description="Pair workers behind NAT for hole punching (TCPunch v1 and lambdatwin v2), relay when punching fails.")
    rsub = rdv.add_subparsers(dest="rendezvous_command", metavar="COMMAND")
    serve = rsub.add_parser("serve", help="run the server", description="Serve pairing on --port and health on --health-port.")
    add_serve_arguments(serve)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (a C event loop: several times less CPU per connection), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    raise_nofile_limit()
    secret = os.environ.get(args.secret_env)
    if args.require_secret and not secret:
        print(f"error: --require-secret is set but {args.secret_env} is empty or unset; give the server its shared "
              "secret (on AWS: the task definition's secrets) or drop --require-secret", file=sys.stderr)
        return 2
    config = ServerConfig(host=args.host, port=args.port, health_port=None if args.health_port < 0 else args.health_port,
                          health_host=args.health_host, secret=secret.encode() if secret else None,
                          allow_v1=args.allow_v1, wait_timeout_s=args.wait_timeout, auth_timeout_s=args.auth_timeout,
                          max_connections=args.max_connections, max_unauthenticated=args.max_unauthenticated,
                          max_unauthenticated_per_source=args.max_unauthenticated_per_source,
                          max_connections_per_source=args.max_connections_per_source)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(RendezvousServer(config).serve_forever())
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
