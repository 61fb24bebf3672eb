"""``python -m rendezvous serve ...``: the same as ``lambdatwin rendezvous serve``."""

import argparse
import sys

from rendezvous.cli import add_serve_arguments

parser = argparse.ArgumentParser(prog="python -m rendezvous", description="The lambdatwin rendezvous server.")
sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
add_serve_arguments(sub.add_parser("serve", help="run the server"))
args = parser.parse_args()
sys.exit(args.func(args))
