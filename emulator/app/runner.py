"""Run an app's state machine once, end to end, on the process backend (``lambdatwin run --template``).

1. load the template (:mod:`emulator.app.template`);
2. start the local S3 endpoint, create the template's buckets, upload ``--upload DIR=s3://bucket/prefix``;
3. build each function's venv (cached) and deploy the functions;
4. run the state machine with the input, and write the run record and log streams.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from emulator.app import record as app_record
from emulator.app.build import BuildCache
from emulator.app.deploy import LocalFunctions, deploy_app, ensure_bucket
from emulator.app.logstore import LogStore
from emulator.app.template import App
from emulator.contracts import job
from emulator.contracts.errors import ConfigError, DefinitionFileError
from emulator.contracts.runrecord import RunRecord
from emulator.s3server import LocalS3Server
from emulator.stepfunctions import DefinitionError, StateMachine


@dataclass(frozen=True)
class Upload:
    """``--upload DIR=s3://bucket/prefix``."""

    directory: Path
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> "Upload":
        """Raises ConfigError unless ``text`` is ``DIR=s3://bucket[/prefix]`` with DIR a directory."""
        local, sep, url = text.partition("=")
        if not sep or not url.startswith("s3://") or len(url) <= len("s3://"):
            raise ConfigError(f"--upload {text!r}: expected DIR=s3://bucket/prefix")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        directory = Path(local)
        if not directory.is_dir():
            raise ConfigError(f"--upload {text!r}: {directory} is not a directory")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(directory, bucket, prefix)

    def run(self, s3_client: Any) -> int:
        """Upload every file under the directory (keys keep their relative paths); returns the count."""
        ensure_bucket(s3_client, self.bucket)
        count = 0
        for path in sorted(p for p in self.directory.rglob("*") if p.is_file()):
            s3_client.upload_file(str(path), self.bucket, self.prefix + path.relative_to(self.directory).as_posix())
            count += 1
        return count


def read_input(path: Path | None) -> Any:
    """The execution input: a JSON file, or ``{}``.

    Raises:
        DefinitionFileError: unreadable or not JSON.
    """
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise DefinitionFileError(f"--input {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DefinitionFileError(f"--input {path}: not valid JSON ({exc})") from None


def state_machine_of(app: App, name: str | None = None) -> StateMachine:
    """The engine's StateMachine for one of the app's state machines.

    Raises:
        DefinitionFileError: the definition is not valid or not supported ASL (naming the state).
    """
    spec = app.state_machine(name)
    try:
        return StateMachine(spec.definition, substitutions=spec.substitutions, name=spec.name)
    except DefinitionError as exc:
        raise DefinitionFileError(f"{app.path}: state machine {spec.logical_id!r}: {exc}") from None


def run_app(app: App, execution_input: Any, *, runs_dir: Path, uploads: list[Upload] = (),
            state_machine: str | None = None, cache: BuildCache | None = None, state_dir: Path | None = None,
            log: Callable[[str], None] = lambda line: None, run_id: str | None = None) -> tuple[RunRecord, Path]:
    """Run the app once on the process backend; returns the record and its directory."""
    machine = state_machine_of(app, state_machine)
    functions = LocalFunctions(cache or BuildCache(log=log))
    run_id = run_id or job.new_run_id()
    logs = LogStore(Path(state_dir) / "logs") if state_dir else None
    with LocalS3Server() as s3:
        client = s3.client()
        for bucket in app.buckets.values():
            ensure_bucket(client, bucket.name)
        for upload in uploads:
            log(f"uploaded {upload.run(client)} files from {upload.directory} to s3://{upload.bucket}/{upload.prefix}")
        service = deploy_app(app, functions, s3.client_environment())
        invoker = app_record.RecordingInvoker(service)
        try:
            log(f"running state machine {machine.name} ({app.state_machine(state_machine).type})")
            result = machine.execute(execution_input, invoker=invoker, s3_client=client, name=run_id)
        finally:
            service.shutdown()
            if logs is not None:
                logs.sync(service)
    config = {"template": str(app.path), "parameters": app.parameters, "state_machine": machine.name,
              "execution_input": execution_input, "peak_concurrency": service.peak_concurrency}
    record = app_record.execution_record(run_id, "local", config, service.functions.values(), result, invoker.records)
    run_dir = app_record.write_run(record, runs_dir, service.log_streams)
    return record, run_dir
