"""The ``lambdatwin`` command line.

Each package owns its subcommands and exposes ``register(subparsers)``, which
adds them and sets ``func`` (called with the parsed args, returning an exit
code). This module only collects them, so the command list lives here and the
behaviour lives with the code it drives.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# (module, what it adds): imported lazily so `lambdatwin --help` stays fast and
# one package's missing optional dependency never breaks the others.
SUBCOMMAND_MODULES = (
    "emulator.pipeline_cli",  # run, generate
    "emulator.docker.cli",  # emulate, emulate down
    "rendezvous.cli",  # rendezvous serve
    "sim.cli",  # simulate, plan, calibrate
    "realaws.cli",  # aws deploy | run | teardown
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="lambdatwin",
        description="A local twin of a serverless, data-parallel PyTorch inference pipeline on AWS.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that package has no CLI yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lambdatwin`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
