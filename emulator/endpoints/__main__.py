"""``python -m emulator.endpoints [serve options]``: the ``serve`` command without the CLI roof."""

import argparse
import sys

from emulator.app.cli import register


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.endpoints")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *sys.argv[1:]])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
