"""The user's own app (a SAM template): ``serve``, ``invoke``, ``logs``, and ``run|emulate|simulate --template``.

:func:`register` adds ``serve``, ``invoke`` and ``logs``; ``run`` and ``emulate``
add :func:`add_template_arguments` and hand over to :func:`run_template` when
``--template`` is given; ``simulate --template`` sizes its fan-out with :func:`template_fan_out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from emulator.app.build import BuildCache
from emulator.app.deploy import LocalFunctions, ensure_bucket
from emulator.app.docker_run import run_app_docker
from emulator.app.logstore import LogStore
from emulator.app.runner import Upload, read_input, run_app
from emulator.app.simulation import FanOut, fan_out
from emulator.app.template import App, load_app, parse_parameter_overrides
from emulator.cli.report import pricer_from_args, print_run
from emulator.contracts import flags
from emulator.contracts.cloudwatch import log_group_name
from emulator.contracts.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from emulator.endpoints.server import serve
from emulator.lambda_runtime.service import LambdaService
from emulator.s3server import LOCAL_CREDENTIALS, LocalS3Server

DEFAULT_STATE_DIR = Path(".lambdatwin")
DEFAULT_TEMPLATE = Path("template.yaml")


def add_template_source_arguments(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """``--template``, ``--parameter-overrides``, ``--state-machine``: which app, and which of its state machines."""
    g = parser.add_argument_group("app (a SAM template)")
    g.add_argument("--template", type=flags.existing_file, default=None, help=what)
    g.add_argument("--parameter-overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="template parameter values, as `sam deploy --parameter-overrides` takes them")
    g.add_argument("--state-machine", default=None, help="which state machine (logical id or name) when there are several")
    return g


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    """The app flags of ``run`` and ``emulate``: the template, its input and what to upload first."""
    g = add_template_source_arguments(parser, "run this AWS SAM template's state machine instead of the built-in pipeline")
    g.add_argument("--input", type=flags.existing_file, default=None, help="execution input JSON file (default {})")
    g.add_argument("--upload", action="append", default=[], metavar="DIR=s3://BUCKET/PREFIX",
                   help="upload a local directory to the local S3 before the run (repeatable)")
    g.add_argument("--state-dir", type=flags.writable_dir, default=DEFAULT_STATE_DIR,
                   help="where function builds' logs are kept for `lambdatwin logs` (default ./.lambdatwin)")


def _load(args: argparse.Namespace) -> App:
    return load_app(args.template, parse_parameter_overrides(args.parameter_overrides))


def template_fan_out(args: argparse.Namespace) -> FanOut:
    """The Distributed Map of ``--template`` and its worker function, for ``simulate``."""
    return fan_out(_load(args), args.state_machine)


def run_template(args: argparse.Namespace) -> int:
    """``lambdatwin run --template`` (process backend) or ``emulate --template`` (Docker); returns the exit code.

    On Docker, ``args.nat`` (the emulate flag) picks the NAT preset.
    """
    err = Console(stderr=True)
    app = _load(args)
    bill_of = pricer_from_args(args)
    for warning in app.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    uploads = [Upload.parse(text) for text in args.upload]
    if args.command == "emulate":
        record, run_dir = run_app_docker(app, read_input(args.input), runs_dir=args.runs_dir, uploads=uploads,
                                         state_machine=args.state_machine, nat=args.nat,
                                         log=lambda line: err.print(line))
    else:
        record, run_dir = run_app(app, read_input(args.input), runs_dir=args.runs_dir, uploads=uploads,
                                  state_machine=args.state_machine, state_dir=args.state_dir,
                                  log=lambda line: err.print(line))
    print_run(record, str(run_dir), bill_of(record), Console(width=None if Console().is_terminal else 140))
    status = record.execution["status"]
    if status != "SUCCEEDED":
        err.print(f"[red]execution {status}[/red]: {record.execution.get('error') or ''} "
                  f"{record.execution.get('cause') or ''}")
        return EXIT_FAILED
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``invoke`` and ``logs``."""
    serve = sub.add_parser(
        "serve", help="AWS-compatible endpoints (Step Functions, Lambda, S3, CloudWatch Logs) on one port",
        description="Serve the AWS wire protocols on one port, long-running: point boto3 or the AWS CLI at it "
                    "with --endpoint-url. With --template, the app's buckets, functions and state machines are "
                    "created at start. State persists in --state-dir across restarts.")
    serve.add_argument("--template", type=flags.existing_file, default=None, help="AWS SAM template to deploy at start")
    serve.add_argument("--parameter-overrides", nargs="+", default=[], metavar="KEY=VALUE")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=flags.port, default=4566, help="port (default 4566)")
    serve.add_argument("--state-dir", type=flags.writable_dir, default=DEFAULT_STATE_DIR,
                       help="where state persists (default ./.lambdatwin)")
    serve.add_argument("--runs-dir", type=flags.writable_dir, default=Path("runs"),
                       help="where run records of executions go (default ./runs)")
    serve.add_argument("--backend", choices=("process", "docker"), default="process",
                       help="run functions as host processes (default) or in containers")
    serve.set_defaults(func=cmd_serve)

    invoke = sub.add_parser("invoke", help="invoke one function of a template once (a cold start)",
                            description="Build (or reuse) the function's venv, invoke it with the event, print the "
                                        "result on stdout and its log lines on stderr. Each invoke is a cold start, "
                                        "so edits to the handler take effect at once.")
    invoke.add_argument("function", help="logical id or FunctionName")
    invoke.add_argument("--event", type=flags.existing_file, default=None, help="event JSON file (default {})")
    invoke.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default ./template.yaml)")
    invoke.add_argument("--parameter-overrides", nargs="+", default=[], metavar="KEY=VALUE")
    invoke.add_argument("--endpoint-url", default=None,
                        help="AWS endpoint the function's SDK calls reach (e.g. a running `lambdatwin serve`); "
                             "default: a local S3 started for this invoke")
    invoke.add_argument("--state-dir", type=flags.writable_dir, default=DEFAULT_STATE_DIR,
                        help="where logs are kept (default ./.lambdatwin)")
    invoke.set_defaults(func=cmd_invoke)

    logs = sub.add_parser("logs", help="print a function's CloudWatch log lines (from invoke, run --template and serve)")
    logs.add_argument("function", help="function name")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until interrupted")
    logs.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the state dir (default ./.lambdatwin)")
    logs.set_defaults(func=cmd_logs)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the AWS endpoints until interrupted."""
    err = Console(stderr=True)
    return serve(host=args.host, port=args.port, state_dir=args.state_dir, runs_dir=args.runs_dir,
                 template=args.template, parameter_overrides=args.parameter_overrides,
                 log=lambda line: err.print(line), backend=args.backend)


def cmd_invoke(args: argparse.Namespace) -> int:
    """Invoke one function once (a cold start): result on stdout, log lines on stderr."""
    err = Console(stderr=True)
    app = _load(args)
    spec = app.function(args.function)
    event = read_input(args.event)
    functions = LocalFunctions(BuildCache(log=lambda line: err.print(line)))
    s3 = None
    if args.endpoint_url:
        env = {"AWS_ENDPOINT_URL": args.endpoint_url, **LOCAL_CREDENTIALS}
    else:
        s3 = LocalS3Server().start()
        env = s3.client_environment()
        for bucket in app.buckets.values():
            ensure_bucket(s3.client(), bucket.name)
    try:
        service = LambdaService([functions.deploy_spec(spec, env)], environment_factory=functions.environment)
        try:
            done = service.invoke_with_record(spec.name, event)
        finally:
            service.shutdown()
            LogStore(args.state_dir / "logs").sync(service)
    finally:
        if s3 is not None:
            s3.stop()
    for line in done.log_lines:
        print(line, file=sys.stderr)
    if done.error is not None:
        print(json.dumps(done.error.to_payload()))
        return EXIT_FAILED
    print(json.dumps(done.payload))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a function's log lines; with --follow, keep printing until interrupted."""
    store = LogStore(args.state_dir / "logs")
    group = log_group_name(args.function)
    seen: dict[str, int] = {}
    if not store.streams(group) and not args.follow:
        Console(stderr=True).print(f"[red]error:[/red] no logs of {args.function} in {args.state_dir}; "
                                   "invoke it first or pass --state-dir")
        return EXIT_USAGE
    try:
        while True:
            for stream in store.streams(group):
                events = store.events(group, stream)
                for event in events[seen.get(stream, 0):]:
                    print(event["message"], flush=True)
                seen[stream] = len(events)
            if not args.follow:
                return EXIT_OK
            time.sleep(0.5)
    except KeyboardInterrupt:
        return EXIT_OK
