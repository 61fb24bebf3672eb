"""Entry point of ``lambdatwin``: the parser, one place for user errors, and clean signals.

Each command module exposes ``register(subparsers)`` that adds its commands and
sets ``func(args) -> int``. Errors a user can act on are raised as
:class:`UserError` anywhere below and printed here as one line with exit code 2;
a bad flag is reported by argparse as one line with exit code 2 as well.
SIGTERM unwinds exactly like Ctrl-C, so every context manager that a command
entered (S3 server, Lambda environments, containers, temp dirs) cleans up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, NoReturn, Sequence

import rendezvous.cli
from emulator.cli import app, aws, emulate, run, simulate
from emulator.contracts.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError

COMMAND_MODULES = (run, emulate, simulate, app, rendezvous.cli, aws)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``lambdatwin run: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every command."""
    parser = OneLineParser(
        prog="lambdatwin",
        description="A local twin of a serverless, data-parallel PyTorch inference pipeline on AWS.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM: unwind the main thread so every context manager cleans up.

    Worker threads (the execution, Map children) see their S3 server and Lambda
    environments go away during that unwinding; what they raise then is the
    shutdown itself, not news for the user, so it is not printed.
    """
    threading.excepthook = lambda hook_args: None
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (0 ok, 1 the job failed, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag (already printed as one line)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"lambdatwin {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; everything this run started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
